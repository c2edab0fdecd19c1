package activities

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/singleflight"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/logship"
)

// PlatformNetwork is the bridge network ProbeHost makes sure of on every
// host. No instance joins it (each application has its own networks); it
// proves, before any deploy, that berth may create networks on the engine.
const PlatformNetwork = "berth"

// MinAPIVersion is the oldest engine API berth supports (Docker 20.10).
const MinAPIVersion = "1.41"

// Docker drives Docker engines.
type Docker struct {
	Engines engine.Engines
	// Registry, when set, is where missing images are pulled from; without it
	// a missing image is a clear error, never a pull from the internet.
	Registry string
	// Mirror, when set, is the host:port of a pull-through mirror of
	// Registry in this worker's region: images of Registry are pulled from
	// it first, so a region's hosts fetch layers from near them, and from
	// Registry when the mirror fails.
	Mirror string
	// RegistryAuth is the engine's X-Registry-Auth value for Registry (see
	// RegistryAuth): the credentials live with the workers, never in a
	// workflow's input or an image.
	RegistryAuth string
	// TerminalKey proves to the API that a terminal relay is this worker's
	// (berth.TerminalRelayToken); derived from the payload key file.
	TerminalKey []byte
	// PollInterval is how often health is checked while waiting.
	PollInterval time.Duration
	HTTP         *http.Client
	// Packages is the artifact store file releases install from.
	Packages PackageSource
	// ExecAllow lists the absolute paths a release's post-upload command may
	// run (BERTH_EXEC_ALLOW); the API checks it too.
	ExecAllow []string

	// Mesh gives applications their tunnel keys for relays between hosts.
	Mesh MeshKeys
	// Secrets opens the values of the secrets services mount.
	Secrets SecretSource

	netLocks networkLocks
	self     meshSelf
	// meshBuilds makes one build of the relay image per host at a time:
	// every deploy that spans hosts asks for it, many at once on a new host.
	meshBuilds singleflight.Group
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// RegistryAuth encodes registry credentials the way engines take them.
func RegistryAuth(user, password, server string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password, "serveraddress": server})
	return base64.URLEncoding.EncodeToString(b)
}

// registryAuth is the X-Registry-Auth value: the credentials, or an empty
// config, which engines want for a push all the same.
func (d *Docker) registryAuth() string {
	if d.RegistryAuth != "" {
		return d.RegistryAuth
	}
	return base64.URLEncoding.EncodeToString([]byte("{}"))
}

// NewDocker returns the Docker activities.
func NewDocker(engines engine.Engines, registry string) *Docker {
	return &Docker{Engines: engines, Registry: registry, PollInterval: 25 * time.Millisecond,
		HTTP: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// ProbeHost checks an engine answers, records what it is, and makes sure the
// platform network exists on it.
func (d *Docker) ProbeHost(ctx context.Context, h berth.HostRef) (*berth.HostFacts, error) {
	eng, err := d.engine(ctx, h)
	if err != nil {
		return nil, err
	}
	ping, err := eng.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return nil, fmt.Errorf("host %s (%s) does not answer: %w", h.Name, h.Endpoint, err)
	}
	if versionLess(ping.APIVersion, MinAPIVersion) {
		return nil, fail(berth.EHostRefused, "host %s speaks Docker API %s; berth needs %s or newer", h.Name, ping.APIVersion, MinAPIVersion)
	}
	ver, err := eng.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return nil, fmt.Errorf("host %s version: %w", h.Name, err)
	}
	info, err := eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("host %s info: %w", h.Name, err)
	}
	netID, err := d.ensureNetwork(ctx, eng)
	if err != nil {
		return nil, fmt.Errorf("host %s platform network: %w", h.Name, err)
	}
	return &berth.HostFacts{EngineVersion: ver.Version, APIVersion: ping.APIVersion, CPUs: info.Info.NCPU,
		MemoryBytes: info.Info.MemTotal, NetworkID: netID}, nil
}

