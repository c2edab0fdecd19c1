package store

import (
	"time"

	"github.com/berth-dev/berth"
)

// Region groups hosts that one regional worker serves (task queue berth-<name>).
type Region struct {
	Name string `gorm:"primaryKey;size:64" json:"name"`
	// LBListenIP, LBPortMin and LBPortMax are where the region's own load
	// balancer takes clients, when it is not on the platform's default
	// address and window: each region's load balancer is its own machine.
	LBListenIP string    `gorm:"size:64" json:"lbListenIP,omitempty"`
	LBPortMin  int       `json:"lbPortMin,omitempty"`
	LBPortMax  int       `json:"lbPortMax,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Host is one Docker engine the platform may place instances on.
type Host struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	Name   string `gorm:"size:64;uniqueIndex" json:"name"`
	Region string `gorm:"size:64;index" json:"region"`
	// Endpoint is unix:///path or tcp://host:port; tcp needs TLS unless on loopback.
	Endpoint string `gorm:"size:255" json:"endpoint"`
	// TLS material paths on the worker's machine, for tcp endpoints.
	TLSCA   string `gorm:"size:255" json:"tlsCA,omitempty"`
	TLSCert string `gorm:"size:255" json:"tlsCert,omitempty"`
	TLSKey  string `gorm:"size:255" json:"tlsKey,omitempty"`
	// IP is the address host ports are published on and clients reach instances at.
	IP string `gorm:"size:64" json:"ip"`
	// VolumeRoot was the host folder of instances' package, logs and files
	// folders; they are named volumes now, and it is only kept for old clients.
	VolumeRoot    string          `gorm:"size:255" json:"volumeRoot"`
	Labels        string          `gorm:"type:text" json:"labels,omitempty"`
	State         berth.HostState `gorm:"size:16" json:"state"`
	Reason        string          `gorm:"type:text" json:"reason,omitempty"`
	EngineVersion string          `gorm:"size:64" json:"engineVersion,omitempty"`
	APIVersion    string          `gorm:"size:16" json:"apiVersion,omitempty"`
	CPUs          int             `gorm:"column:cpus" json:"cpus,omitempty"`
	MemoryBytes   int64           `json:"memoryBytes,omitempty"`
	CheckedAt     *time.Time      `json:"checkedAt,omitempty"`
	// ProbeFailures counts self-healing's probes in a row that the engine
	// did not answer; a check or a probe that it answers resets it.
	ProbeFailures int       `json:"probeFailures,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Tenant is the beneficiary: the team that owns environments and applications.
type Tenant struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Name string `gorm:"size:64;uniqueIndex" json:"name"`
	// Quota bounds what all the tenant's environments take together.
	Quota     berth.Quota `gorm:"embedded;embeddedPrefix:quota_" json:"quota"`
	CreatedAt time.Time   `json:"createdAt"`
}

// Environment is a tenant's stage (dev, test, prod) with the hosts it may use.
type Environment struct {
	ID       uint    `gorm:"primaryKey" json:"id"`
	TenantID uint    `gorm:"uniqueIndex:ux_env_tenant_name" json:"tenantId"`
	Tenant   *Tenant `json:"tenant,omitempty"`
	Name     string  `gorm:"size:64;uniqueIndex:ux_env_tenant_name" json:"name"`
	// Firewall is how openings are made here: "" (the platform's driver),
	// "ticket" (a change request a person confirms; the run waits for it) or
	// "change" (the network team's change API applies or rejects them).
	Firewall string `gorm:"size:16" json:"firewall,omitempty"`
	// TicketTimeoutSec bounds the wait for a firewall ticket (0: one day).
	TicketTimeoutSec int `json:"ticketTimeoutSec,omitempty"`
	// RequireComment and SeparateDuties are the approval policy: a decision
	// needs a comment; whoever started a run may not approve it. Both are
	// on by default for an environment named prod.
	RequireComment bool `json:"requireComment"`
	SeparateDuties bool `json:"separateDuties"`
	// ApproveReleases: releases and rollbacks here wait for an approver.
	ApproveReleases bool `json:"approveReleases"`
	// Prod marks a production environment: a terminal into its instances
	// needs a release manager.
	Prod bool `json:"production"`
	// Limits are the defaults and maximums of every service's resources here.
	Limits berth.Limits `gorm:"embedded;embeddedPrefix:limit_" json:"limits"`
	// Quota bounds what the environment's instances take together.
	Quota     berth.Quota `gorm:"embedded;embeddedPrefix:quota_" json:"quota"`
	Hosts     []Host      `gorm:"many2many:environment_hosts" json:"hosts,omitempty"`
	CreatedAt time.Time   `json:"createdAt"`
}

