package activities

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
)

// PackageSource writes a stored package as the tar stream that puts it in an
// instance's package folder.
type PackageSource interface {
	TarForContainer(ctx context.Context, sha string, w io.Writer) error
}

// PackageDir is where an instance sees its package volume.
const PackageDir = "/berth/package"

var shaRE = regexp.MustCompile(`^[a-f0-9]{64}$`)

// InstallPackageInput puts a package into one instance and restarts it.
type InstallPackageInput struct {
	Instance      berth.PlannedInstance `json:"instance"`
	Service       compose.ServiceSpec   `json:"service"`
	SHA256        string                `json:"sha256"`
	HealthTimeout int64                 `json:"healthTimeoutMs"`
}

// InstallPackage empties the instance's package volume, copies a package
// into it through the Docker API (no SSH), restarts the instance and waits
// until it is healthy. Emptying first means no file of an earlier package
// stays beside the new one; doing it all again is harmless, so a retry is.
func (d *Docker) InstallPackage(ctx context.Context, in InstallPackageInput) error {
	if d.Packages == nil {
		return fail(berth.EInvalid, "this worker has no package store")
	}
	if !shaRE.MatchString(in.SHA256) {
		return fail(berth.EInvalid, "package checksum %q is not a sha256", in.SHA256)
	}
	eng, id, err := d.ownContainer(ctx, in.Instance)
	if err != nil {
		return err
	}
	activity.RecordHeartbeat(ctx, "empty")
	if err := d.emptyPackageDir(ctx, eng, id, in.Instance); err != nil {
		return err
	}
	activity.RecordHeartbeat(ctx, "copy")
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(d.Packages.TarForContainer(ctx, in.SHA256, pw)) }()
	_, err = eng.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: PackageDir, Content: pr})
	_ = pr.CloseWithError(err)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fail(berth.ENotFound, "copy package into %s: %v", in.Instance.Name, err)
		}
		return fmt.Errorf("copy package into %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	activity.RecordHeartbeat(ctx, "restart")
	timeout := 10
	if _, err := eng.ContainerRestart(ctx, id, client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("restart %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	_, err = d.waitHealthy(ctx, eng, id, StartInstanceInput{Instance: in.Instance, Service: in.Service,
		HealthTimeout: msDuration(in.HealthTimeout)})
	return err
}

// MaxCommandOutput is how much of a post-upload command's output is kept.
const MaxCommandOutput = 64 << 10

// RunCommandInput runs a release's post-upload command in one instance.
type RunCommandInput struct {
	Instance berth.PlannedInstance `json:"instance"`
	Command  []string              `json:"command"`
}

// RunCommandResult is the command's exit code and its output (stdout and
// stderr interleaved), at most MaxCommandOutput bytes.
type RunCommandResult struct {
	Instance  string `json:"instance"`
	ExitCode  int    `json:"exitCode"`
	Output    string `json:"output"`
	Truncated bool   `json:"truncated,omitempty"`
}