func (d *Docker) ensureNetwork(ctx context.Context, eng engine.Engine) (string, error) {
	n, err := eng.NetworkInspect(ctx, PlatformNetwork, client.NetworkInspectOptions{})
	if err == nil {
		return n.Network.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", err
	}
	created, err := eng.NetworkCreate(ctx, PlatformNetwork, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{"berth.platform": "1"}})
	if err != nil && cerrdefs.IsConflict(err) {
		// Another probe made it first.
		n, err := eng.NetworkInspect(ctx, PlatformNetwork, client.NetworkInspectOptions{})
		return n.Network.ID, err
	}
	return created.ID, err
}

func versionLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	if len(pa) != 2 || len(pb) != 2 {
		return a < b
	}
	ma, _ := strconv.Atoi(pa[0])
	mb, _ := strconv.Atoi(pb[0])
	na, _ := strconv.Atoi(pa[1])
	nb, _ := strconv.Atoi(pb[1])
	return ma < mb || (ma == mb && na < nb)
}

// EnsureImageInput names an image that must be present on a host.
type EnsureImageInput struct {
	Host  berth.HostRef `json:"host"`
	Image string        `json:"image"`
}

// EnsureImage makes sure an image is on a host, pulling it from the
// configured registry when it is missing. It heartbeats while pulling.
func (d *Docker) EnsureImage(ctx context.Context, in EnsureImageInput) error {
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return err
	}
	if _, err := eng.ImageInspect(ctx, in.Image); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s on %s: %w", in.Image, in.Host.Name, err)
	}
	if d.Registry == "" || !strings.HasPrefix(in.Image, d.Registry+"/") {
		return fail(berth.EImage, "image %q is not on host %s and no configured registry holds it (registry: %q)", in.Image, in.Host.Name, d.Registry)
	}
	// A digest names an image by its registry's repository, which a
	// mirror's copy would not carry: those come from the registry.
	if d.Mirror != "" && !strings.Contains(in.Image, "@") {
		err := d.pullFromMirror(ctx, eng, in)
		if err == nil {
			return nil
		}
		activity.GetLogger(ctx).Warn("the region's mirror did not give the image; pulling from the registry",
			"mirror", d.Mirror, "image", in.Image, "host", in.Host.Name, "error", err)
		activity.RecordHeartbeat(ctx, "mirror "+d.Mirror+" failed; pulling from "+d.Registry)
	}
	return d.pull(ctx, eng, in.Host, in.Image)
}

// pullFromMirror pulls the image under the mirror's name and tags it with
// the registry's, the name instances are created from; the mirror's name
// is taken off again, so the host holds one name per image as without it.
func (d *Docker) pullFromMirror(ctx context.Context, eng engine.Engine, in EnsureImageInput) error {
	mirrored := d.Mirror + strings.TrimPrefix(in.Image, d.Registry)
	if err := d.pull(ctx, eng, in.Host, mirrored); err != nil {
		return err
	}
	_, tagErr := eng.ImageTag(ctx, client.ImageTagOptions{Source: mirrored, Target: in.Image})
	// The mirror's name goes whether or not the tag took, so a failed tag
	// leaves no stray name behind the registry's pull that follows.
	if _, err := eng.ImageRemove(ctx, mirrored, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) && tagErr == nil {
		return fmt.Errorf("untag %s on %s: %w", mirrored, in.Host.Name, err)
	}
	if tagErr != nil {
		return fmt.Errorf("tag %s as %s on %s: %w", mirrored, in.Image, in.Host.Name, tagErr)
	}
	return nil
}

