package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
)

// GreyReleaseName is the registered name of GreyRelease.
const GreyReleaseName = "GreyRelease"

// GreyControlUpdate carries a GreyControl: promote, abort, pause or resume.
// Its validator refuses what the release cannot take now with an
// ApplicationError of type GreyControlRefused, whose message says why.
const GreyControlUpdate = "grey-control"

// GreyControlRefused is the error type of a refused GreyControlUpdate.
const GreyControlRefused = "GreyControlRefused"

// GreyControlSignal carries a GreyControl to runs started before
// GreyControlUpdate, which have no update handler. Later runs take it too,
// under the same rules, but cannot tell the sender they refused it.
const GreyControlSignal = "grey-control"

// greyControlUpdateChange is the GetVersion change id that added
// GreyControlUpdate.
const greyControlUpdateChange = "grey-control-update"

// GreyStateQuery answers with the grey release's GreyState.
const GreyStateQuery = "grey-state"

// Phases of a grey release.
const (
	GreyPhaseStarting  = "starting"
	GreyPhaseCanary    = "canary"
	GreyPhasePaused    = "paused"
	GreyPhasePromoting = "promoting"
	GreyPhaseAborting  = "aborting"
	GreyPhaseDone      = "done"
)

// GreyReleaseInput is a grey release of one service to a new image.
type GreyReleaseInput struct {
	// Release carries the service, its stable instances (Instances), the
	// last-good image, batch size for the promotion, deadlines and the
	// load-balancer settings; Release.Service.Image is the new image.
	Release  ReleaseVersionInput `json:"release"`
	Canaries int                 `json:"canaries"`
	Steps    []berth.GreyStep    `json:"steps"`
	// StartedBy may not decide the release's approval steps when
	// SeparateDuties is set.
	StartedBy      string `json:"startedBy"`
	SeparateDuties bool   `json:"separateDuties"`
	TenantID       uint   `json:"tenantId"`
}

// GreyState is what the state query answers.
type GreyState struct {
	Phase    string           `json:"phase"`
	Step     int              `json:"step"` // index of the current step; len(steps) once they are done
	Steps    []berth.GreyStep `json:"steps"`
	Current  string           `json:"current"`
	Weight   int              `json:"weight"`
	Routes   []GreyRoute      `json:"routes"`
	Canaries []string         `json:"canaries"`
	Stable   []string         `json:"stable"`
	Paused   bool             `json:"paused"`
	// AwaitingApproval: an approval is open; promote is refused until it
	// is decided.
	AwaitingApproval bool                 `json:"awaitingApproval"`
	Analyses         []GreyAnalysisResult `json:"analyses"`
	DeadlineAt       time.Time            `json:"deadlineAt,omitempty"`
	Outcome          berth.ReleaseOutcome `json:"outcome,omitempty"`
	Reason           string               `json:"reason,omitempty"`
	Image            string               `json:"image"`
	StableImage      string               `json:"stableImage"`
}

// GreyReleaseResult is how the grey release ended.
type GreyReleaseResult struct {
	Outcome   berth.ReleaseOutcome `json:"outcome"`
	Instances []string             `json:"instances"`
}

// GreyReleaseID is the workflow id of a service's grey release. It differs
// from ReleaseVersionID's, and the application lock keeps the two apart.
func GreyReleaseID(tenant, env, app, service string) string {
	return fmt.Sprintf("grey/%s/%s/%s/%s", tenant, env, app, service)
}

// grey is a running grey release.
type grey struct {
	r     *run
	in    GreyReleaseInput
	rin   ReleaseVersionInput // the release input with the canary's spec
	state GreyState

	stable, canaries []berth.PlannedInstance
	routes           []GreyRoute
	gen              int // canary batches started, for plan keys

	// action is a promote or abort someone asked for; interrupt ends the
	// wait or step in progress so it is acted on at once.
	action      GreyControl
	cancelStep  workflow.CancelFunc
	touchCh     workflow.Channel
	deadlineHit bool
	planned     bool // in a timed pause or analysis window: not stalled
	finished    bool
}

// GreyRelease starts canary instances of a new image beside the stable ones
// and walks the steps: weights applied through the load balancer and read
// back, header and cookie routes, timed pauses and approvals, analyses of
// canary against stable from the load balancer's own figures, and canary
// scaling. A failed analysis, a rejection, an abort, a cancel or the
// progress deadline takes all traffic back to stable in one step and
// removes the canary; the steps' end, or a promote, replaces the stable
// instances with the new image in batches and removes the canary.
func GreyRelease(ctx workflow.Context, in GreyReleaseInput) (*GreyReleaseResult, error) {
	ctx, r, err := newRun(ctx, in.Release.RunID)
	if err != nil {
		return nil, err
	}
	g := &grey{r: r, in: in, rin: in.Release, stable: slices.Clone(in.Release.Instances)}
	g.rin.waitUp = true
	g.state = GreyState{Phase: GreyPhaseStarting, Steps: in.Steps, Routes: []GreyRoute{}, Canaries: []string{},
		Analyses: []GreyAnalysisResult{}, Image: in.Release.Service.Image, StableImage: in.Release.LastGoodImage}
	g.syncNames()
	if err := workflow.SetQueryHandler(ctx, GreyStateQuery, func() (GreyState, error) { return g.state, nil }); err != nil {
		return nil, err
	}
	g.touchCh = workflow.NewBufferedChannel(ctx, 1)
	if err := g.listen(ctx); err != nil {
		return nil, err
	}
	if d := in.Release.ProgressDeadline; d > 0 {
		workflow.Go(ctx, func(gctx workflow.Context) { g.watchDeadline(gctx, d) })
	}

	if stop := g.canaryPhase(ctx); stop != nil {
		return g.abort(ctx, stop)
	}
	return g.promote(ctx)
}