// RunCommand runs an allowlisted command in the instance's container with
// exec (no shell) and waits for it. A non-zero exit is a result, not an
// error: the workflow keeps the output and decides.
func (d *Docker) RunCommand(ctx context.Context, in RunCommandInput) (*RunCommandResult, error) {
	if len(in.Command) == 0 || !slices.Contains(d.ExecAllow, in.Command[0]) {
		return nil, fail(berth.EInvalid, "command %q is not on this worker's allowlist (BERTH_EXEC_ALLOW)", in.Command)
	}
	eng, id, err := d.ownContainer(ctx, in.Instance)
	if err != nil {
		return nil, err
	}
	activity.RecordHeartbeat(ctx, "exec")
	ex, err := eng.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: in.Command, AttachStdout: true, AttachStderr: true})
	if err != nil {
		if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
			return nil, fail(berth.ENotFound, "exec in %s: %v", in.Instance.Name, err)
		}
		return nil, fmt.Errorf("exec in %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	att, err := eng.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("exec in %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	defer att.Close()
	out := &capped{max: MaxCommandOutput}
	if _, err := stdcopy.StdCopy(out, out, att.Reader); err != nil {
		return nil, fmt.Errorf("exec output of %s: %w", in.Instance.Name, err)
	}
	// The stream ends when the process does; the engine may take a moment
	// to record the exit code.
	for i := 0; ; i++ {
		insp, err := eng.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("exec inspect in %s: %w", in.Instance.Name, err)
		}
		if !insp.Running {
			text := strings.ToValidUTF8(string(out.buf), "\uFFFD")
			for len(text) > MaxCommandOutput {
				_, size := utf8.DecodeLastRuneInString(text)
				text = text[:len(text)-size]
				out.truncated = true
			}
			return &RunCommandResult{Instance: in.Instance.Name, ExitCode: insp.ExitCode, Output: text, Truncated: out.truncated}, nil
		}
		activity.RecordHeartbeat(ctx, "wait for exit")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d.PollInterval):
		}
	}
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	buf       []byte
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.buf)
	if room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf = append(c.buf, p[:room]...)
		}
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// LabelHelper marks berth's one-shot helper containers; like the relays
// they carry no berth.tenant label, so nothing counts them as instances.
const LabelHelper = "berth.helper"

// emptyPackageDir empties the folder mounted at an instance's PackageDir,
// whatever backs it (its own volume, or a host folder for instances made
// before those), with a one-shot container of berth's own image (the relay
// image) that runs "berth empty-dir" on it: the engine's API can copy files
// in but never delete them. The helper has no network, a read-only root,
// and of root's powers only those needed to remove other users' files.
func (d *Docker) emptyPackageDir(ctx context.Context, eng engine.Engine, id string, pi berth.PlannedInstance) error {
	insp, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect %s on %s: %w", pi.Name, pi.Host.Name, err)
	}
	src := ""
	for _, m := range insp.Container.Mounts {
		if m.Destination == PackageDir {
			src = m.Source
			if m.Type == mount.TypeVolume {
				src = m.Name
			}
		}
	}
	if src == "" {
		return fail(berth.EInvalid, "instance %s has no package folder at %s", pi.Name, PackageDir)
	}
	if err := d.ensureMeshImage(ctx, eng, pi.Host, func(s string) { activity.RecordHeartbeat(ctx, s) }); err != nil {
		return err
	}
	_, tag, _ := d.self.load()
	name := "berth-empty-" + pi.Name
	// A helper left by an attempt that died goes first.
	if _, err := eng.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s on %s: %w", name, pi.Host.Name, err)
	}
	created, err := eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: tag, User: "0:0", Entrypoint: []string{"/berth", "empty-dir", "/target"},
			Labels: map[string]string{LabelHelper: "empty-dir"}},
		HostConfig: &container.HostConfig{Binds: []string{src + ":/target"}, NetworkMode: "none", ReadonlyRootfs: true,
			CapDrop: []string{"ALL"}, CapAdd: []string{"DAC_OVERRIDE", "FOWNER"}, SecurityOpt: []string{"no-new-privileges"},
			LogConfig: logRotation(compose.ServiceSpec{})}})
	if err != nil {
		return fmt.Errorf("create %s on %s: %w", name, pi.Host.Name, err)
	}
	defer func() {
		_, _ = eng.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if _, err := eng.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s on %s: %w", name, pi.Host.Name, err)
	}
	for {
		hi, err := eng.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect %s on %s: %w", name, pi.Host.Name, err)
		}
		if st := hi.Container.State; st != nil && (st.Status == container.StateExited || st.Status == container.StateDead) {
			if st.ExitCode != 0 {
				return fmt.Errorf("emptying the package folder of %s on %s: exit code %d", pi.Name, pi.Host.Name, st.ExitCode)
			}
			return nil
		}
		activity.RecordHeartbeat(ctx, "empty")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.PollInterval):
		}
	}
}