// pull pulls ref onto a host, heartbeating with the engine's progress.
func (d *Docker) pull(ctx context.Context, eng engine.Engine, h berth.HostRef, ref string) error {
	resp, err := eng.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.registryAuth()})
	if err != nil {
		return fmt.Errorf("pull %s on %s: %w", ref, h.Name, err)
	}
	defer resp.Close()
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return fmt.Errorf("pull %s on %s: %w", ref, h.Name, err)
		}
		if msg.Error != nil {
			return fail(berth.EImage, "pull %s on %s: %s", ref, h.Name, msg.Error.Message)
		}
		activity.RecordHeartbeat(ctx, msg.Status)
	}
	return nil
}

// StartInstanceInput is one instance to create, start and wait for.
type StartInstanceInput struct {
	Instance berth.PlannedInstance `json:"instance"`
	Service  compose.ServiceSpec   `json:"service"`
	// Labels are berth's own labels (tenant, env, app, run); the instance's
	// name and uid are added here.
	Labels        map[string]string `json:"labels"`
	HealthTimeout time.Duration     `json:"healthTimeout"`
}

// InstanceResult says where an instance runs.
type InstanceResult struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerId"`
	IP          string `json:"ip"`
}

// Label keys berth writes on its containers.
const (
	LabelInstance = "berth.instance"
	LabelUID      = "berth.uid"
	LabelService  = "berth.service"
	// LabelHost names the host record that placed the container: two
	// records on one engine must not take each other's containers for
	// orphans.
	LabelHost = "berth.host"
	// LabelLogTag is the tag of every line the instance writes: the
	// engine copies it into each line of its log file (the json-file
	// driver's labels option), where the host's log shipper reads it
	// (deploy/rsyslog). No dot: rsyslog reads it as a JSON field name.
	LabelLogTag = "berth_logtag"
)

// StartInstance creates the instance's container unless it exists, starts it
// unless it runs, and waits until it is healthy. A retry adopts the container
// an earlier attempt made (same name and uid) rather than making another.
func (d *Docker) StartInstance(ctx context.Context, in StartInstanceInput) (*InstanceResult, error) {
	eng, err := d.engine(ctx, in.Instance.Host)
	if err != nil {
		return nil, err
	}
	name := in.Instance.Name
	activity.RecordHeartbeat(ctx, "create")
	id, err := d.findOwn(ctx, eng, in.Instance)
	if err != nil {
		return nil, err
	}
	var nets []appNetwork
	if !in.Service.NoNetwork {
		activity.RecordHeartbeat(ctx, "networks")
		if nets, err = d.ensureAppNetworks(ctx, eng, in); err != nil {
			return nil, err
		}
	}
	if id == "" {
		activity.RecordHeartbeat(ctx, "volumes")
		if err := ensureVolumes(ctx, eng, in); err != nil {
			return nil, err
		}
		opts, err := containerOptions(in, nets)
		if err != nil {
			return nil, err
		}
		created, err := eng.ContainerCreate(ctx, opts)
		switch {
		case err == nil:
			id = created.ID
		case cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "network"):
			// The last instance of the app on this host was removed between
			// our ensure and our create, and took the network with it.
			return nil, fmt.Errorf("create %s on %s: %w", name, in.Instance.Host.Name, err)
		case cerrdefs.IsConflict(err):
			// A concurrent attempt created it between our look and our create.
			if id, err = d.findOwn(ctx, eng, in.Instance); err != nil {
				return nil, err
			}
			if id == "" {
				return nil, fmt.Errorf("create %s: name conflict and no container found", name)
			}
		case cerrdefs.IsNotFound(err):
			return nil, fail(berth.EImage, "create %s on %s: %v", name, in.Instance.Host.Name, err)
		case cerrdefs.IsInvalidArgument(err):
			return nil, fail(berth.EHostRefused, "create %s on %s: %v", name, in.Instance.Host.Name, err)
		default:
			return nil, fmt.Errorf("create %s on %s: %w", name, in.Instance.Host.Name, err)
		}
	}
	if err := connectNetworks(ctx, eng, id, nets, in.Instance.Host); err != nil {
		return nil, err
	}
	activity.RecordHeartbeat(ctx, "start")
	insp, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", name, err)
	}
	if insp.Container.State == nil || !insp.Container.State.Running {
		activity.RecordHeartbeat(ctx, "secrets")
		if err := d.writeSecrets(ctx, eng, id, in); err != nil {
			return nil, err
		}
		if _, err := eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			if taken := portsTaken(err, in.Instance.Ports); len(taken) > 0 {
				// The container's port bindings cannot change: remove it, so
				// the retry on other ports makes a new one.
				if _, rerr := eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
					return nil, fmt.Errorf("remove %s after its port was refused: %w", name, rerr)
				}
				return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("start %s on %s: host ports %v held outside berth: %v",
					name, in.Instance.Host.Name, taken, err), string(berth.EPortTaken), nil, PortsTaken{Ports: taken})
			}
			if cerrdefs.IsInvalidArgument(err) {
				return nil, fail(berth.EHostRefused, "start %s on %s: %v", name, in.Instance.Host.Name, err)
			}
			return nil, fmt.Errorf("start %s on %s: %w", name, in.Instance.Host.Name, err)
		}
	}
	ip, err := d.waitHealthy(ctx, eng, id, in)
	if err != nil {
		return nil, err
	}
	return &InstanceResult{Name: name, ContainerID: id, IP: ip}, nil
}

