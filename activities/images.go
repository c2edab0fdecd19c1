package activities

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/engine"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"
)

// BuiltPackageDir is where a built or committed image holds its package.
const BuiltPackageDir = "/opt/berth/package"

// LabelPackage is the image label naming the package a built image holds.
const LabelPackage = "berth.package"

// imageRefRE is a conservative image reference (no whitespace, nothing a
// Dockerfile line could be bent with).
var imageRefRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

// BuildImageInput builds Image on Host from Base plus a stored package, and
// pushes it to the registry.
type BuildImageInput struct {
	Host   berth.HostRef `json:"host"`
	Base   string        `json:"base"`
	Image  string        `json:"image"`
	SHA256 string        `json:"sha256"`
}

// BuildImageResult names what was built and pushed.
type BuildImageResult struct {
	Image   string `json:"image"`
	ImageID string `json:"imageId"`
}

// buildDockerfile is the service's Dockerfile template: its current image
// plus the package under BuiltPackageDir.
func buildDockerfile(base, label string) string {
	return fmt.Sprintf("FROM %s\nCOPY package/ %s/\nLABEL %s=%s\n", base, BuiltPackageDir, LabelPackage, label)
}

// checkPushTarget refuses a target outside the configured registry.
func (d *Docker) checkPushTarget(image string) error {
	if d.Registry == "" {
		return fail(berth.EInvalid, "this worker has no registry configured (BERTH_REGISTRY); images cannot be pushed")
	}
	if !imageRefRE.MatchString(image) || !strings.HasPrefix(image, d.Registry+"/") || strings.Contains(image, "@") {
		return fail(berth.EInvalid, "image %q is not a tag in the configured registry %s", image, d.Registry)
	}
	return nil
}

// BuildImage builds an image through the Docker API from a context of the
// Dockerfile template and the package (under package/), tags it and pushes
// it. A build that fails is not retried; a retry after a crash finds the
// image already built (same package label) and only pushes.
func (d *Docker) BuildImage(ctx context.Context, in BuildImageInput) (*BuildImageResult, error) {
	if d.Packages == nil {
		return nil, fail(berth.EInvalid, "this worker has no package store")
	}
	if !shaRE.MatchString(in.SHA256) {
		return nil, fail(berth.EInvalid, "package checksum %q is not a sha256", in.SHA256)
	}
	if !imageRefRE.MatchString(in.Base) {
		return nil, fail(berth.EInvalid, "base image %q is not an image reference", in.Base)
	}
	if err := d.checkPushTarget(in.Image); err != nil {
		return nil, err
	}
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return nil, err
	}
	if insp, err := eng.ImageInspect(ctx, in.Image); err == nil && insp.Config != nil && insp.Config.Labels[LabelPackage] == in.SHA256 {
		activity.RecordHeartbeat(ctx, "already built")
	} else {
		// The base must be on the build host or in the configured registry:
		// a build never pulls from the internet.
		if err := d.EnsureImage(ctx, EnsureImageInput{Host: in.Host, Image: in.Base}); err != nil {
			if isType(err, berth.EImage) {
				return nil, fail(berth.EImage, "build %s: base image: %v", in.Image, err)
			}
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(d.packageContext(ctx, in, pw)) }()
		err := buildImage(ctx, eng, pr, in.Image, in.Host.Name)
		_ = pr.CloseWithError(err)
		if err != nil {
			return nil, err
		}
	}
	return d.pushImage(ctx, eng, in.Image, in.Host.Name)
}

// packageContext writes the build context: the Dockerfile, then the package
// as TarForContainer lays it out, every entry moved under package/.
func (d *Docker) packageContext(ctx context.Context, in BuildImageInput, w io.Writer) error {
	tw := tar.NewWriter(w)
	df := buildDockerfile(in.Base, in.SHA256)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, df); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "package/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(d.Packages.TarForContainer(ctx, in.SHA256, pw)) }()
	defer pr.Close()
	if err := retar(tw, tar.NewReader(pr), "package/", nil); err != nil {
		return err
	}
	return tw.Close()
}

// retar copies the entries of tr into tw under prefix. Only directories and
// regular files are kept; names are taken as relative paths (a leading
// "./" or "/" dropped, no ".." element). strip, when set, removes that
// leading element first (CopyFromContainer names entries after the folder).
func retar(tw *tar.Writer, tr *tar.Reader, prefix string, strip *string) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimLeft(strings.TrimPrefix(h.Name, "./"), "/")
		if strip != nil {
			rest, ok := strings.CutPrefix(name, *strip)
			if !ok || (rest != "" && rest[0] != '/') {
				continue
			}
			name = strings.TrimLeft(rest, "/")
		}
		clean := strings.TrimSuffix(name, "/")
		if clean == "" || clean == "." {
			continue
		}
		bad := false
		for _, el := range strings.Split(clean, "/") {
			bad = bad || el == ".."
		}
		if bad {
			return fail(berth.EInvalid, "package entry %q leaves its folder", h.Name)
		}
		out := &tar.Header{Name: prefix + clean, Mode: h.Mode & 0o777, ModTime: h.ModTime}
		switch h.Typeflag {
		case tar.TypeDir:
			out.Typeflag, out.Name = tar.TypeDir, out.Name+"/"
		case tar.TypeReg:
			out.Typeflag, out.Size = tar.TypeReg, h.Size
		default:
			continue // links, devices: never part of a package
		}
		if err := tw.WriteHeader(out); err != nil {
			return err
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, h.Size); err != nil {
				return err
			}
		}
	}
}

