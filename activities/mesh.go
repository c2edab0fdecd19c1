package activities

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/mesh"
)

// MeshKeys hands out each application's tunnel key.
type MeshKeys interface {
	MeshKey(appKey string) []byte
}

// Labels of mesh containers. They carry no berth.tenant label, so nothing
// that lists an application's instances counts them.
const (
	LabelMesh     = "berth.mesh"
	LabelMeshHash = "berth.mesh.hash"
)

// meshNetwork is the compose-side name of the network mesh containers meet
// on and publish through. Compose keys cannot start with "_", so no file's
// network shares its engine-side name.
const meshNetwork = "_mesh"

// SyncMeshInput is an application's placement, for the relays between its hosts.
type SyncMeshInput struct {
	Tenant    string                  `json:"tenant"`
	Env       string                  `json:"env"`
	App       string                  `json:"app"`
	Services  []compose.ServiceSpec   `json:"services"`
	Instances []berth.PlannedInstance `json:"instances"`
	// Remove takes the application's relays, and its networks left empty,
	// off the hosts of Instances: the undo of a deploy that failed.
	Remove bool `json:"remove,omitempty"`
}

// SyncMeshResult names the relays in place after a sync, per host.
type SyncMeshResult struct {
	Relays map[string][]string `json:"relays,omitempty"`
}

// meshSelf is berth's own executable and its digest, read once.
type meshSelf struct {
	once sync.Once
	path string
	tag  string
	err  error
}

func (m *meshSelf) load() (string, string, error) {
	m.once.Do(func() {
		if m.path, m.err = os.Executable(); m.err != nil {
			return
		}
		f, err := elf.Open(m.path)
		if err != nil {
			m.err = fmt.Errorf("read %s: %w", m.path, err)
			return
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				m.err = berth.Errorf(berth.EInvalid, "this worker's berth binary is dynamically linked and cannot run as a relay in a scratch image; build it with CGO_ENABLED=0 (make build does)")
			}
		}
		f.Close()
		if m.err != nil {
			return
		}
		b, err := os.ReadFile(m.path)
		if err != nil {
			m.err = err
			return
		}
		sum := sha256.Sum256(b)
		m.tag = "berth-mesh:" + hex.EncodeToString(sum[:6])
	})
	return m.path, m.tag, m.err
}