// findOwn returns the id of the instance's container, "" when there is none,
// and an error when the name is taken by a container berth did not make for it.
func (d *Docker) findOwn(ctx context.Context, eng engine.Engine, pi berth.PlannedInstance) (string, error) {
	insp, err := eng.ContainerInspect(ctx, pi.Name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect %s on %s: %w", pi.Name, pi.Host.Name, err)
	}
	if insp.Container.Config == nil || insp.Container.Config.Labels[LabelUID] != pi.UID {
		return "", fail(berth.EConflict, "host %s already has a container named %s that berth did not create for this instance", pi.Host.Name, pi.Name)
	}
	return insp.Container.ID, nil
}

// ownContainer finds the instance's container on its host, for the
// activities that act on a live instance: absent is berth.ENotFound.
func (d *Docker) ownContainer(ctx context.Context, pi berth.PlannedInstance) (engine.Engine, string, error) {
	eng, err := d.engine(ctx, pi.Host)
	if err != nil {
		return nil, "", err
	}
	id, err := d.findOwn(ctx, eng, pi)
	if err != nil {
		return nil, "", err
	}
	if id == "" {
		return nil, "", fail(berth.ENotFound, "instance %s has no container on %s", pi.Name, pi.Host.Name)
	}
	return eng, id, nil
}

