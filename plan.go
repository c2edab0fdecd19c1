package berth

import "time"

// HostRef is what a regional worker needs to reach a host, carried in
// activity inputs so that workers in a region need no database.
type HostRef struct {
	ID         uint   `json:"id"`
	Name       string `json:"name"`
	Region     string `json:"region"`
	Endpoint   string `json:"endpoint"`
	IP         string `json:"ip"`
	VolumeRoot string `json:"volumeRoot"`
	TLSCA      string `json:"tlsCA,omitempty"`
	TLSCert    string `json:"tlsCert,omitempty"`
	TLSKey     string `json:"tlsKey,omitempty"`
}

// HostFacts is what a probe learned about an engine, and the state the host
// is in because of it.
type HostFacts struct {
	State         HostState `json:"state,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	EngineVersion string    `json:"engineVersion"`
	APIVersion    string    `json:"apiVersion"`
	CPUs          int       `json:"cpus"`
	MemoryBytes   int64     `json:"memoryBytes"`
	NetworkID     string    `json:"networkId,omitempty"`
}

// InstanceRef names one instance and the host it runs on, for the live reads
// (stats, logs) a region's worker answers.
type InstanceRef struct {
	Host     HostRef `json:"host"`
	Instance string  `json:"instance"`
}

// PortMapping is one published port of an instance.
type PortMapping struct {
	HostIP        string `json:"hostIP"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// PortRequest is a container port to publish.
type PortRequest struct {
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// ServiceRequest is one service to place.
type ServiceRequest struct {
	Name     string        `json:"name"`
	Image    string        `json:"image"`
	Replicas int           `json:"replicas"`
	Ports    []PortRequest `json:"ports,omitempty"`
	Spec     string        `json:"spec,omitempty"`
	// Add places Replicas more instances beside the live ones (scale-out)
	// instead of setting the service's replica count (deploy).
	Add bool `json:"add,omitempty"`
	// Resources are what each instance takes (runs since the capacity
	// change send them; older ones place by count alone).
	Resources Resources `json:"resources,omitempty"`
}

// PlanRequest asks for the instances of a deploy to be named, placed and given ports.
type PlanRequest struct {
	RunID         uint             `json:"runId"`
	ApplicationID uint             `json:"applicationId"`
	EnvironmentID uint             `json:"environmentId"`
	NamePrefix    string           `json:"namePrefix"` // <tenant>-<env>-<app>
	Services      []ServiceRequest `json:"services"`
	PortMin       int              `json:"portMin"`
	PortMax       int              `json:"portMax"`
	// Key, when set, makes the plan idempotent per key rather than per run.
	Key string `json:"key,omitempty"`
	// Surge: the instances replace others that leave right after (a release
	// batch, a rollback), so quotas do not count them; hosts still must
	// have room.
	Surge bool `json:"surge,omitempty"`
	// Replaces names the live instances the new ones replace (a release
	// batch's). Placing instances beside live ones (ServiceRequest.Add)
	// spreads them over regions counting the live instances that stay, so
	// a replacement goes where the instance it replaces leaves a gap.
	Replaces []string `json:"replaces,omitempty"`
}

// PlannedInstance is one instance with its host and ports decided.
type PlannedInstance struct {
	InstanceID uint          `json:"instanceId"`
	Name       string        `json:"name"`
	UID        string        `json:"uid"`
	Service    string        `json:"service"`
	Ordinal    int           `json:"ordinal"`
	Host       HostRef       `json:"host"`
	Ports      []PortMapping `json:"ports"`
}

// Plan is the placement of a deploy, in the request's service order.
type Plan struct {
	Instances []PlannedInstance `json:"instances"`
}

// StepEvent is one change of a step's state. It has no JSON tags: its
// recorded shape uses the field names.
type StepEvent struct {
	RunID  uint
	Name   string
	State  StepState
	At     time.Time
	Detail string
	Error  string
}

// ServiceRef is what the activities need to know of a recorded service.
type ServiceRef struct {
	ID        uint      `json:"id"`
	Name      string    `json:"name"`
	Image     string    `json:"image"`
	CreatedAt time.Time `json:"createdAt"`
}

// ServiceSetting is what an application update leaves one service at.
type ServiceSetting struct {
	Name     string `json:"name"`
	Image    string `json:"image,omitempty"`
	Replicas int    `json:"replicas,omitempty"`
	// Removed: the service is no longer part of the application.
	Removed bool `json:"removed,omitempty"`
}

// LBSettings says how services are put behind the region's load balancer.
type LBSettings struct {
	Enabled  bool   `json:"enabled"`
	ListenIP string `json:"listenIP"`
	PortMin  int    `json:"portMin"`
	PortMax  int    `json:"portMax"`
	Weight   int    `json:"weight"`
	// Firewall is the firewall driver's name, recorded with each opening;
	// "ticket" makes the run wait for a person to confirm the openings.
	Firewall      string        `json:"firewall"`
	TicketTimeout time.Duration `json:"ticketTimeout,omitempty"`
}

// SyncResult is what a CMDB sync pushed, and which items failed.
type SyncResult struct {
	Synced int      `json:"synced"`
	Failed []string `json:"failed,omitempty"`
}

// MaxLogLines is the most lines one log read returns: a page polls often,
// so each answer stays small. The API refuses a larger tail.
const MaxLogLines = 500
