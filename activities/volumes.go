package activities

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/engine"
)

// LabelVolumeSize is the size, in bytes, a named volume was declared with
// (or the default): what the volume quotas count it as, and what the disk
// pass measures it against.
const LabelVolumeSize = "berth.volume.size"

// noQuotaSupport is the local driver's answer to a size on a filesystem
// without project quotas.
const noQuotaSupport = "no quota support"

// instanceDirs are the folders every instance gets under /berth: its
// package, its log files and its own files.
var instanceDirs = []string{"package", "logs", "files"}

// instanceVolume names the volume of one of an instance's folders.
func instanceVolume(instance, dir string) string { return instance + "." + dir }

// ensureVolumes creates the instance's own folders and the service's
// named volumes on the instance's host before its container. The folders
// are labelled with the instance's uid, so they are removed with it; the
// named volumes with their application and their declared size, so the
// disk pass can measure them. The size is also given
// to the local driver, which holds the volume to it on XFS with project
// quotas; elsewhere the driver refuses the option, and the volume is made
// without it (the disk pass then reports a volume over its size). A volume
// that exists is left as it is, whatever it was made with.
func ensureVolumes(ctx context.Context, eng engine.Engine, in StartInstanceInput) error {
	tenant, env, app, err := appIdentity(in.Labels)
	if err != nil {
		return err
	}
	pi := in.Instance
	for _, dir := range instanceDirs {
		name := instanceVolume(pi.Name, dir)
		if _, err := eng.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: "local",
			Labels: appLabels(tenant, env, app, map[string]string{LabelInstance: pi.Name, LabelUID: pi.UID})}); err != nil {
			return fmt.Errorf("volume %s on %s: %w", name, pi.Host.Name, err)
		}
	}
	seen := map[string]bool{}
	for _, v := range in.Service.Volumes {
		if v.Type != "volume" || v.Source == "" || seen[v.Source] {
			continue
		}
		seen[v.Source] = true
		size := strconv.FormatInt(v.Size(), 10)
		opts := client.VolumeCreateOptions{Name: berth.AppScoped(tenant, env, app, v.Source), Driver: "local",
			DriverOpts: map[string]string{"size": size},
			Labels:     appLabels(tenant, env, app, map[string]string{LabelVolumeSize: size})}
		_, err := eng.VolumeCreate(ctx, opts)
		if err != nil && strings.Contains(err.Error(), noQuotaSupport) {
			opts.DriverOpts = nil
			_, err = eng.VolumeCreate(ctx, opts)
		}
		if err != nil {
			return fmt.Errorf("volume %s on %s: %w", opts.Name, in.Instance.Host.Name, err)
		}
	}
	return nil
}

// removeInstanceVolumes removes the folders of the instance with uid: the
// engine keeps named volumes when their container goes. Those of an
// instance without a uid (none is made so) are left alone.
func removeInstanceVolumes(ctx context.Context, eng engine.Engine, uid string) error {
	if uid == "" {
		return nil
	}
	list, err := eng.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", LabelUID+"="+uid)})
	if err != nil {
		return err
	}
	for _, v := range list.Items {
		if _, err := eng.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// MeasureVolumes reads, through the host's engine, how much each volume
// berth made there holds: named volumes against their declared size, an
// instance's folders without one. Volumes made before berth labelled them
// are not counted.
func (d *Docker) MeasureVolumes(ctx context.Context, h berth.HostRef) ([]berth.VolumeUse, error) {
	eng, err := d.engine(ctx, h)
	if err != nil {
		return nil, err
	}
	du, err := eng.DiskUsage(ctx, client.DiskUsageOptions{Volumes: true, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("disk usage of %s: %w", h.Name, err)
	}
	out := []berth.VolumeUse{}
	for _, v := range du.Volumes.Items {
		tenant, env, app, err := appIdentity(v.Labels)
		if err != nil {
			continue // not berth's, or made before berth labelled volumes
		}
		size, _ := strconv.ParseInt(v.Labels[LabelVolumeSize], 10, 64) // 0: an instance's folder
		used := int64(-1)
		if v.UsageData != nil {
			used = v.UsageData.Size
		}
		out = append(out, berth.VolumeUse{Name: v.Name, Tenant: tenant, Env: env, App: app, SizeBytes: size, UsedBytes: used})
	}
	return out, nil
}