func containerOptions(in StartInstanceInput, nets []appNetwork) (client.ContainerCreateOptions, error) {
	svc, pi := in.Service, in.Instance
	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	for k, v := range in.Labels {
		labels[k] = v
	}
	labels[LabelInstance], labels[LabelUID], labels[LabelService], labels[LabelHost] = pi.Name, pi.UID, svc.Name, pi.Host.Name
	labels[LabelLogTag] = logship.Fields{Tenant: labels["berth.tenant"], Env: labels["berth.env"], App: labels["berth.app"],
		Service: svc.Name, Instance: pi.Name, Host: pi.Host.Name, Release: logship.Release(svc.Image)}.Tag()
	env := append([]string{}, svc.Env...)
	env = append(env, "BERTH_INSTANCE="+pi.Name, "BERTH_SERVICE="+svc.Name)
	cfg := &container.Config{
		Image: svc.Image, Env: env, Cmd: svc.Command, Entrypoint: svc.Entrypoint, Labels: labels,
		User: svc.User, WorkingDir: svc.WorkingDir, Hostname: hostname(pi.Name),
		ExposedPorts: network.PortSet{}, Volumes: secretMounts(svc),
	}
	if h := svc.Health; h != nil && len(h.Test) > 0 {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test,
			Interval: time.Duration(h.IntervalMs) * time.Millisecond, Timeout: time.Duration(h.TimeoutMs) * time.Millisecond,
			StartPeriod: time.Duration(h.StartPeriodMs) * time.Millisecond, Retries: h.Retries}
	}
	hostIP, err := parseHostIP(pi.Host)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	bindings := network.PortMap{}
	for _, m := range pi.Ports {
		p, err := network.ParsePort(fmt.Sprintf("%d/%s", m.ContainerPort, m.Protocol))
		if err != nil {
			return client.ContainerCreateOptions{}, fail(berth.EInvalid, "instance %s port %d/%s: %v", pi.Name, m.ContainerPort, m.Protocol, err)
		}
		cfg.ExposedPorts[p] = struct{}{}
		bindings[p] = append(bindings[p], network.PortBinding{HostIP: hostIP, HostPort: strconv.Itoa(m.HostPort)})
	}
	// The instance's own folders are named volumes of its own (made and
	// labelled by ensureVolumes), so they go with it and the disk pass
	// measures them.
	var binds []string
	for _, dir := range instanceDirs {
		binds = append(binds, instanceVolume(pi.Name, dir)+":/berth/"+dir)
	}
	for _, v := range svc.Volumes {
		src := v.Source
		if v.Type == "volume" && src == "" {
			// An anonymous volume (- /data) is the instance's own: the
			// engine makes it, and removes it with the container. Named
			// after the application, it would be one folder shared by
			// every service and instance of the application on the host.
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v.Target] = struct{}{}
			continue
		}
		if v.Type == "volume" {
			if src, err = appVolume(in.Labels, v); err != nil {
				return client.ContainerCreateOptions{}, err
			}
		}
		b := src + ":" + v.Target
		if v.ReadOnly {
			b += ":ro"
		}
		binds = append(binds, b)
	}
	hc := &container.HostConfig{
		Binds: binds, PortBindings: bindings, CapAdd: svc.CapAdd,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		NetworkMode:   "none",
		Resources: container.Resources{Memory: svc.MemoryBytes, NanoCPUs: svc.NanoCPUs,
			MemoryReservation: svc.MemoryReservation, PidsLimit: pidsLimit(svc.PidsLimit)},
		LogConfig: logRotation(svc),
	}
	opts := client.ContainerCreateOptions{Name: pi.Name, Config: cfg, HostConfig: hc}
	if len(nets) > 0 {
		// The engine takes one network at create; the others are connected
		// before the start, so the instance never runs half-attached.
		hc.NetworkMode = container.NetworkMode(nets[0].ID)
		opts.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			nets[0].ID: {Aliases: nets[0].Aliases}}}
	}
	return opts, nil
}

// logRotation is set on every container berth makes, so that no instance's
// output can fill its host's disk: the service's rotation (three files of
// 10 MiB unless its file says otherwise), which is what the log quota
// counts and what the live log view reads back.
func logRotation(svc compose.ServiceSpec) container.LogConfig {
	fileBytes, files := svc.LogRotation()
	size := strconv.FormatInt(fileBytes, 10)
	if fileBytes%(1<<20) == 0 {
		size = strconv.FormatInt(fileBytes>>20, 10) + "m" // the engine's m is MiB
	}
	return container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": size, "max-file": strconv.Itoa(files),
		"labels": LabelLogTag}}
}

