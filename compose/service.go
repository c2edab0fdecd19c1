package compose

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/berth-dev/berth"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"
)

// reservedLabelPrefixes belong to the platform and to docker compose; a user
// label with one of them could make the platform mistake one app's container
// for another's.
var reservedLabelPrefixes = []string{"com.docker.compose.", "berth.", "dev.berth."}

// dockerSockets are the daemon sockets that give whoever can reach them root
// on the host.
var dockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// convertService validates one compose service and turns it into a
// ServiceSpec. Problems go to probs; the returned spec is only used when
// there are none.
func convertService(p *types.Project, s types.ServiceConfig, opts Options, roots []string, caps map[string]bool, probs *problems) ServiceSpec {
	name := s.Name
	bad := func(format string, args ...any) { probs.svc(name, format, args...) }
	out := ServiceSpec{
		Name:       name,
		Image:      s.Image,
		User:       s.User,
		WorkingDir: s.WorkingDir,
	}
	note := func(format string, args ...any) { out.Notes = append(out.Notes, fmt.Sprintf(format, args...)) }

	if !nameRE.MatchString(name) {
		bad("service name %q must match %s (it becomes a container name)", name, nameRE)
	}

	// Image: the platform runs images, it never builds them.
	switch {
	case s.Provider != nil:
		bad("provider services are not supported (they run plugins on the server)")
	case s.Image == "" && s.Build != nil:
		bad("build is not supported: the platform does not build images; push an image and set image:")
	case s.Image == "":
		bad("image is required")
	case strings.ContainsFunc(s.Image, unicode.IsSpace):
		bad("image %q must not contain spaces", s.Image)
	case s.Build != nil:
		note("build ignored; the platform runs image %s", s.Image)
	}

	// Host access.
	if s.Privileged {
		bad("privileged is not allowed")
	}
	if s.UseAPISocket {
		bad("use_api_socket is not allowed (it exposes the Docker socket)")
	}
	switch s.NetworkMode {
	case "", "default":
	case "none":
		out.NoNetwork = true
	case "bridge":
		// The host's shared bridge would put the service beside every other
		// tenant's containers.
		note("network_mode bridge: the service joins its application's default network instead of the host's shared bridge")
	default:
		bad("network_mode %q is not allowed: services join their application's networks (list them under networks:)", s.NetworkMode)
	}
	if len(s.Links) > 0 {
		bad("links are not supported: services reach each other by service name on their application's networks; use depends_on for start order and networks: NAME: aliases: for extra names")
	}
	if len(s.ExternalLinks) > 0 {
		bad("external_links are not supported: an application reaches only its own services; publish the other application's service through the load balancer and call its address")
	}
	if s.Net != "" {
		bad("net %q is not allowed", s.Net)
	}
	if s.Pid != "" {
		bad("pid %q is not allowed", s.Pid)
	}
	switch s.Ipc {
	case "", "private", "shareable", "none":
	default:
		bad("ipc %q is not allowed", s.Ipc)
	}
	if s.Uts != "" {
		bad("uts %q is not allowed", s.Uts)
	}
	if s.UserNSMode != "" {
		bad("userns_mode %q is not allowed", s.UserNSMode)
	}
	if s.Cgroup != "" && s.Cgroup != "private" {
		bad("cgroup %q is not allowed", s.Cgroup)
	}
	if s.CgroupParent != "" {
		bad("cgroup_parent is not allowed")
	}
	if len(s.Devices) > 0 {
		bad("devices are not allowed")
	}
	if len(s.DeviceCgroupRules) > 0 {
		bad("device_cgroup_rules are not allowed")
	}
	if len(s.Gpus) > 0 || (s.Deploy != nil && s.Deploy.Resources.Reservations != nil && len(s.Deploy.Resources.Reservations.Devices) > 0) {
		bad("GPU and device reservations are not allowed")
	}
	if len(s.Sysctls) > 0 {
		bad("sysctls are not allowed")
	}
	for _, opt := range s.SecurityOpt {
		l := strings.ToLower(strings.ReplaceAll(opt, " ", ""))
		if strings.Contains(l, "unconfined") || strings.Contains(l, "label=disable") || strings.Contains(l, "label:disable") {
			bad("security_opt %q is not allowed", opt)
		} else {
			note("security_opt %q ignored; the platform sets security options", opt)
		}
	}
	out.CapAdd = checkCaps(s.CapAdd, caps, bad)

	// Things that read the server's files or environment.
	for _, f := range s.EnvFiles {
		bad("env_file is not allowed (%q would be read from the server); put variables under environment:", f.Path)
	}
	if len(s.LabelFiles) > 0 {
		bad("label_file is not allowed (it reads files on the server); put labels under labels:")
	}
	if s.Extends != nil {
		if s.Extends.File != "" {
			bad("extends with a file is not allowed (%q would be read from the server)", s.Extends.File)
		} else {
			bad("extends is not supported; copy the settings of service %q into this service", s.Extends.Service)
		}
	}
	out.Secrets = secrets(p, s, bad)
	if len(s.Configs) > 0 {
		bad("configs are not supported")
	}
	if len(s.Models) > 0 {
		bad("models are not supported")
	}
	if len(s.PreStart) > 0 || len(s.PostStart) > 0 || len(s.PreStop) > 0 {
		bad("pre_start, post_start and pre_stop hooks are not supported")
	}
	privHook := false
	for _, h := range append(append([]types.ServiceHook(nil), s.PostStart...), s.PreStop...) {
		privHook = privHook || h.Privileged
	}
	for _, h := range s.PreStart {
		privHook = privHook || h.Privileged
	}
	if privHook {
		bad("privileged hooks are not allowed")
	}
	if len(s.VolumesFrom) > 0 {
		bad("volumes_from is not allowed")
	}

	out.Replicas = replicas(s, opts.MaxReplicas, bad)
	out.Ports = ports(s, bad, note)
	out.Expose = expose(s, bad, note)
	out.Volumes = volumes(p, s, roots, bad, note)
	out.Health = health(s, len(out.Ports) > 0, bad)
	limits(s, &out, bad)
	logRotation(s, &out, bad, note)
	out.DependsOn = dependsOn(p, s, bad)

	out.Command = nonEmpty(s.Command)
	out.Entrypoint = nonEmpty(s.Entrypoint)
	out.Env = env(s.Environment)
	for _, k := range sortedKeys(s.Labels) {
		for _, prefix := range reservedLabelPrefixes {
			if strings.HasPrefix(k, prefix) {
				bad("label %q is not allowed: the %s prefix is reserved", k, prefix)
			}
		}
	}
	if len(s.Labels) > 0 {
		out.Labels = make(map[string]string, len(s.Labels))
		for k, v := range s.Labels {
			out.Labels[k] = v
		}
	}

	if s.ContainerName != "" {
		note("container_name %q ignored; the platform names containers", s.ContainerName)
	}
	out.Networks = serviceNetworks(p, s, out.NoNetwork, bad)
	if out.NoNetwork && len(out.Ports) > 0 {
		bad("network_mode none cannot publish ports")
	}
	return out
}