// SyncMesh puts relays on an application's hosts so that every service is
// reachable by name from every host the application uses: a gateway per
// host, and a forwarder per host for each service that runs elsewhere only.
// Relays no longer wanted are removed. With one host there is nothing to
// carry, and any relays of the application on it go.
func (d *Docker) SyncMesh(ctx context.Context, in SyncMeshInput) (*SyncMeshResult, error) {
	appKey := berth.AppKey(in.Tenant, in.Env, in.App)
	var hosts []berth.HostRef
	present := map[uint]map[string]bool{}
	for _, pi := range in.Instances {
		if present[pi.Host.ID] == nil {
			present[pi.Host.ID] = map[string]bool{}
			hosts = append(hosts, pi.Host)
		}
		present[pi.Host.ID][pi.Service] = true
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	res := &SyncMeshResult{Relays: map[string][]string{}}
	if len(hosts) < 2 || in.Remove {
		for _, h := range hosts {
			eng, err := d.engine(ctx, h)
			if err != nil {
				return nil, err
			}
			if err := removeMeshContainers(ctx, eng, appKey, nil); err != nil {
				return nil, fmt.Errorf("remove relays on %s: %w", h.Name, err)
			}
			if in.Remove {
				if err := removeEmptyAppNetworks(ctx, eng, in.Tenant, in.Env, in.App); err != nil {
					return nil, fmt.Errorf("remove networks on %s: %w", h.Name, err)
				}
			}
		}
		return res, nil
	}
	if d.Mesh == nil {
		return nil, fail(berth.EInvalid, "no mesh key is configured on this worker")
	}
	key := d.Mesh.MeshKey(appKey)

	ports := map[string][]int{}
	for _, s := range in.Services {
		ports[s.Name] = s.ReachablePorts()
	}

	// Hosts are independent, and a relay's start is the slow part (seconds
	// on a busy engine), so every host's relays are made at once: first the
	// gateways, whose published ports the forwarders need, then the
	// forwarders.
	var mu sync.Mutex
	beat := func(detail string) {
		mu.Lock()
		defer mu.Unlock()
		activity.RecordHeartbeat(ctx, detail)
	}
	gateways := map[uint]string{}
	wanted := map[uint]map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	for _, h := range hosts {
		g.Go(func() error {
			beat("gateway " + h.Name)
			eng, err := d.engine(gctx, h)
			if err != nil {
				return err
			}
			if err := d.ensureMeshImage(gctx, eng, h, beat); err != nil {
				return err
			}
			cfg := mesh.Config{Role: mesh.RoleGateway}
			nets := []compose.NetworkAttach{{Name: meshNetwork}}
			seen := map[string]bool{meshNetwork: true}
			for _, s := range in.Services {
				if !present[h.ID][s.Name] {
					continue
				}
				for _, p := range ports[s.Name] {
					cfg.Allow = append(cfg.Allow, mesh.Target{Service: s.Name, Port: p})
				}
				for _, n := range s.AppNetworks() {
					if !seen[n.Name] {
						seen[n.Name] = true
						nets = append(nets, compose.NetworkAttach{Name: n.Name, Internal: n.Internal})
					}
				}
			}
			name := berth.AppScoped(in.Tenant, in.Env, in.App, "_gateway")
			port, err := d.ensureRelay(gctx, eng, h, in, name, cfg, key, nets, true)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			gateways[h.ID] = net.JoinHostPort(h.IP, strconv.Itoa(port))
			wanted[h.ID] = map[string]bool{name: true}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	g, gctx = errgroup.WithContext(ctx)
	for _, h := range hosts {
		eng, err := d.engine(ctx, h)
		if err != nil {
			return nil, err
		}
		hg, hctx := errgroup.WithContext(gctx)
		for _, s := range in.Services {
			if present[h.ID][s.Name] || len(ports[s.Name]) == 0 {
				continue
			}
			var peers []string
			for _, o := range hosts {
				if present[o.ID][s.Name] {
					peers = append(peers, gateways[o.ID])
				}
			}
			if len(peers) == 0 {
				continue
			}
			cfg := mesh.Config{Role: mesh.RoleForward, Service: s.Name, Ports: ports[s.Name], Peers: peers}
			nets := []compose.NetworkAttach{{Name: meshNetwork}}
			for _, n := range s.AppNetworks() {
				nets = append(nets, compose.NetworkAttach{Name: n.Name, Internal: n.Internal,
					Aliases: append([]string{s.Name}, n.Aliases...)})
			}
			name := berth.AppScoped(in.Tenant, in.Env, in.App, "_forward-"+s.Name)
			wanted[h.ID][name] = true
			hg.Go(func() error {
				beat("forwarder " + s.Name + " on " + h.Name)
				_, err := d.ensureRelay(hctx, eng, h, in, name, cfg, key, nets, false)
				return err
			})
		}
		keep := wanted[h.ID]
		g.Go(func() error {
			if err := hg.Wait(); err != nil {
				return err
			}
			if err := removeMeshContainers(gctx, eng, appKey, keep); err != nil {
				return fmt.Errorf("remove old relays on %s: %w", h.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, h := range hosts {
		for n := range wanted[h.ID] {
			res.Relays[h.Name] = append(res.Relays[h.Name], n)
		}
		sort.Strings(res.Relays[h.Name])
	}
	return res, nil
}

// ensureMeshImage puts the relay image, berth's own binary in a scratch
// image, on the host unless it is there. Concurrent callers for one host
// share one build: each would otherwise send the whole binary.
func (d *Docker) ensureMeshImage(ctx context.Context, eng engine.Engine, h berth.HostRef, beat func(string)) error {
	path, tag, err := d.self.load()
	if err != nil {
		return err
	}
	if _, err := eng.ImageInspect(ctx, tag); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect %s on %s: %w", tag, h.Name, err)
	}
	_, err, _ = d.meshBuilds.Do(h.Endpoint+"\n"+tag, func() (any, error) {
		if _, err := eng.ImageInspect(ctx, tag); err == nil {
			return nil, nil // built by the call that just ended
		}
		beat("relay image on " + h.Name)
		// Streamed: the binary is tens of megabytes, never held in memory.
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeMeshContext(pw, path)) }()
		err := buildImage(ctx, eng, pr, tag, h.Name)
		pr.CloseWithError(err) // a build that ended early stops the writer
		return nil, err
	})
	return err
}

// writeMeshContext writes the relay image's build context as a tar.
func writeMeshContext(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	dockerfile := []byte("FROM scratch\nCOPY berth /berth\nLABEL " + LabelMesh + "=image\nUSER 65534:65534\nENTRYPOINT [\"/berth\", \"relay\"]\n")
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	if _, err := tw.Write(dockerfile); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "berth", Mode: 0o755, Size: fi.Size()}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

// ensureRelay makes sure a relay container with this configuration runs,
// replacing one with another, and returns its published gateway port (0 for
// a forwarder).
func (d *Docker) ensureRelay(ctx context.Context, eng engine.Engine, h berth.HostRef, in SyncMeshInput, name string,
	cfg mesh.Config, key []byte, nets []compose.NetworkAttach, gateway bool) (int, error) {
	_, image, err := d.self.load()
	if err != nil {
		return 0, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return 0, err
	}
	netJSON, _ := json.Marshal(nets)
	// The key's digest (never the key) is part of the hash, so that a new
	// payload key replaces every relay.
	keySum := sha256.Sum256(key)
	sum := sha256.Sum256(append(append([]byte(image+"\n"+h.IP+"\n"+hex.EncodeToString(keySum[:])+"\n"), cfgJSON...), netJSON...))
	hash := hex.EncodeToString(sum[:12])

	insp, err := eng.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case err == nil && insp.Container.Config != nil && insp.Container.Config.Labels[LabelMeshHash] == hash &&
		insp.Container.State != nil && insp.Container.State.Running:
		return publishedGatewayPort(insp.Container, gateway)
	case err == nil:
		if _, err := eng.ContainerRemove(ctx, insp.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return 0, fmt.Errorf("replace relay %s on %s: %w", name, h.Name, err)
		}
	case !cerrdefs.IsNotFound(err):
		return 0, fmt.Errorf("inspect relay %s on %s: %w", name, h.Name, err)
	}

	attached, err := d.ensureNetworks(ctx, eng, h, in.Tenant, in.Env, in.App, nets)
	if err != nil {
		return 0, err
	}
	cl := map[string]string{LabelMesh: cfg.Role, LabelMeshHash: hash, LabelAppKey: berth.AppKey(in.Tenant, in.Env, in.App)}
	cc := &container.Config{Image: image, Labels: cl, Hostname: "relay",
		Env: []string{mesh.EnvConfig + "=" + string(cfgJSON), mesh.EnvKey + "=" + hex.EncodeToString(key)}}
	hc := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		NetworkMode:    container.NetworkMode(attached[0].ID),
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Resources:      container.Resources{Memory: 64 << 20, PidsLimit: pidsLimit(256)},
		LogConfig:      logRotation(compose.ServiceSpec{}),
	}
	if gateway {
		p, _ := network.ParsePort(fmt.Sprintf("%d/tcp", mesh.GatewayPort))
		ip, err := parseHostIP(h)
		if err != nil {
			return 0, err
		}
		cc.ExposedPorts = network.PortSet{p: {}}
		// No host port: the engine picks a free one and the sync reads it back.
		hc.PortBindings = network.PortMap{p: {{HostIP: ip}}}
	}
	created, err := eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cc, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			attached[0].ID: {Aliases: attached[0].Aliases}}}})
	if err != nil {
		return 0, fmt.Errorf("create relay %s on %s: %w", name, h.Name, err)
	}
	if err := connectNetworks(ctx, eng, created.ID, attached, h); err != nil {
		return 0, err
	}
	if _, err := eng.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return 0, fmt.Errorf("start relay %s on %s: %w", name, h.Name, err)
	}
	after, err := eng.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("inspect relay %s on %s: %w", name, h.Name, err)
	}
	return publishedGatewayPort(after.Container, gateway)
}