// pidsLimit is the engine's form: nil is the engine's default (none).
func pidsLimit(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

func parseHostIP(h berth.HostRef) (netip.Addr, error) {
	ip, err := netip.ParseAddr(h.IP)
	if err != nil {
		return ip, fail(berth.EInvalid, "host %s has no valid IP for port mappings: %q", h.Name, h.IP)
	}
	return ip, nil
}

// primaryNetwork is the engine-side name of the instance's first network,
// whose address the instance result reports.
func primaryNetwork(in StartInstanceInput) string {
	nets := in.Service.AppNetworks()
	tenant, env, app, err := appIdentity(in.Labels)
	if len(nets) == 0 || err != nil {
		return ""
	}
	return berth.AppScoped(tenant, env, app, nets[0].Name)
}

func hostname(name string) string {
	if len(name) > 63 {
		return name[len(name)-63:]
	}
	return name
}

// waitHealthy polls until the instance is healthy, heartbeating, and fails
// fast when the container exits or its health check says unhealthy.
func (d *Docker) waitHealthy(ctx context.Context, eng engine.Engine, id string, in StartInstanceInput) (string, error) {
	timeout := in.HealthTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	lastBeat := time.Time{}
	var ip string
	for attempt := 0; ; attempt++ {
		insp, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return "", fmt.Errorf("inspect %s: %w", in.Instance.Name, err)
		}
		st := insp.Container.State
		if st == nil || (!st.Running && !st.Restarting) || st.Dead || st.OOMKilled {
			code, msg := 0, ""
			if st != nil {
				code, msg = st.ExitCode, st.Error
			}
			return "", fail(berth.EUnhealthy, "instance %s stopped (exit code %d) %s", in.Instance.Name, code, msg)
		}
		if ip == "" && insp.Container.NetworkSettings != nil {
			if ep := insp.Container.NetworkSettings.Networks[primaryNetwork(in)]; ep != nil && ep.IPAddress.IsValid() {
				ip = ep.IPAddress.String()
			}
		}
		ok, why := d.healthy(ctx, insp.Container, in)
		if ok {
			return ip, nil
		}
		if why != "" && strings.HasPrefix(why, "unhealthy") {
			return "", fail(berth.EUnhealthy, "instance %s is %s", in.Instance.Name, why)
		}
		if time.Now().After(deadline) {
			return "", fail(berth.EUnhealthy, "instance %s did not become healthy within %s: %s", in.Instance.Name, timeout, why)
		}
		if time.Since(lastBeat) > time.Second {
			activity.RecordHeartbeat(ctx, why)
			lastBeat = time.Now()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(d.PollInterval):
		}
	}
}

// healthy says whether the instance passes its check: Docker's own health
// state when the compose file has a healthcheck, else an HTTP GET, else a
// TCP connection that the engine's port proxy keeps open.
func (d *Docker) healthy(ctx context.Context, c container.InspectResponse, in StartInstanceInput) (bool, string) {
	h := in.Service.Health
	if h != nil && len(h.Test) > 0 {
		if c.State.Health == nil {
			return false, "no health state yet"
		}
		switch c.State.Health.Status {
		case container.Healthy:
			return true, ""
		case container.Unhealthy:
			last := ""
			if n := len(c.State.Health.Log); n > 0 {
				last = strings.TrimSpace(c.State.Health.Log[n-1].Output)
			}
			return false, "unhealthy: " + last
		}
		return false, "health check " + string(c.State.Health.Status)
	}
	ports := append([]berth.PortMapping{}, in.Instance.Ports...)
	sort.Slice(ports, func(i, j int) bool { return ports[i].ContainerPort < ports[j].ContainerPort })
	var tcp *berth.PortMapping
	for i := range ports {
		if ports[i].Protocol == "tcp" {
			tcp = &ports[i]
			break
		}
	}
	if tcp == nil {
		return true, ""
	}
	addr := net.JoinHostPort(tcp.HostIP, strconv.Itoa(tcp.HostPort))
	if h != nil && h.HTTPPath != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.HTTPPath, nil)
		resp, err := d.HTTP.Do(req)
		if err != nil {
			return false, "GET " + h.HTTPPath + ": " + err.Error()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, ""
		}
		return false, fmt.Sprintf("GET %s: status %d", h.HTTPPath, resp.StatusCode)
	}
	return tcpHeld(ctx, addr)
}