// serviceNetworks lists the app networks a service joins with its aliases;
// nil when that is only the default network under the service name.
func serviceNetworks(p *types.Project, s types.ServiceConfig, none bool, bad func(string, ...any)) []NetworkAttach {
	if none {
		if len(s.Networks) > 0 && !(len(s.Networks) == 1 && s.Networks[DefaultNetwork] == nil) {
			bad("network_mode none cannot be combined with networks")
		}
		return nil
	}
	var extra []string
	if s.Hostname != "" {
		if !aliasRE.MatchString(s.Hostname) {
			bad("hostname %q must be a DNS name (letters, digits, '-', '.')", s.Hostname)
		}
		extra = append(extra, s.Hostname)
	}
	names := sortedKeys(s.Networks)
	if len(names) == 0 {
		names = []string{DefaultNetwork}
	}
	var out []NetworkAttach
	plain := len(extra) == 0
	for _, n := range names {
		nc, ok := p.Networks[n]
		if !ok && n != DefaultNetwork {
			bad("refers to undefined network %q", n)
			continue
		}
		at := NetworkAttach{Name: n, Internal: nc.Internal, Aliases: append([]string(nil), extra...)}
		if sn := s.Networks[n]; sn != nil {
			for _, a := range sn.Aliases {
				if !aliasRE.MatchString(a) {
					bad("network %q: alias %q must be a DNS name (letters, digits, '-', '.')", n, a)
				}
				at.Aliases = append(at.Aliases, a)
			}
			switch {
			case sn.Ipv4Address != "" || sn.Ipv6Address != "" || len(sn.LinkLocalIPs) > 0:
				bad("network %q: fixed addresses are not allowed; the platform assigns addresses and services find each other by name", n)
			case sn.MacAddress != "":
				bad("network %q: mac_address is not allowed", n)
			case len(sn.DriverOpts) > 0 || sn.InterfaceName != "":
				bad("network %q: driver_opts and interface_name are not allowed", n)
			case sn.UseServiceNameAlias != nil && !*sn.UseServiceNameAlias:
				bad("network %q: use_service_name_alias: false is not supported; every instance answers to its service name", n)
			}
		}
		sort.Strings(at.Aliases)
		at.Aliases = dedupe(at.Aliases)
		plain = plain && n == DefaultNetwork && len(at.Aliases) == 0 && !at.Internal
		out = append(out, at)
	}
	if plain && len(out) == 1 {
		return nil
	}
	return out
}

