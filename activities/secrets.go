package activities

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
)

// SecretSource opens the newest value of a tenant's secret as an
// environment sees it. Values are looked up here, inside the activity, so
// that workflow inputs and histories carry only names.
type SecretSource interface {
	SecretValue(ctx context.Context, tenant, env, name string) ([]byte, error)
}

// ErrNoSecret is what a SecretSource wraps when the secret does not exist.
var ErrNoSecret = errors.New("no such secret")

// secretMounts gives an instance with secrets an anonymous volume at
// /run/secrets. The files are copied into it before the first start: an
// engine writes into a created container's volumes, not into a tmpfs
// (mounted only at start), and a volume is never part of an image made by
// commit. The volume goes with the container (RemoveInstance removes
// volumes).
func secretMounts(svc compose.ServiceSpec) map[string]struct{} {
	if len(svc.Secrets) == 0 {
		return nil
	}
	return map[string]struct{}{compose.SecretsDir: {}}
}

// writeSecrets copies the service's secrets into a stopped container. It is
// idempotent: a retry overwrites the same files with the same values.
func (d *Docker) writeSecrets(ctx context.Context, eng engine.Engine, id string, in StartInstanceInput) error {
	if len(in.Service.Secrets) == 0 {
		return nil
	}
	if d.Secrets == nil {
		return fail(berth.EInvalid, "service %s mounts secrets but this worker has no secret store", in.Service.Name)
	}
	tenant, env, _, err := appIdentity(in.Labels)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time: the same secrets make the same archive.
	at := time.Unix(0, 0)
	for _, m := range in.Service.Secrets {
		v, err := d.Secrets.SecretValue(ctx, tenant, env, m.Name)
		switch {
		case errors.Is(err, ErrNoSecret):
			return fail(berth.EInvalid, "service %s mounts secret %q, which tenant %s has no value for in environment %s", in.Service.Name, m.Name, tenant, env)
		case err != nil:
			return fmt.Errorf("secret %q: %w", m.Name, err)
		}
		hdr := &tar.Header{Name: m.Target, Mode: int64(m.Mode), Size: int64(len(v)), ModTime: at, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(v); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	// Not CopyUIDGID: the engine would look the container's user up on its
	// own machine. The files are root's; the mode says who else reads them.
	_, err = eng.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: compose.SecretsDir, Content: &buf})
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsInvalidArgument(err) || cerrdefs.IsNotFound(err):
		return fail(berth.EHostRefused, "write secrets into %s: %v", in.Instance.Name, err)
	default:
		return fmt.Errorf("write secrets into %s: %w", in.Instance.Name, err)
	}
}