// Application is a subsystem: one compose project deployed into an environment.
type Application struct {
	ID            uint        `gorm:"primaryKey" json:"id"`
	EnvironmentID uint        `gorm:"uniqueIndex:ux_app_env_name" json:"environmentId"`
	Name          string      `gorm:"size:64;uniqueIndex:ux_app_env_name" json:"name"`
	Compose       string      `gorm:"type:mediumtext" json:"-"`
	SpecHash      string      `gorm:"size:64" json:"specHash"`
	State         berth.State `gorm:"size:16" json:"state"`
	LastRunID     uint        `json:"lastRunId"`
	CreatedAt     time.Time   `json:"createdAt"`
	UpdatedAt     time.Time   `json:"updatedAt"`
	DeletedAt     *time.Time  `json:"deletedAt,omitempty"`
}

// Service is a cluster: the instances of one compose service. Attributes
// shared by its instances live here, not on each instance.
type Service struct {
	ID            uint   `gorm:"primaryKey" json:"id"`
	ApplicationID uint   `gorm:"uniqueIndex:ux_svc_app_name" json:"applicationId"`
	Name          string `gorm:"size:64;uniqueIndex:ux_svc_app_name" json:"name"`
	Image         string `gorm:"size:255" json:"image"`
	Replicas      int    `json:"replicas"`
	Spec          string `gorm:"type:text" json:"-"`
	// NextOrdinal makes instance names unique for the service's lifetime: a
	// name is never given twice, even after its instance is gone.
	NextOrdinal int         `json:"-"`
	State       berth.State `gorm:"size:16" json:"state"`
	// CreatedRunID and ChangedRunID are the runs that first and last put
	// the service's instances behind (or took them out of) the load
	// balancer: the CMDB's created-by, updated and updated-by come from
	// them, so a retried step gives the same values.
	CreatedRunID uint       `json:"createdRunId,omitempty"`
	ChangedRunID uint       `json:"changedRunId,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
	DeletedAt    *time.Time `json:"deletedAt,omitempty"`
}

// Instance is one container: the smallest configuration item. Its name is
// given once at creation and never changes.
type Instance struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	ServiceID uint   `gorm:"index" json:"serviceId"`
	Name      string `gorm:"size:191;uniqueIndex" json:"name"`
	// UID is written into the container's labels so that a retry adopts only
	// its own container, never a stranger that happens to have the same name.
	UID         string      `gorm:"size:32" json:"-"`
	Service     string      `gorm:"size:64" json:"service"`
	Ordinal     int         `json:"ordinal"`
	HostID      uint        `gorm:"index" json:"hostId"`
	ContainerID string      `gorm:"size:80" json:"containerId,omitempty"`
	IP          string      `gorm:"size:64" json:"ip,omitempty"`
	Ports       string      `gorm:"type:text" json:"-"`
	State       berth.State `gorm:"size:16" json:"state"`
	Version     string      `gorm:"size:255" json:"version"`
	RunID       uint        `gorm:"index" json:"runId"`
	// Resources are what the instance takes, as placed.
	Resources berth.Resources `gorm:"embedded;embeddedPrefix:res_" json:"resources"`
	// PlanKey, when set, is what makes a plan idempotent instead of RunID,
	// for runs that plan more than once (a release plans each batch).
	PlanKey   string     `gorm:"size:191;index" json:"-"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	RemovedAt *time.Time `json:"removedAt,omitempty"`
}

// PortAllocation reserves one host port for one instance. The unique index on
// (host, port) is what keeps two concurrent deploys from sharing a port.
type PortAllocation struct {
	ID           uint   `gorm:"primaryKey"`
	HostID       uint   `gorm:"uniqueIndex:ux_port_host_port"`
	Port         int    `gorm:"uniqueIndex:ux_port_host_port"`
	InstanceName string `gorm:"size:191;index"`
	CreatedAt    time.Time
}

