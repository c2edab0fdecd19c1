package berth

import "time"

// InstanceRecord is what the records say about one instance on a host, as
// the reconciler compares it with the engine.
type InstanceRecord struct {
	Instance  PlannedInstance `json:"instance"`
	State     State           `json:"state"`
	RunID     uint            `json:"runId"`
	CreatedAt time.Time       `json:"createdAt"`
}

// HostContainer is one container berth made, as its engine lists it.
type HostContainer struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	UID     string    `json:"uid"`
	RunID   uint      `json:"runId"`
	Created time.Time `json:"created"`
	Running bool      `json:"running"`
	// Unhealthy: running, but failing the health check its compose file
	// gave Docker.
	Unhealthy bool `json:"unhealthy,omitempty"`
	// Host is the host record that placed it ("" for containers made
	// before berth labelled it).
	Host string `json:"host,omitempty"`
}

// FindingKind is what the reconciler found and did about it.
type FindingKind string

// Finding kinds.
const (
	// FindingOrphan: a container berth made that no live record holds, of a
	// run that has ended; it was removed.
	FindingOrphan FindingKind = "orphan-removed"
	// FindingAbandoned: an instance planned by a run that ended before it
	// started; its container (if any) was removed and its ports released.
	FindingAbandoned FindingKind = "abandoned-released"
	// FindingMissing: a live instance whose container is gone; reported.
	FindingMissing FindingKind = "missing"
	// FindingRunClosed: a run whose workflow ended without recording its
	// outcome; it was closed as failed and its lock freed.
	FindingRunClosed FindingKind = "run-closed"
	// FindingDecisionResent: an approval decided in the records whose run
	// still waited on its step (the API died between its commit and its
	// signal); the decision was sent to the run again.
	FindingDecisionResent FindingKind = "decision-resent"
	// FindingImagePruned: an image berth built from a package that no kept
	// release (current, last good, newest, under way) names and no
	// container uses; it was removed from the host to free its disk. The
	// registry still holds it.
	FindingImagePruned FindingKind = "image-pruned"
	// FindingHealed: a live instance whose container had exited was started
	// again by a heal run (its run says how it went).
	FindingHealed FindingKind = "heal-started"
	// FindingHealGaveUp: an instance exited again after MaxHeals heals
	// within HealWindow; it is left for a person, and said once per window.
	FindingHealGaveUp FindingKind = "heal-gave-up"
	// FindingVolumeOverSize: a named volume holds more than the size its
	// compose file declared (and its quota counts), on a host whose
	// filesystem cannot bound it; said once until it is back under.
	FindingVolumeOverSize FindingKind = "volume-over-size"
	// FindingHostDown: a host's engine did not answer HostDownAfter
	// passes in a row; it was marked down and its instances are replaced
	// on the environment's other ready hosts.
	FindingHostDown FindingKind = "host-down"
	// FindingHostBack: a host marked down answers again; a check marks it
	// ready once the containers of its lost instances are removed.
	FindingHostBack FindingKind = "host-back"
	// FindingLostRemoved: the container of an instance lost with its host
	// was removed once the host answered, and its ports released.
	FindingLostRemoved FindingKind = "lost-removed"
	// FindingTerminalClosed: a terminal session whose server died before
	// recording its end; its record was ended.
	FindingTerminalClosed FindingKind = "terminal-closed"
	// FindingFirewallRepaired: a region's firewall differed from the
	// records: an opening whose rule had gone was opened again, or a rule
	// no live opening accounts for was closed.
	FindingFirewallRepaired FindingKind = "firewall-repaired"
)

// Self-healing's backoff: an instance is started again at most MaxHeals
// times within HealWindow, so a crash-looping image does not churn.
const (
	MaxHeals   = 3
	HealWindow = 10 * time.Minute
)

// HealVerdict is what BeginHeal decided for an instance whose container exited.
type HealVerdict string

// Heal verdicts.
const (
	// HealOpened: a heal run holds the application's lock; start it.
	HealOpened HealVerdict = "opened"
	// HealBusy: another run holds the lock, or the records no longer say
	// the instance runs; the next pass looks again.
	HealBusy HealVerdict = "busy"
	// HealGaveUp: the backoff is spent; said now, once.
	HealGaveUp HealVerdict = "gave-up"
	// HealGivenUp: the backoff is spent and that was already said.
	HealGivenUp HealVerdict = "given-up"
)

// HealStart is BeginHeal's answer.
type HealStart struct {
	Verdict HealVerdict `json:"verdict"`
	// RunID and WorkflowID name the heal run when Verdict is HealOpened.
	RunID         uint   `json:"runId,omitempty"`
	WorkflowID    string `json:"workflowId,omitempty"`
	ApplicationID uint   `json:"applicationId,omitempty"`
	// Subject is the run's (tenant/env/app/service/instance); App is the
	// application's (tenant/env/app), as its load-balancer pools name it.
	Subject string `json:"subject,omitempty"`
	App     string `json:"app,omitempty"`
	Tries   int    `json:"tries"`
}

// HostProbe is what one self-healing probe of a host found and changed.
type HostProbe struct {
	State HostState `json:"state"`
	// Failures is how many probes in a row the engine did not answer.
	Failures int `json:"failures"`
	// WentDown: this probe marked the host down.
	WentDown bool `json:"wentDown,omitempty"`
	// Live is how many live instances the records still place on the host.
	Live int `json:"live"`
}

// ShortService is a service with fewer live instances than its replicas.
type ShortService struct {
	ServiceID uint `json:"serviceId"`
	Live      int  `json:"live"`
	Replicas  int  `json:"replicas"`
}

// AppLockKey is the key of an application's lock: one run at a time holds it.
func AppLockKey(tenant, env, app string) string {
	return "app/" + tenant + "/" + env + "/" + app
}

// StrandedDecision is an approval decided in the records whose run still
// waits on its step.
type StrandedDecision struct {
	RunID      uint             `json:"runId"`
	WorkflowID string           `json:"workflowId"`
	Decision   ApprovalDecision `json:"decision"`
}

// VolumeUse is one named volume on a host, as the disk pass measured it:
// its application, its declared size and what it holds (-1: the engine
// did not say).
type VolumeUse struct {
	Name      string `json:"name"`
	Tenant    string `json:"tenant"`
	Env       string `json:"env"`
	App       string `json:"app"`
	SizeBytes int64  `json:"sizeBytes"`
	UsedBytes int64  `json:"usedBytes"`
}

// Finding is one difference between the records and the world, and what
// was done about it.
type Finding struct {
	Kind   FindingKind `json:"kind"`
	Host   string      `json:"host,omitempty"`
	Target string      `json:"target"`
	Detail string      `json:"detail"`
	// Error is set when the repair itself failed; the next pass tries again.
	Error string `json:"error,omitempty"`
}

// OpenRun is a run still pending or running, as the reconciler asks its
// workflow whether it really is.
type OpenRun struct {
	ID            uint    `json:"id"`
	Kind          RunKind `json:"kind"`
	Subject       string  `json:"subject"`
	WorkflowID    string  `json:"workflowId"`
	TemporalRunID string  `json:"temporalRunId"`
}
