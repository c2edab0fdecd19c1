package berth

// HostState is where a host is in its life. A host is only placed on when ready.
type HostState string

// Host states.
const (
	HostPending  HostState = "pending"
	HostReady    HostState = "ready"
	HostDraining HostState = "draining"
	HostDown     HostState = "down"
	// HostDrained: a drain moved every instance off it; it takes none
	// until undrained.
	HostDrained HostState = "drained"
)

// HostStates lists every host state.
var HostStates = []HostState{HostPending, HostReady, HostDraining, HostDrained, HostDown}

// State is the state of an application, a service or an instance.
type State string

// Application, service and instance states.
const (
	StatePlanned   State = "planned"
	StateDeploying State = "deploying"
	StateRunning   State = "running"
	StateFailed    State = "failed"
	StateDeleting  State = "deleting"
	StateDeleted   State = "deleted"
	StateRemoved   State = "removed"
	// StateStopped: an instance a person stopped (POST .../stop); its
	// container is kept, out of the load balancer, until started again.
	StateStopped State = "stopped"
	// StateLost: an instance on a host whose engine stopped answering,
	// replaced elsewhere. Its record is closed (not live) but keeps its
	// ports until its container is removed, once the host answers again.
	StateLost State = "lost"
)

// States lists every application, service and instance state.
var States = []State{StatePlanned, StateDeploying, StateRunning, StateFailed, StateDeleting, StateDeleted, StateRemoved, StateStopped, StateLost}

// RunStatus is how a run stands.
type RunStatus string

// Run statuses.
const (
	RunPending   RunStatus = "pending"
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// RunStatuses lists every run status.
var RunStatuses = []RunStatus{RunPending, RunRunning, RunSucceeded, RunFailed, RunCancelled}

// Ended says the run will not change again.
func (s RunStatus) Ended() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// StepState is how one step of a run stands.
type StepState string

// Step states.
const (
	StepRunning     StepState = "running"
	StepWaiting     StepState = "waiting"
	StepDone        StepState = "done"
	StepFailed      StepState = "failed"
	StepCompensated StepState = "compensated"
)

// StepStates lists every step state.
var StepStates = []StepState{StepRunning, StepWaiting, StepDone, StepFailed, StepCompensated}

// RunKind is what a run does; every workflow a person can start is one.
type RunKind string

// Run kinds.
const (
	KindDeploy        RunKind = "deploy"
	KindDelete        RunKind = "delete"
	KindUpdate        RunKind = "update"
	KindScale         RunKind = "scale"
	KindRelease       RunKind = "release"
	KindRollback      RunKind = "rollback"
	KindGreyRelease   RunKind = "grey-release"
	KindCommit        RunKind = "commit"
	KindGate          RunKind = "gate"
	KindProvisionHost RunKind = "provision-host"
	// Actions on one instance (POST /api/v1/instances/{name}/restart|stop|start).
	KindRestart RunKind = "restart"
	KindStop    RunKind = "stop"
	KindStart   RunKind = "start"
	// KindHeal: self-healing started an instance whose container had exited.
	KindHeal RunKind = "heal"
	// KindDrainHost moves every instance off a host (POST /api/v1/hosts/{name}/drain);
	// each service's move is a KindEvacuate run under its application's lock.
	KindDrainHost RunKind = "drain-host"
	KindEvacuate  RunKind = "evacuate"
	// KindRecoverHost: self-healing replaces, elsewhere, the instances of a
	// host it marked down; each service's move is a KindEvacuate run.
	KindRecoverHost RunKind = "recover-host"
	// KindTerminalAccess: a person asks for a time-boxed terminal into a
	// production service; approvers decide, and the grant runs from then.
	KindTerminalAccess RunKind = "terminal-access"
)

// RunKinds lists every run kind, in the order the UI offers them.
var RunKinds = []RunKind{KindDeploy, KindUpdate, KindDelete, KindScale, KindRelease, KindRollback, KindGreyRelease,
	KindCommit, KindGate, KindProvisionHost, KindRestart, KindStop, KindStart, KindHeal, KindDrainHost, KindEvacuate, KindRecoverHost, KindTerminalAccess}

// OpeningState is where a firewall opening stands.
type OpeningState string

// Firewall opening states.
const (
	OpeningRequested OpeningState = "requested"
	OpeningOpen      OpeningState = "open"
	OpeningClosed    OpeningState = "closed"
)

// OpeningStates lists every opening state.
var OpeningStates = []OpeningState{OpeningRequested, OpeningOpen, OpeningClosed}

// SyncState is how a configuration item's push to the CMDB went.
type SyncState string

// CMDB sync states.
const (
	SyncPending SyncState = "pending"
	SyncDone    SyncState = "synced"
	SyncFailed  SyncState = "failed"
)

// SyncStates lists every sync state.
var SyncStates = []SyncState{SyncPending, SyncDone, SyncFailed}

// Role is what a user may do on a tenant.
type Role string

// Roles a user may hold on a tenant.
const (
	RoleDeveloper      Role = "developer"
	RoleApprover       Role = "approver"
	RoleReleaseManager Role = "release-manager"
	RoleAdmin          Role = "admin"
)

// Roles lists every role, in the order the UI shows them.
var Roles = []Role{RoleDeveloper, RoleApprover, RoleReleaseManager, RoleAdmin}

// IsRole says whether r names a role.
func IsRole(r string) bool {
	for _, x := range Roles {
		if string(x) == r {
			return true
		}
	}
	return false
}

// Names returns enum values as plain strings, in order.
func Names[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// Parse returns s as one of the values of an enum's list, and whether it is one.
func Parse[T ~string](list []T, s string) (T, bool) {
	for _, x := range list {
		if string(x) == s {
			return x, true
		}
	}
	return "", false
}