// tcpHeld connects and checks the connection is not closed at once: the
// engine's userland proxy accepts even when nothing listens behind it, and
// then closes the connection.
func tcpHeld(ctx context.Context, addr string) (bool, string) {
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		return false, "connect " + addr + ": " + err.Error()
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return true, ""
	}
	return false, "connection to " + addr + " closed: nothing listens yet"
}

// RemoveInstanceInput names an instance to remove.
type RemoveInstanceInput struct {
	Host berth.HostRef `json:"host"`
	Name string        `json:"name"`
	UID  string        `json:"uid"`
	// Graceful stops the container with SIGTERM first so in-flight requests finish.
	Graceful bool `json:"graceful"`
}

// RemoveInstance removes an instance's container. A container that is
// already gone counts as removed; one that is not ours is left alone.
func (d *Docker) RemoveInstance(ctx context.Context, in RemoveInstanceInput) error {
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return err
	}
	insp, err := eng.ContainerInspect(ctx, in.Name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		// An earlier attempt may have removed the container and died
		// before its folders.
		return removeInstanceVolumes(ctx, eng, in.UID)
	}
	if err != nil {
		return fmt.Errorf("inspect %s on %s: %w", in.Name, in.Host.Name, err)
	}
	if in.UID != "" && (insp.Container.Config == nil || insp.Container.Config.Labels[LabelUID] != in.UID) {
		return nil
	}
	if in.Graceful && insp.Container.State != nil && insp.Container.State.Running {
		timeout := 10
		if _, err := eng.ContainerStop(ctx, insp.Container.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stop %s on %s: %w", in.Name, in.Host.Name, err)
		}
	}
	_, err = eng.ContainerRemove(ctx, insp.Container.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
		return fmt.Errorf("remove %s on %s: %w", in.Name, in.Host.Name, err)
	}
	if err := removeInstanceVolumes(ctx, eng, in.UID); err != nil {
		return fmt.Errorf("remove the folders of %s on %s: %w", in.Name, in.Host.Name, err)
	}
	if insp.Container.Config != nil {
		if tenant, env, app, err := appIdentity(insp.Container.Config.Labels); err == nil {
			if err := removeEmptyAppNetworks(ctx, eng, tenant, env, app); err != nil {
				return fmt.Errorf("remove networks of %s on %s: %w", in.Name, in.Host.Name, err)
			}
		}
	}
	return nil
}

// engine returns the host's engine client; a host berth will not talk to is
// a non-retryable failure.
func (d *Docker) engine(ctx context.Context, h berth.HostRef) (engine.Engine, error) {
	eng, err := d.Engines.Engine(ctx, h)
	return eng, storeErr(err)
}

// PortsTaken are the host ports a start was refused, carried as the details
// of an EPortTaken error so that the workflow can move the instance off them.
type PortsTaken struct {
	Ports []int `json:"ports"`
}

// portsTaken says which of an instance's host ports an engine refused
// because something else holds them ("port is already allocated" from
// Docker's allocator, "address already in use" from the kernel): the ports
// the message names after a colon, or, when it names none, all of them.
func portsTaken(err error, ports []berth.PortMapping) []int {
	msg := err.Error()
	if !strings.Contains(msg, "port is already allocated") && !strings.Contains(msg, "address already in use") {
		return nil
	}
	named := map[int]bool{}
	for _, m := range colonNumber.FindAllStringSubmatch(msg, -1) {
		n, _ := strconv.Atoi(m[1])
		named[n] = true
	}
	var hit, all []int
	for _, pm := range ports {
		all = append(all, pm.HostPort)
		if named[pm.HostPort] {
			hit = append(hit, pm.HostPort)
		}
	}
	if len(hit) > 0 {
		return hit
	}
	return all
}

// colonNumber finds the ports in "10.230.0.1:20005" of an engine's message.
var colonNumber = regexp.MustCompile(`:(\d+)`)