func publishedGatewayPort(c container.InspectResponse, gateway bool) (int, error) {
	if !gateway {
		return 0, nil
	}
	if c.NetworkSettings != nil {
		p, _ := network.ParsePort(fmt.Sprintf("%d/tcp", mesh.GatewayPort))
		for _, b := range c.NetworkSettings.Ports[p] {
			if n, err := strconv.Atoi(b.HostPort); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("relay %s has no published gateway port", strings.TrimPrefix(c.Name, "/"))
}

// removeMeshContainers removes the application's relays on an engine,
// except those named in keep.
// RemoveHostRelays removes every application's relays from a host that
// holds no live instance: what a host lost while it was down (its
// instances went elsewhere, and no mesh change could reach it) leaves.
func (d *Docker) RemoveHostRelays(ctx context.Context, h berth.HostRef) (int, error) {
	eng, err := d.engine(ctx, h)
	if err != nil {
		return 0, err
	}
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelMesh).Add("label", LabelAppKey)})
	if err != nil {
		return 0, fmt.Errorf("list relays on %s: %w", h.Name, err)
	}
	for _, c := range list.Items {
		if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return 0, fmt.Errorf("remove relay on %s: %w", h.Name, err)
		}
	}
	return len(list.Items), nil
}

func removeMeshContainers(ctx context.Context, eng engine.Engine, appKey string, keep map[string]bool) error {
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelMesh).Add("label", LabelAppKey+"="+appKey)})
	if err != nil {
		return err
	}
	for _, c := range list.Items {
		if len(c.Names) > 0 && keep[strings.TrimPrefix(c.Names[0], "/")] {
			continue
		}
		if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}
