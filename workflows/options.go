package workflows

import (
	"time"

	"github.com/berth-dev/berth"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// CentralTaskQueue is where workflows and local store activities run.
const CentralTaskQueue = "berth"

// RegionTaskQueue is where a region's worker takes the activities that touch its hosts.
// A run's host activities go through onRegion (region_wait.go): their
// ScheduleToStartTimeout below only bounds the first ask, after which the
// run waits for a region's worker that is down instead of failing.
func RegionTaskQueue(region string) string { return "berth-" + region }

// nonRetryable are the error types no retry can fix: the domain's codes.
var nonRetryable = berth.CodeNames()

// aliveTimeout is every remote activity's heartbeat timeout. The workers
// send a heartbeat for each running activity every 3 s
// (worker/keepalive.go), so an attempt whose worker was killed is retried
// within about 10 s, not after its start-to-close timeout. It was 4 s with a
// heartbeat a second: 20 deploys at once on the production Temporal server
// (make bench-prod, 2 cores) then had heartbeats answered later than that,
// and retried attempts until one run failed.
const aliveTimeout = 10 * time.Second

// storeOptions: store writes are quick and local to the workflow's worker, so
// a local activity saves a task-queue round trip; retried while the DB restarts.
var storeOptions = workflow.LocalActivityOptions{
	ScheduleToCloseTimeout: 10 * time.Minute,
	StartToCloseTimeout:    30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
		MaximumInterval: 10 * time.Second, NonRetryableErrorTypes: nonRetryable},
}

// probeOptions: a host check is short; if no worker of the region picks it up
// within a minute, the region has no worker and the run should say so.
var probeOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    30 * time.Second,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: nonRetryable},
}

// firewallRepairOptions: a region's rules are read and fixed in well under a
// second; a region without a worker is a finding of this pass, and the next
// pass tries again, so nothing waits for it longer than a minute.
var firewallRepairOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: time.Minute,
	StartToCloseTimeout:    30 * time.Second,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: nonRetryable},
}

// pruneOptions: freeing a host's disk is housekeeping; a few tries per
// reconciler pass, and what is left goes on the next one.
var pruneOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    5 * time.Minute,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: nonRetryable},
}

// lostOptions: removing the containers of lost instances from a host that
// answers again is cleanup a pass repeats; a few tries, the next pass does the rest.
var lostOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    2 * time.Minute,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: nonRetryable},
}

// registryOptions: the catalogue's registry calls are short HTTP requests
// a person waits for; a few quick tries, heartbeats while many tags are read.
var registryOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 30 * time.Second,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, MaximumAttempts: 3,
		NonRetryableErrorTypes: nonRetryable},
}

// terminalOptions: a person waits for the region's worker to open the
// session, which then lasts as long as they use it; never retried, as a
// second attempt would run the command again.
var terminalOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 30 * time.Second,
	StartToCloseTimeout:    berth.TerminalMax,
	HeartbeatTimeout:       aliveTimeout,
	RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
}

// measureOptions: the engine walks every volume to measure it, in one call
// that cannot heartbeat; what a pass misses the next one measures.
var measureOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: time.Minute,
	StartToCloseTimeout:    2 * time.Minute,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2, NonRetryableErrorTypes: nonRetryable},
}

// imageOptions: pulls can be long; heartbeats catch a dead worker.
var imageOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	StartToCloseTimeout:    30 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable},
}

// instanceOptions: create + start + health wait on one host; a killed
// worker's attempt is retried within seconds, and the retry adopts the
// container the dead attempt made.
var instanceOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	StartToCloseTimeout:    10 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable},
}

// meshOptions: one call sets up relays on every host of an application (the
// first time it copies berth's binary to each as an image); heartbeats show
// progress per host.
var meshOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	StartToCloseTimeout:    10 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable},
}

// cleanupOptions: undoing must not give up on a passing fault, but a host
// that is gone for good must not hold the run forever.
var cleanupOptions = workflow.ActivityOptions{
	ScheduleToCloseTimeout: 15 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    2 * time.Minute,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
}

// lbOptions: runtime-API calls are quick; retried a few times because a
// reload may briefly refuse them.
var lbOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second,
		MaximumAttempts: 10, NonRetryableErrorTypes: nonRetryable},
}

// drainOptions: waiting for sessions to end can take a while; heartbeats show it is alive.
var drainOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	StartToCloseTimeout:    15 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
}

// firewallOptions: a firewall API may be slow or flaky; a few retries, then the run fails and undoes.
var firewallOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable},
}

// firewallRejected is activities.FirewallRejected: options hold no imports.
const firewallRejected = "FirewallRejected"

// firewallChangeOptions: a change waits for another team, up to the
// worker's -firewall-change-timeout (at most a day), so the attempt gets
// longer than that and a heartbeat; a rejection is not retried.
var firewallChangeOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 2 * time.Minute,
	HeartbeatTimeout:       aliveTimeout,
	StartToCloseTimeout:    25 * time.Hour,
	RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		MaximumAttempts: 5, NonRetryableErrorTypes: append([]string{firewallRejected}, nonRetryable...)},
}

// cmdbOptions: the CMDB is outside berth's control; a sync marks failures
// itself and never fails a release, so retries here only cover our own store.
var cmdbOptions = workflow.ActivityOptions{
	HeartbeatTimeout:    aliveTimeout,
	StartToCloseTimeout: 2 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
}

// cmdbResyncOptions: a resync walks every item berth holds, one HTTP call
// per repair, so it gets minutes and a heartbeat; a CMDB that cannot be
// listed is tried a few times, then the next scheduled resync tries again.
var cmdbResyncOptions = workflow.ActivityOptions{
	HeartbeatTimeout:    aliveTimeout,
	StartToCloseTimeout: 30 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 3},
}

// ticketOptions: a delivery pass marks every failed ticket itself, with
// its own backoff, so retries here only cover our own store.
var ticketOptions = workflow.ActivityOptions{
	HeartbeatTimeout:    aliveTimeout,
	StartToCloseTimeout: 10 * time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 3},
}

// liveReadOptions: a page polls stats and logs every few seconds, so one read
// is never retried, and a region without a worker is reported within
// seconds instead of the read waiting in its queue.
var liveReadOptions = workflow.ActivityOptions{
	ScheduleToStartTimeout: 5 * time.Second,
	StartToCloseTimeout:    15 * time.Second,
	RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
}