// buildImage runs ImageBuild and reads its progress; a build error is final.
func buildImage(ctx context.Context, eng engine.Engine, buildCtx io.Reader, image, host string) error {
	resp, err := eng.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{Tags: []string{image}, Remove: true, ForceRemove: true})
	if err != nil {
		if cerrdefs.IsInvalidArgument(err) || cerrdefs.IsNotFound(err) {
			return fail(berth.EImage, "build %s on %s: %v", image, host, err)
		}
		return fmt.Errorf("build %s on %s: %w", image, host, err)
	}
	defer resp.Body.Close()
	if err := readStream(ctx, resp.Body); err != nil {
		var me *streamError
		if errors.As(err, &me) {
			return fail(berth.EImage, "build %s on %s failed: %s", image, host, me.msg)
		}
		return fmt.Errorf("build %s on %s: %w", image, host, err)
	}
	return nil
}

// pushImage pushes image to its registry, heartbeating progress.
func (d *Docker) pushImage(ctx context.Context, eng engine.Engine, image, host string) (*BuildImageResult, error) {
	activity.RecordHeartbeat(ctx, "push")
	resp, err := eng.ImagePush(ctx, image, client.ImagePushOptions{RegistryAuth: d.registryAuth()})
	if err != nil {
		return nil, fmt.Errorf("push %s from %s: %w", image, host, err)
	}
	defer resp.Close()
	if err := readStream(ctx, resp); err != nil {
		return nil, fmt.Errorf("push %s from %s: %w", image, host, err)
	}
	insp, err := eng.ImageInspect(ctx, image)
	if err != nil {
		return nil, fmt.Errorf("inspect %s on %s: %w", image, host, err)
	}
	return &BuildImageResult{Image: image, ImageID: insp.ID}, nil
}

type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// readStream reads a build or push progress stream to its end, heartbeating
// at most once a second; an error message in the stream is a *streamError.
func readStream(ctx context.Context, r io.Reader) error {
	dec := json.NewDecoder(r)
	last := time.Time{}
	for {
		var msg jsonstream.Message
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != nil {
			return &streamError{msg.Error.Message}
		}
		if time.Since(last) > time.Second {
			status := strings.TrimSpace(msg.Stream)
			if status == "" {
				status = strings.TrimSpace(msg.Status + " " + msg.ID)
			}
			activity.RecordHeartbeat(ctx, status)
			last = time.Now()
		}
	}
}

// CommitInstanceInput commits an instance's container as Image.
type CommitInstanceInput struct {
	Instance berth.PlannedInstance `json:"instance"`
	Image    string                `json:"image"`
	Comment  string                `json:"comment"`
}

// CommitInstance commits the instance's container (its writable layer) as a
// new image, adds what its package volume holds under BuiltPackageDir (a
// bind mount is not part of a commit), tags it Image and pushes it.
func (d *Docker) CommitInstance(ctx context.Context, in CommitInstanceInput) (*BuildImageResult, error) {
	if err := d.checkPushTarget(in.Image); err != nil {
		return nil, err
	}
	eng, id, err := d.ownContainer(ctx, in.Instance)
	if err != nil {
		return nil, err
	}
	activity.RecordHeartbeat(ctx, "commit")
	env, err := commitEnv(ctx, eng, id)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", in.Instance.Name, err)
	}
	base := in.Image + "-commit"
	if _, err := eng.ContainerCommit(ctx, id, client.ContainerCommitOptions{Reference: base, Comment: in.Comment,
		Author: "berth", Config: &container.Config{Env: env}}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fail(berth.ENotFound, "commit %s: %v", in.Instance.Name, err)
		}
		return nil, fmt.Errorf("commit %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	cp, err := eng.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: PackageDir})
	if err != nil {
		return nil, fmt.Errorf("read the package folder of %s: %w", in.Instance.Name, err)
	}
	defer cp.Content.Close()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		df := buildDockerfile(base, "commit-"+in.Instance.Name)
		err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: time.Unix(0, 0)})
		if err == nil {
			_, err = io.WriteString(tw, df)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "package/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)})
		}
		if err == nil {
			dir := "package"
			err = retar(tw, tar.NewReader(cp.Content), "package/", &dir)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err = buildImage(ctx, eng, pr, in.Image, in.Instance.Host.Name)
	_ = pr.CloseWithError(err)
	if err != nil {
		return nil, err
	}
	return d.pushImage(ctx, eng, in.Image, in.Instance.Host.Name)
}

func isType(err error, code berth.Code) bool {
	var ae interface{ Type() string }
	return errors.As(err, &ae) && ae.Type() == string(code)
}

// commitEnv is the environment a committed image keeps: its base image's
// own, with every variable the deploy set (passwords, tokens, hosts)
// emptied. Docker's commit merges the container's environment into the
// image's config unless each key is given, so each is given, without its
// value; the service's spec sets them again on every container it starts.
func commitEnv(ctx context.Context, eng engine.Engine, id string) ([]string, error) {
	c, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	img, err := eng.ImageInspect(ctx, c.Container.Image)
	if err != nil {
		return nil, err
	}
	base := map[string]string{}
	var out []string
	if img.Config != nil {
		for _, kv := range img.Config.Env {
			k, _, _ := strings.Cut(kv, "=")
			base[k] = kv
			out = append(out, kv)
		}
	}
	if c.Container.Config == nil {
		return out, nil
	}
	for _, kv := range c.Container.Config.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := base[k]; ok || k == "PATH" {
			// An image variable keeps the image's own value; PATH is the
			// engine's default when the image has none, not a secret.
			continue
		}
		out = append(out, k+"=")
	}
	return out, nil
}
