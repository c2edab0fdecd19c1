package compose

import "sort"

// Spec is a validated, platform-ready description of a compose project. It is
// plain data (no maps ranged in workflow code relies on order: every slice is
// sorted) so that it can travel through workflow inputs and histories.
type Spec struct {
	// Project is the compose project name given by the caller (the application name).
	Project string `json:"project"`
	// Services are in dependency order: every service comes after the services
	// it depends on, ties broken by name.
	Services []ServiceSpec `json:"services"`
	// Hash is the sha256 (hex) of the canonical JSON of Services; equal specs have equal hashes.
	Hash string `json:"hash"`
}

// ServiceSpec is one compose service after validation.
type ServiceSpec struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Replicas    int               `json:"replicas"`
	Command     []string          `json:"command,omitempty"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Env         []string          `json:"env,omitempty"` // KEY=VALUE, sorted
	Labels      map[string]string `json:"labels,omitempty"`
	Ports       []PortSpec        `json:"ports,omitempty"`     // container ports to publish; host ports are always allocated by the platform
	DependsOn   []string          `json:"dependsOn,omitempty"` // sorted
	Health      *HealthSpec       `json:"health,omitempty"`
	Volumes     []VolumeSpec      `json:"volumes,omitempty"`
	CapAdd      []string          `json:"capAdd,omitempty"`
	MemoryBytes int64             `json:"memoryBytes,omitempty"`
	NanoCPUs    int64             `json:"nanoCPUs,omitempty"`
	// PidsLimit bounds the processes and threads of an instance (-1: none).
	PidsLimit int64 `json:"pidsLimit,omitempty"`
	// Reservations are what placement counts an instance as taking.
	MemoryReservation int64 `json:"memoryReservation,omitempty"`
	NanoCPUsReserved  int64 `json:"nanoCPUsReserved,omitempty"`
	// LogFileBytes and LogFiles are the engine's log rotation (logging:
	// max-size, max-file); zero is the platform's default.
	LogFileBytes int64  `json:"logFileBytes,omitempty"`
	LogFiles     int    `json:"logFiles,omitempty"`
	User         string `json:"user,omitempty"`
	WorkingDir   string `json:"workingDir,omitempty"`
	// Expose are tcp ports other services reach without publishing (expose:).
	Expose []int `json:"expose,omitempty"`
	// Networks are the app networks the service joins. Empty means the app's
	// default network only, under the service name: the common case stays
	// out of the spec so that specs written before networks keep their hash.
	Networks []NetworkAttach `json:"networks,omitempty"`
	// Secrets are files under /run/secrets whose values come from the
	// tenant's secret store: only the names travel, never the values.
	Secrets []SecretMount `json:"secrets,omitempty"`
	// NoNetwork is network_mode: none.
	NoNetwork bool `json:"noNetwork,omitempty"`
	// Notes are non-fatal remarks shown to the user, e.g. "fixed host port 8080 ignored; the platform allocates".
	Notes []string `json:"notes,omitempty"`
}

// SecretMount is one stored secret mounted as a file.
type SecretMount struct {
	// Name is the secret's name in the tenant's store.
	Name string `json:"name"`
	// Target is the file's name under /run/secrets.
	Target string `json:"target"`
	// Mode is the file's permission bits; its owner is root.
	Mode uint32 `json:"mode"`
}

// SecretNames are the stored secrets a spec needs, sorted and distinct.
func (s Spec) SecretNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, svc := range s.Services {
		for _, m := range svc.Secrets {
			if !seen[m.Name] {
				seen[m.Name] = true
				out = append(out, m.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// DefaultNetwork is the network of services that name none.
const DefaultNetwork = "default"

// NetworkAttach is one network of the application that a service joins. The
// service's instances answer there to the service name and to Aliases.
type NetworkAttach struct {
	Name string `json:"name"`
	// Aliases are the extra DNS names (compose aliases and hostname), sorted.
	Aliases []string `json:"aliases,omitempty"`
	// Internal networks have no route out of the host (compose internal: true).
	Internal bool `json:"internal,omitempty"`
}

// AppNetworks is what a service joins: its own list, or the default network.
func (s ServiceSpec) AppNetworks() []NetworkAttach {
	if s.NoNetwork {
		return nil
	}
	if len(s.Networks) == 0 {
		return []NetworkAttach{{Name: DefaultNetwork}}
	}
	return s.Networks
}

// ReachablePorts are the tcp ports other services of the application reach
// the service on: its published container ports and expose:, sorted.
func (s ServiceSpec) ReachablePorts() []int {
	seen := map[int]bool{}
	var out []int
	for _, p := range s.Ports {
		if p.Protocol == "tcp" && !seen[p.ContainerPort] {
			seen[p.ContainerPort] = true
			out = append(out, p.ContainerPort)
		}
	}
	for _, p := range s.Expose {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out
}

// PortSpec is a container port the platform publishes on an allocated host port.
type PortSpec struct {
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp or udp
}

// HealthSpec says how the platform decides an instance is healthy.
type HealthSpec struct {
	// Test is the compose healthcheck test (["CMD", ...] or ["CMD-SHELL", ...]); when set, Docker's own health state is used.
	Test          []string `json:"test,omitempty"`
	IntervalMs    int64    `json:"intervalMs,omitempty"`
	TimeoutMs     int64    `json:"timeoutMs,omitempty"`
	StartPeriodMs int64    `json:"startPeriodMs,omitempty"`
	Retries       int      `json:"retries,omitempty"`
	// HTTPPath, from the service extension `x-berth: {health: {http: /path}}`, makes the platform GET the first published port.
	HTTPPath string `json:"httpPath,omitempty"`
}

// VolumeSpec is a mount the user asked for, beyond the three platform volumes.
type VolumeSpec struct {
	Type     string `json:"type"`   // "volume" (named, scoped to the app) or "bind" (only under an allowed root)
	Source   string `json:"source"` // volume name, or absolute host path for bind
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// SizeBytes is a named volume's declared size (driver_opts: size); 0
	// counts as berth.DefaultVolumeBytes.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}