// Run is one workflow execution as users see it. Its ID is the stable run number.
type Run struct {
	ID            uint            `gorm:"primaryKey" json:"id"`
	Kind          berth.RunKind   `gorm:"size:32;index" json:"kind"`
	WorkflowID    string          `gorm:"size:191;index" json:"workflowId"`
	TemporalRunID string          `gorm:"size:64" json:"temporalRunId,omitempty"`
	TenantID      uint            `gorm:"index" json:"tenantId,omitempty"`
	EnvironmentID uint            `gorm:"index" json:"environmentId,omitempty"`
	ApplicationID uint            `gorm:"index" json:"applicationId,omitempty"`
	HostID        uint            `json:"hostId,omitempty"`
	Subject       string          `gorm:"size:191" json:"subject"`
	Status        berth.RunStatus `gorm:"size:16;index" json:"status"`
	StartedBy     string          `gorm:"size:64;index" json:"startedBy"`
	RequestHash   string          `gorm:"size:64" json:"requestHash,omitempty"`
	// RetryOf is the run this one retries (0: a first try).
	RetryOf uint `gorm:"index" json:"retryOf,omitempty"`
	// Request is the request that started the run, kept so that a retry can
	// make it again; empty for a run that cannot be retried.
	Request string `gorm:"type:mediumtext" json:"-"`
	// ActiveKey holds the workflow id while the run is active and NULL after;
	// its unique index allows one active run per subject.
	ActiveKey  *string    `gorm:"size:191;uniqueIndex" json:"-"`
	Input      string     `gorm:"type:mediumtext" json:"-"`
	Error      string     `gorm:"type:text" json:"error,omitempty"`
	CreatedAt  time.Time  `gorm:"index" json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Steps      []Step     `json:"steps,omitempty"`
}

// Step is one durable step of a run, with the time it spent working and the
// time it spent waiting (on people or on outside systems).
type Step struct {
	ID         uint            `gorm:"primaryKey" json:"-"`
	RunID      uint            `gorm:"uniqueIndex:ux_step_run_name" json:"-"`
	Seq        int             `json:"seq"`
	Name       string          `gorm:"size:128;uniqueIndex:ux_step_run_name" json:"name"`
	State      berth.StepState `gorm:"size:16" json:"state"`
	Detail     string          `gorm:"type:text" json:"detail,omitempty"`
	Error      string          `gorm:"type:text" json:"error,omitempty"`
	StartedAt  *time.Time      `json:"startedAt,omitempty"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
	ActiveMs   int64           `json:"activeMs"`
	WaitingMs  int64           `json:"waitingMs"`
}

// AuditEvent records one mutating action. Rows are only ever inserted.
type AuditEvent struct {
	ID      uint      `gorm:"primaryKey" json:"id"`
	At      time.Time `gorm:"index" json:"at"`
	Actor   string    `gorm:"size:64;index" json:"actor"`
	Action  string    `gorm:"size:191;index" json:"action"`
	Target  string    `gorm:"size:191" json:"target"`
	Remote  string    `gorm:"size:64" json:"remote"`
	Outcome string    `gorm:"size:32" json:"outcome"`
	Detail  string    `gorm:"type:text" json:"detail,omitempty"`
}

// Production says the environment is production: marked so, or named prod.
func (e *Environment) Production() bool { return e.Prod || e.Name == "prod" }

func allModels() []any {
	return []any{&Region{}, &Host{}, &Tenant{}, &Environment{}, &Application{}, &Service{},
		&Instance{}, &PortAllocation{}, &Run{}, &Step{}, &AuditEvent{},
		&berth.LBPool{}, &berth.LBServer{}, &berth.FirewallOpening{}, &berth.CMDBRecord{}, &Incident{}, &Release{}, &ServiceReleases{}, &ReleaseOutput{},
		&User{}, &RoleBinding{}, &APIToken{}, &Session{}, &Approval{}, &Decision{}, &Secret{}, &AppVersion{}, &VolumeMeasure{}, &TerminalSession{}, &LoginFailure{}}
}