// aliasRE is a DNS name: the engine's resolver serves aliases as-is.
var aliasRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, v := range sorted {
		if i == 0 || v != sorted[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// SecretsDir is where secrets are mounted in every instance.
const SecretsDir = "/run/secrets"

// secrets resolves a service's secrets: to the names of secrets in the
// tenant's store (top-level `external: true`, optionally with `name:`), the
// file each becomes under /run/secrets, and its owner and mode.
func secrets(p *types.Project, s types.ServiceConfig, bad func(string, ...any)) []SecretMount {
	var out []SecretMount
	seen := map[string]bool{}
	for _, ref := range s.Secrets {
		top, ok := p.Secrets[ref.Source]
		if !ok {
			bad("refers to undefined secret %q", ref.Source)
			continue
		}
		if !bool(top.External) {
			// The top-level check says why (file, environment or content).
			continue
		}
		m := SecretMount{Name: ref.Source, Target: ref.Source, Mode: secretMode(s.User)}
		if top.Name != "" {
			m.Name = top.Name
		}
		if err := berth.CheckSecretName(m.Name); err != nil {
			bad("secret %q: %v", ref.Source, err)
			continue
		}
		if ref.Target != "" {
			t := strings.TrimPrefix(ref.Target, SecretsDir+"/")
			if berth.CheckSecretName(t) != nil {
				bad("secret %q: target %q must be a file name, or a file directly under %s", ref.Source, ref.Target, SecretsDir)
				continue
			}
			m.Target = t
		}
		if ref.Mode != nil {
			if *ref.Mode&^0o777 != 0 {
				bad("secret %q: mode %o must only hold permission bits", ref.Source, *ref.Mode)
				continue
			}
			m.Mode = uint32(*ref.Mode)
		}
		if ref.UID != "" || ref.GID != "" {
			// The engine writes copied files as root, whatever the tar says.
			bad("secret %q: uid and gid are not supported; the file belongs to root, and is readable by the service's user (mode 0444 when user: is not root)", ref.Source)
			continue
		}
		if seen[m.Target] {
			bad("two secrets are mounted at %s/%s", SecretsDir, m.Target)
			continue
		}
		seen[m.Target] = true
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// secretMode is a secret file's mode when the file gives none. The engine
// writes copied files as root (it resolves a container's user on the
// daemon's machine, not in the image), so only a service running as root
// reads a 0400 file; one running as another user gets 0444, as Docker's own
// secrets default to. Either way the file is in the instance alone.
func secretMode(user string) uint32 {
	u, _, _ := strings.Cut(user, ":")
	if u == "" || u == "root" || u == "0" {
		return 0o400
	}
	return 0o444
}

func checkCaps(capAdd []string, allowed map[string]bool, bad func(string, ...any)) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range capAdd {
		n := normalizeCap(c)
		switch {
		case n == "ALL":
			bad("cap_add %q is not allowed", "ALL")
		case !allowed[n]:
			bad("cap_add %q is not allowed", n)
		case !seen[n]:
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func normalizeCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")
}

func replicas(s types.ServiceConfig, max int, bad func(string, ...any)) int {
	n := 1
	var fromScale, fromDeploy *int
	fromScale = s.Scale
	if s.Deploy != nil {
		fromDeploy = s.Deploy.Replicas
	}
	switch {
	case fromScale != nil && fromDeploy != nil && *fromScale != *fromDeploy:
		bad("scale (%d) and deploy.replicas (%d) disagree", *fromScale, *fromDeploy)
		return 0
	case fromDeploy != nil:
		n = *fromDeploy
	case fromScale != nil:
		n = *fromScale
	}
	if n < 0 {
		bad("replicas %d must not be negative", n)
	} else if n > max {
		bad("replicas %d is more than the maximum %d", n, max)
	}
	return n
}

func ports(s types.ServiceConfig, bad func(string, ...any), note func(string, ...any)) []PortSpec {
	var out []PortSpec
	seen := map[PortSpec]bool{}
	for _, p := range s.Ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			bad("port %d: protocol %q is not supported (only tcp and udp)", p.Target, p.Protocol)
			continue
		}
		if p.Target == 0 || p.Target > 65535 {
			bad("port %d: container port must be between 1 and 65535", p.Target)
			continue
		}
		label := fmt.Sprintf("port %d", p.Target)
		if proto != "tcp" {
			label += "/" + proto
		}
		// Host ports are a shared resource of the server; honouring a fixed
		// one would let apps collide (or squat on the proxy's ports).
		if p.Published != "" {
			note("%s: fixed host port %s ignored; the platform allocates host ports", label, p.Published)
		}
		if p.HostIP != "" {
			note("%s: host_ip %s ignored; the platform chooses the host address", label, p.HostIP)
		}
		ps := PortSpec{ContainerPort: int(p.Target), Protocol: proto}
		if !seen[ps] {
			seen[ps] = true
			out = append(out, ps)
		}
	}
	return out
}

// maxExposeRange bounds a port range under expose: each port is a listener
// of the service's relays on other hosts.
const maxExposeRange = 20

// expose reads the service's expose: list (tcp ports other services use).
func expose(s types.ServiceConfig, bad func(string, ...any), note func(string, ...any)) []int {
	seen := map[int]bool{}
	var out []int
	for _, e := range s.Expose {
		spec, proto, _ := strings.Cut(e, "/")
		if proto != "" && !strings.EqualFold(proto, "tcp") {
			note("expose %s: only tcp ports are carried between hosts", e)
			continue
		}
		lo, hi, isRange := strings.Cut(spec, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		switch {
		case err1 != nil || err2 != nil || a < 1 || b > 65535 || b < a:
			bad("expose %q: want a port or a range of ports between 1 and 65535", e)
			continue
		case b-a+1 > maxExposeRange:
			bad("expose %q: at most %d ports in a range", e, maxExposeRange)
			continue
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Ints(out)
	return out
}

func volumes(p *types.Project, s types.ServiceConfig, roots []string, bad func(string, ...any), note func(string, ...any)) []VolumeSpec {
	var out []VolumeSpec
	for _, v := range s.Volumes {
		if v.Source != "" && exposesDockerSocket(v.Source) {
			bad("volume %q would expose the Docker socket; this is not allowed", v.Source)
			continue
		}
		switch v.Type {
		case types.VolumeTypeVolume:
			if v.Source != "" {
				if _, ok := p.Volumes[v.Source]; !ok {
					bad("refers to undefined volume %q", v.Source)
					continue
				}
			}
			size, _ := VolumeSize(p.Volumes[v.Source]) // refused in checkProject when bad
			out = append(out, VolumeSpec{Type: "volume", Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly, SizeBytes: size})
		case types.VolumeTypeBind:
			// There is no project directory on the server, so a relative
			// source (./data, ~/data) has nothing safe to be relative to.
			if !filepath.IsAbs(v.Source) {
				bad("bind mount source %q must be an absolute path", v.Source)
				continue
			}
			src := filepath.Clean(v.Source)
			if !inRoot(src, roots) {
				if len(roots) == 0 {
					bad("bind mount source %q is not allowed: bind mounts are disabled on this server; use a named volume", v.Source)
				} else {
					bad("bind mount source %q is not a folder directly in an allowed root (%s)", v.Source, strings.Join(roots, ", "))
				}
				continue
			}
			out = append(out, VolumeSpec{Type: "bind", Source: src, Target: v.Target, ReadOnly: v.ReadOnly})
		case types.VolumeTypeTmpfs:
			note("tmpfs mount %s ignored", v.Target)
		default:
			bad("volume type %q is not supported", v.Type)
		}
	}
	for _, t := range s.Tmpfs {
		note("tmpfs mount %s ignored", t)
	}
	return out
}

// VolumeSize reads a named volume's declared size (driver_opts: size, in
// the engine's units: 512m, 10g); 0 when it declares none.
func VolumeSize(v types.VolumeConfig) (int64, error) {
	raw := v.DriverOpts["size"]
	if raw == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(raw)
	if err != nil || n < 1<<20 || n > 1<<40 {
		return 0, fmt.Errorf("size %q must be a size from 1m to 1t", raw)
	}
	return n, nil
}

// exposesDockerSocket is true when the path is a Docker socket or a directory
// containing one: mounting /var/run hands over the socket just the same.
func exposesDockerSocket(src string) bool {
	clean := filepath.Clean(src)
	if strings.HasSuffix(clean, "docker.sock") {
		return true
	}
	if !filepath.IsAbs(clean) {
		return false
	}
	for _, sock := range dockerSockets {
		if underRoot(sock, []string{clean}) {
			return true
		}
	}
	return false
}

// underRoot compares cleaned absolute paths by whole elements, so that
// /srv/data-other is not taken to be under /srv/data.
func underRoot(p string, roots []string) bool {
	for _, r := range roots {
		if r == "/" || p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// inRoot says whether p is a folder directly in one of roots. Deeper paths
// are refused: a container with a bind can make links inside its folder,
// and a later bind of a path through such a link would mount whatever it
// points to (/ itself) instead.
func inRoot(p string, roots []string) bool {
	for _, r := range roots {
		if p != r && filepath.Dir(p) == r {
			return true
		}
	}
	return false
}

func health(s types.ServiceConfig, hasPorts bool, bad func(string, ...any)) *HealthSpec {
	h := &HealthSpec{}
	if hc := s.HealthCheck; hc != nil && !hc.Disable && !(len(hc.Test) > 0 && hc.Test[0] == "NONE") {
		if len(hc.Test) > 0 {
			switch hc.Test[0] {
			case "CMD", "CMD-SHELL":
				h.Test = append([]string(nil), hc.Test...)
			default:
				bad(`healthcheck.test must start with "CMD", "CMD-SHELL" or "NONE"`)
			}
		}
		h.IntervalMs = millis("interval", hc.Interval, bad)
		h.TimeoutMs = millis("timeout", hc.Timeout, bad)
		h.StartPeriodMs = millis("start_period", hc.StartPeriod, bad)
		if hc.Retries != nil {
			if *hc.Retries > 10000 {
				bad("healthcheck.retries %d is more than 10000", *hc.Retries)
			} else {
				h.Retries = int(*hc.Retries)
			}
		}
	}
	h.HTTPPath = berthHealthPath(s, bad)
	if h.HTTPPath != "" && !hasPorts {
		bad("x-berth.health.http needs a published port to probe")
	}
	if h.Test == nil && h.IntervalMs == 0 && h.TimeoutMs == 0 && h.StartPeriodMs == 0 && h.Retries == 0 && h.HTTPPath == "" {
		return nil
	}
	return h
}

func millis(field string, d *types.Duration, bad func(string, ...any)) int64 {
	if d == nil {
		return 0
	}
	if *d < 0 {
		bad("healthcheck.%s must not be negative", field)
		return 0
	}
	return time.Duration(*d).Milliseconds()
}

// berthHealthPath reads the platform's own extension. It is strict about
// unknown keys because a typo there would otherwise silently turn off the
// health check the user thought they configured.
func berthHealthPath(s types.ServiceConfig, bad func(string, ...any)) string {
	raw, ok := s.Extensions["x-berth"]
	if !ok || raw == nil {
		return ""
	}
	ext, ok := raw.(map[string]any)
	if !ok {
		bad("x-berth must be a mapping")
		return ""
	}
	var path string
	for _, k := range sortedKeys(ext) {
		if k != "health" {
			bad("x-berth: unknown key %q", k)
			continue
		}
		hm, ok := ext[k].(map[string]any)
		if !ok {
			bad("x-berth.health must be a mapping")
			continue
		}
		for _, hk := range sortedKeys(hm) {
			if hk != "http" {
				bad("x-berth.health: unknown key %q", hk)
				continue
			}
			p, ok := hm[hk].(string)
			switch {
			case !ok:
				bad("x-berth.health.http must be a string")
			case berth.CheckHealthPath(p) != nil:
				bad("x-berth.health.http: %s", berth.CheckHealthPath(p).Error())
			default:
				path = p
			}
		}
	}
	return path
}

// limits reads the service's resource limits and reservations, from
// logRotation reads logging: the engine keeps an instance's output in
// json-file, rotated at max-size and max-file, which the live log view
// reads and the log quota counts. Other drivers would send the output
// where berth neither reads nor bounds it.
func logRotation(s types.ServiceConfig, out *ServiceSpec, bad, note func(string, ...any)) {
	l := s.Logging
	if l == nil {
		return
	}
	switch l.Driver {
	case "", "json-file":
	case "local":
		note("logging driver local kept as json-file (rotated the same way); the platform reads and bounds json-file logs")
	default:
		bad("logging driver %q is not allowed: the platform keeps each instance's output with json-file, rotated, for the live log view and the log quota", l.Driver)
		return
	}
	for _, k := range sortedKeys(l.Options) {
		v := l.Options[k]
		switch k {
		case "max-size":
			n, err := units.RAMInBytes(v)
			if err != nil || n < 1<<20 || n > 1<<30 {
				bad("logging max-size %q must be a size from 1m to 1g", v)
				continue
			}
			out.LogFileBytes = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 20 {
				bad("logging max-file %q must be a number from 1 to 20", v)
				continue
			}
			out.LogFiles = n
		default:
			note("logging option %q ignored; the platform sets only max-size and max-file", k)
		}
	}
	if out.LogBytes() > 1<<30 {
		bad("logging keeps %s (max-size times max-file); at most 1GiB per instance", berth.BytesText(out.LogBytes()))
	}
}

// deploy.resources or the short keys (mem_limit, cpus, pids_limit,
// mem_reservation); where both say something they must agree.
func limits(s types.ServiceConfig, out *ServiceSpec, bad func(string, ...any)) {
	mem := int64(s.MemLimit)
	cpus := float64(s.CPUS)
	pids := s.PidsLimit
	memRes := int64(s.MemReservation)
	var cpusRes float64
	if s.Deploy != nil && s.Deploy.Resources.Limits != nil {
		l := s.Deploy.Resources.Limits
		if l.MemoryBytes != 0 {
			if mem != 0 && mem != int64(l.MemoryBytes) {
				bad("mem_limit and deploy.resources.limits.memory disagree")
			}
			mem = int64(l.MemoryBytes)
		}
		if l.NanoCPUs != 0 {
			if cpus != 0 && float32(cpus) != float32(l.NanoCPUs) {
				bad("cpus and deploy.resources.limits.cpus disagree")
			}
			cpus = float64(l.NanoCPUs)
		}
		if l.Pids != 0 {
			if pids != 0 && pids != l.Pids {
				bad("pids_limit and deploy.resources.limits.pids disagree")
			}
			pids = l.Pids
		}
	}
	if s.Deploy != nil && s.Deploy.Resources.Reservations != nil {
		r := s.Deploy.Resources.Reservations
		if r.MemoryBytes != 0 {
			if memRes != 0 && memRes != int64(r.MemoryBytes) {
				bad("mem_reservation and deploy.resources.reservations.memory disagree")
			}
			memRes = int64(r.MemoryBytes)
		}
		cpusRes = float64(r.NanoCPUs)
	}
	if mem < 0 || memRes < 0 {
		bad("memory limits must not be negative")
		mem, memRes = 0, 0
	}
	if pids < 0 && pids != -1 {
		bad("pids limit %d must be positive (or -1: unlimited)", pids)
		pids = 0
	}
	out.MemoryBytes, out.MemoryReservation, out.PidsLimit = mem, memRes, pids
	out.NanoCPUs = nanoCPUs("cpus limit", cpus, bad)
	out.NanoCPUsReserved = nanoCPUs("cpus reservation", cpusRes, bad)
	if out.MemoryBytes > 0 && out.MemoryReservation > out.MemoryBytes {
		bad("memory reservation %d is above the memory limit %d", out.MemoryReservation, out.MemoryBytes)
	}
	if out.NanoCPUs > 0 && out.NanoCPUsReserved > out.NanoCPUs {
		bad("cpus reservation is above the cpus limit")
	}
}

func nanoCPUs(what string, cpus float64, bad func(string, ...any)) int64 {
	switch {
	case math.IsNaN(cpus) || math.IsInf(cpus, 0) || cpus < 0 || cpus > 1e6:
		bad("%s %v is not valid", what, cpus)
	case cpus > 0:
		// Rounded to a thousandth of a CPU: cpus arrives as a float32, and
		// 0.1 must give 100000000, not 100000001.
		nano := int64(math.Round(cpus*1000)) * 1_000_000
		if nano == 0 {
			bad("%s %v is below 0.001", what, cpus)
		}
		return nano
	}
	return 0
}

func dependsOn(p *types.Project, s types.ServiceConfig, bad func(string, ...any)) []string {
	var out []string
	for _, dep := range sortedKeys(s.DependsOn) {
		if _, ok := p.Services[dep]; ok {
			out = append(out, dep)
			continue
		}
		if _, disabled := p.DisabledServices[dep]; disabled {
			if s.DependsOn[dep].Required {
				bad("depends on service %q, which is only enabled by a profile", dep)
			}
			continue
		}
		bad("depends on unknown service %q", dep)
	}
	return out
}

func env(m types.MappingWithEquals) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if v := m[k]; v != nil {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

func nonEmpty(c types.ShellCommand) []string {
	if len(c) == 0 {
		return nil
	}
	return append([]string(nil), c...)
}
