package activities

import (
	"context"
	"fmt"
	"io"
	"regexp"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth/activities/compose"
	"github.com/berth-dev/berth/store"
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
	Instance      store.PlannedInstance `json:"instance"`
	Service       compose.ServiceSpec   `json:"service"`
	SHA256        string                `json:"sha256"`
	HealthTimeout int64                 `json:"healthTimeoutMs"`
}

// InstallPackage copies a package into the instance's package volume through
// the Docker API (no SSH), restarts the instance and waits until it is
// healthy. Copying again overwrites the same files, so a retry is harmless.
func (d *Docker) InstallPackage(ctx context.Context, in InstallPackageInput) error {
	if d.Packages == nil {
		return fail(ErrInvalid, "this worker has no package store")
	}
	if !shaRE.MatchString(in.SHA256) {
		return fail(ErrInvalid, "package checksum %q is not a sha256", in.SHA256)
	}
	eng, err := d.Engines.Engine(ctx, in.Instance.Host)
	if err != nil {
		return err
	}
	id, err := d.findOwn(ctx, eng, in.Instance)
	if err != nil {
		return err
	}
	if id == "" {
		return fail(ErrNotFound, "instance %s has no container on %s", in.Instance.Name, in.Instance.Host.Name)
	}
	activity.RecordHeartbeat(ctx, "copy")
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(d.Packages.TarForContainer(ctx, in.SHA256, pw)) }()
	_, err = eng.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: PackageDir, Content: pr})
	_ = pr.CloseWithError(err)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fail(ErrNotFound, "copy package into %s: %v", in.Instance.Name, err)
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
