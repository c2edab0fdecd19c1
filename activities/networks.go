package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
)

// Labels berth writes on an application's networks and volumes.
const (
	LabelAppKey  = "berth.appkey"
	LabelNetwork = "berth.network"
)

// appNetwork is one compose network of an application on one host.
type appNetwork struct {
	ID      string
	Name    string // engine-side name, berth.AppScoped
	Aliases []string
}

// networkLocks serialises network creation per engine-side name within this
// worker: Docker 20.10 creates a second network of the same name when asked
// twice (the client no longer sends CheckDuplicate), and parallel instance
// starts of one application ask at the same moment.
type networkLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (l *networkLocks) lock(key string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m, ok := l.locks[key]
	if !ok {
		m = &sync.Mutex{}
		l.locks[key] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// appLabels are the labels that tie a network or a volume to its
// application, with extra added: what appIdentity reads back, and the app
// key lists filter on.
func appLabels(tenant, env, app string, extra map[string]string) map[string]string {
	labels := map[string]string{"berth.tenant": tenant, "berth.env": env, "berth.app": app, LabelAppKey: berth.AppKey(tenant, env, app)}
	for k, v := range extra {
		labels[k] = v
	}
	return labels
}

// appIdentity reads tenant, environment and application from berth's labels.
func appIdentity(labels map[string]string) (tenant, env, app string, err error) {
	tenant, env, app = labels["berth.tenant"], labels["berth.env"], labels["berth.app"]
	if tenant == "" || env == "" || app == "" {
		return "", "", "", fail(berth.EInvalid, "instance labels lack tenant, env or app")
	}
	return tenant, env, app, nil
}

// ensureAppNetworks makes sure the service's networks exist on the host and
// returns them in the service's order, each with the names the instance
// answers to there: the service name first, then the file's aliases.
func (d *Docker) ensureAppNetworks(ctx context.Context, eng engine.Engine, in StartInstanceInput) ([]appNetwork, error) {
	tenant, env, app, err := appIdentity(in.Labels)
	if err != nil {
		return nil, err
	}
	var atts []compose.NetworkAttach
	for _, at := range in.Service.AppNetworks() {
		at.Aliases = append([]string{in.Service.Name}, at.Aliases...)
		atts = append(atts, at)
	}
	return d.ensureNetworks(ctx, eng, in.Instance.Host, tenant, env, app, atts)
}

// ensureNetworks makes sure an application's networks exist on the host, in
// the given order, each with the aliases its endpoint will answer to. The
// instances and the mesh's relays both attach through it.
func (d *Docker) ensureNetworks(ctx context.Context, eng engine.Engine, h berth.HostRef, tenant, env, app string, atts []compose.NetworkAttach) ([]appNetwork, error) {
	var out []appNetwork
	for _, at := range atts {
		name := berth.AppScoped(tenant, env, app, at.Name)
		id, err := d.ensureAppNetwork(ctx, eng, h, name, at.Internal, appLabels(tenant, env, app, map[string]string{LabelNetwork: at.Name}))
		if err != nil {
			return nil, err
		}
		out = append(out, appNetwork{ID: id, Name: name, Aliases: at.Aliases})
	}
	return out, nil
}

// ensureAppNetwork returns the id of the bridge network called name, creating
// it when missing. Should two workers have created it at once, every caller
// settles on the oldest and removes the others while they are still empty.
func (d *Docker) ensureAppNetwork(ctx context.Context, eng engine.Engine, h berth.HostRef, name string, internal bool, labels map[string]string) (string, error) {
	unlock := d.netLocks.lock(h.Endpoint + "|" + name)
	defer unlock()
	found, err := networksNamed(ctx, eng, name)
	if err != nil {
		return "", fmt.Errorf("list networks on %s: %w", h.Name, err)
	}
	if len(found) == 0 {
		opts := client.NetworkCreateOptions{Driver: "bridge", Internal: internal, Labels: labels}
		if h.IP != "" {
			// Ports published without a host IP would otherwise bind every
			// address of the host.
			opts.Options = map[string]string{"com.docker.network.bridge.host_binding_ipv4": h.IP}
		}
		if _, err := eng.NetworkCreate(ctx, name, opts); err != nil {
			if cerrdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "non-overlapping") {
				return "", fail(berth.EHostRefused, "create network %s on %s: %v", name, h.Name, err)
			}
			return "", fmt.Errorf("create network %s on %s: %w", name, h.Name, err)
		}
		if found, err = networksNamed(ctx, eng, name); err != nil {
			return "", fmt.Errorf("list networks on %s: %w", h.Name, err)
		}
		if len(found) == 0 {
			return "", fmt.Errorf("network %s on %s vanished after it was created", name, h.Name)
		}
	}
	for _, extra := range found[1:] {
		// In use means another worker already attached to it; leave it.
		_, _ = eng.NetworkRemove(ctx, extra.ID, client.NetworkRemoveOptions{})
	}
	return found[0].ID, nil
}

// networksNamed lists the networks with exactly this name, oldest first.
func networksNamed(ctx context.Context, eng engine.Engine, name string) ([]network.Summary, error) {
	// The name filter matches substrings; the exact match is checked here.
	list, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, err
	}
	var out []network.Summary
	for _, n := range list.Items {
		if n.Name == name {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// connectNetworks joins a created container to the networks after the first
// (the engine takes only one at create), skipping those it is already on.
func connectNetworks(ctx context.Context, eng engine.Engine, id string, nets []appNetwork, h berth.HostRef) error {
	if len(nets) < 2 {
		return nil
	}
	insp, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect %s: %w", id, err)
	}
	for _, n := range nets[1:] {
		if insp.Container.NetworkSettings != nil {
			if _, ok := insp.Container.NetworkSettings.Networks[n.Name]; ok {
				continue
			}
		}
		_, err := eng.NetworkConnect(ctx, n.ID, client.NetworkConnectOptions{Container: id,
			EndpointConfig: &network.EndpointSettings{Aliases: n.Aliases}})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("connect %s to %s on %s: %w", id, n.Name, h.Name, err)
		}
	}
	return nil
}

// removeEmptyAppNetworks removes the application's networks on the host
// that no container uses any more, after its relays when no instance of the
// application is left on the host. A network still in use is kept: the
// engine refuses, and the last instance's removal comes back for it.
func removeEmptyAppNetworks(ctx context.Context, eng engine.Engine, tenant, env, app string) error {
	appKey := berth.AppKey(tenant, env, app)
	left, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", "berth.tenant="+tenant).Add("label", "berth.env="+env).Add("label", "berth.app="+app)})
	if err != nil {
		return err
	}
	if len(left.Items) == 0 {
		if err := removeMeshContainers(ctx, eng, appKey, nil); err != nil {
			return err
		}
	}
	list, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", LabelAppKey+"="+appKey)})
	if err != nil {
		return err
	}
	for _, n := range list.Items {
		insp, err := eng.NetworkInspect(ctx, n.ID, client.NetworkInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if len(insp.Network.Containers) > 0 {
			continue
		}
		if _, err := eng.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil &&
			!cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "active endpoints") {
			return err
		}
	}
	return nil
}

// appVolume is the engine-side name of an application's named volume.
func appVolume(labels map[string]string, v compose.VolumeSpec) (string, error) {
	tenant, env, app, err := appIdentity(labels)
	if err != nil {
		return "", err
	}
	return berth.AppScoped(tenant, env, app, v.Source), nil
}
