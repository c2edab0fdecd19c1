package workflows

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

// GreyReleaseName is the registered name of GreyRelease.
const GreyReleaseName = "GreyRelease"

// GreyControlSignal carries a GreyControl: promote, abort, pause or resume.
const GreyControlSignal = "grey-control"

// GreyStateQuery answers with the grey release's GreyState.
const GreyStateQuery = "grey-state"

// Actions of a GreyControl.
const (
	GreyPromote     = "promote"
	GreyAbort       = "abort"
	GreyPauseAction = "pause"
	GreyResume      = "resume"
)

// Phases of a grey release.
const (
	GreyPhaseStarting  = "starting"
	GreyPhaseCanary    = "canary"
	GreyPhasePaused    = "paused"
	GreyPhasePromoting = "promoting"
	GreyPhaseAborting  = "aborting"
	GreyPhaseDone      = "done"
)

// GreyControl is what a person asks of a running grey release.
type GreyControl struct {
	Action string `json:"action"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// Duration is a time.Duration written as Go text ("30s", "5m") in JSON, so
// a grey release's steps read the same in the API, the UI and the history.
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads text such as "90s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("a duration is text such as \"30s\" or \"5m\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}

// GreyStep is one step of a grey release; exactly one field is set. The
// steps are data, modelled on Argo Rollouts' canary steps.
type GreyStep struct {
	// SetWeight sends this percentage of the traffic to the canary.
	SetWeight *int `json:"setWeight,omitempty"`
	// SetHeaderRoute / SetCookieRoute send requests carrying the header or
	// cookie to the canary whatever the weight.
	SetHeaderRoute *GreyMatch `json:"setHeaderRoute,omitempty"`
	SetCookieRoute *GreyMatch `json:"setCookieRoute,omitempty"`
	// Pause waits for a duration, for an approval, or (both empty) until
	// someone resumes or promotes.
	Pause *GreyPause `json:"pause,omitempty"`
	// Analysis compares canary and stable from the load balancer's figures.
	Analysis *GreyAnalysis `json:"analysis,omitempty"`
	// Scale changes the number of canary instances.
	Scale *int `json:"scale,omitempty"`
}

// GreyMatch names a header or cookie and the value that routes to the canary.
type GreyMatch struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GreyPause is a timed wait or an approval.
type GreyPause struct {
	Duration Duration      `json:"duration,omitempty"`
	Approval *GreyApproval `json:"approval,omitempty"`
}

// GreyApproval is an approval step between weights.
type GreyApproval struct {
	Roles  []berth.Role `json:"roles,omitempty"` // default: approver
	Quorum int          `json:"quorum,omitempty"`
	// Timeout bounds the wait (default 24h); OnTimeout is fail (abort the
	// release) or escalate (EscalateTo gets one more Timeout).
	Timeout    Duration        `json:"timeout,omitempty"`
	OnTimeout  berth.OnTimeout `json:"onTimeout,omitempty"`
	EscalateTo []berth.Role    `json:"escalateTo,omitempty"`
}

// GreyAnalysis judges the canary over a window of live traffic.
type GreyAnalysis struct {
	Window Duration `json:"window"`
	// MaxErrorRate is the highest share of 5xx answers the canary may give.
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MaxErrorRateIncrease, when set, is how far the canary's 5xx share may
	// exceed the stable instances' in the same window.
	MaxErrorRateIncrease float64 `json:"maxErrorRateIncrease,omitempty"`
	// MaxResponseMs, when set, bounds the canary's average response time.
	MaxResponseMs int64 `json:"maxResponseMs,omitempty"`
	// MinRequests the canary must have answered for a verdict; fewer makes
	// the analysis inconclusive and the release pauses for a person.
	MinRequests int64 `json:"minRequests,omitempty"`
}

// GreyReleaseInput is a grey release of one service to a new image.
type GreyReleaseInput struct {
	// Release carries the service, its stable instances (Instances), the
	// last-good image, batch size for the promotion, deadlines and the
	// load-balancer settings; Release.Service.Image is the new image.
	Release  ReleaseVersionInput `json:"release"`
	Canaries int                 `json:"canaries"`
	Steps    []GreyStep          `json:"steps"`
	// StartedBy may not decide the release's approval steps when
	// SeparateDuties is set.
	StartedBy      string `json:"startedBy"`
	SeparateDuties bool   `json:"separateDuties"`
	TenantID       uint   `json:"tenantId"`
}

// GreyRoute is a route as the state shows it.
type GreyRoute struct {
	Kind  string `json:"kind"` // header or cookie
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GreyAnalysisResult is one analysis, with its figures.
type GreyAnalysisResult struct {
	Step            int     `json:"step"`
	Verdict         string  `json:"verdict"` // pass, fail, inconclusive
	Reason          string  `json:"reason"`
	CanaryRequests  int64   `json:"canaryRequests"`
	Canary5xx       int64   `json:"canary5xx"`
	CanaryErrorRate float64 `json:"canaryErrorRate"`
	CanaryAvgMs     int64   `json:"canaryAvgMs"`
	StableRequests  int64   `json:"stableRequests"`
	Stable5xx       int64   `json:"stable5xx"`
	StableErrorRate float64 `json:"stableErrorRate"`
	StableAvgMs     int64   `json:"stableAvgMs"`
}

// GreyState is what the state query answers.
type GreyState struct {
	Phase    string      `json:"phase"`
	Step     int         `json:"step"` // index of the current step; len(steps) once they are done
	Steps    []GreyStep  `json:"steps"`
	Current  string      `json:"current"`
	Weight   int         `json:"weight"`
	Routes   []GreyRoute `json:"routes"`
	Canaries []string    `json:"canaries"`
	Stable   []string    `json:"stable"`
	Paused   bool        `json:"paused"`
	// AwaitingApproval: an approval step is open; promote waits for it.
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

var (
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	routeValueRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
)

// Limits of a grey release request.
const (
	MaxGreySteps    = 50
	MaxGreyCanaries = 20
)

// ValidateGreySteps checks steps before a run starts, naming the first
// problem; the workflow trusts what passed.
func ValidateGreySteps(steps []GreyStep) error {
	if len(steps) > MaxGreySteps {
		return fmt.Errorf("at most %d steps", MaxGreySteps)
	}
	for i, s := range steps {
		at := fmt.Sprintf("step %d", i+1)
		n := 0
		if s.SetWeight != nil {
			n++
			if *s.SetWeight < 0 || *s.SetWeight > 100 {
				return fmt.Errorf("%s: setWeight must be 0..100", at)
			}
		}
		for kind, m := range map[string]*GreyMatch{"setHeaderRoute": s.SetHeaderRoute, "setCookieRoute": s.SetCookieRoute} {
			if m == nil {
				continue
			}
			n++
			re := headerNameRE
			if kind == "setCookieRoute" {
				re = cookieNameRE
			}
			if !re.MatchString(m.Name) {
				return fmt.Errorf("%s: %s name %q must be 1-64 letters, digits or -", at, kind, m.Name)
			}
			if !routeValueRE.MatchString(m.Value) {
				return fmt.Errorf("%s: %s value %q must be 1-128 letters, digits or _ . : -", at, kind, m.Value)
			}
		}
		if p := s.Pause; p != nil {
			n++
			d := time.Duration(p.Duration)
			if p.Approval != nil && d != 0 {
				return fmt.Errorf("%s: a pause has a duration or an approval, not both", at)
			}
			if d != 0 && (d < time.Second || d > 24*time.Hour) {
				return fmt.Errorf("%s: pause duration must be between 1s and 24h", at)
			}
			if a := p.Approval; a != nil {
				if t := time.Duration(a.Timeout); t != 0 && (t < 10*time.Second || t > 7*24*time.Hour) {
					return fmt.Errorf("%s: approval timeout must be between 10s and 168h", at)
				}
				if a.Quorum < 0 || a.Quorum > 10 {
					return fmt.Errorf("%s: approval quorum must be 1..10", at)
				}
				switch a.OnTimeout {
				case "", berth.OnTimeoutFail, berth.OnTimeoutAbort:
				case berth.OnTimeoutEscalate:
					if len(a.EscalateTo) == 0 {
						return fmt.Errorf("%s: onTimeout escalate needs escalateTo", at)
					}
				default:
					return fmt.Errorf("%s: onTimeout must be fail, abort or escalate", at)
				}
				for _, r := range append(slices.Clone(a.Roles), a.EscalateTo...) {
					if !slices.Contains(berth.Roles, r) {
						return fmt.Errorf("%s: unknown role %q (roles: %s)", at, r, strings.Join(berth.Names(berth.Roles), ", "))
					}
				}
			}
		}
		if a := s.Analysis; a != nil {
			n++
			w := time.Duration(a.Window)
			if w < 2*time.Second || w > time.Hour {
				return fmt.Errorf("%s: analysis window must be between 2s and 1h", at)
			}
			if a.MaxErrorRate < 0 || a.MaxErrorRate > 1 || a.MaxErrorRateIncrease < 0 || a.MaxErrorRateIncrease > 1 {
				return fmt.Errorf("%s: analysis error rates are shares between 0 and 1", at)
			}
			if a.MaxResponseMs < 0 || a.MinRequests < 0 {
				return fmt.Errorf("%s: analysis maxResponseMs and minRequests must not be negative", at)
			}
		}
		if s.Scale != nil {
			n++
			if *s.Scale < 1 || *s.Scale > MaxGreyCanaries {
				return fmt.Errorf("%s: scale must be 1..%d canary instances", at, MaxGreyCanaries)
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: give exactly one of setWeight, setHeaderRoute, setCookieRoute, pause, analysis, scale", at)
		}
	}
	return nil
}

// Describe is a step in a few words, for the run's timeline.
func (s GreyStep) Describe() string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d%%", *s.SetWeight)
	case s.SetHeaderRoute != nil:
		return fmt.Sprintf("setHeaderRoute %s: %s", s.SetHeaderRoute.Name, s.SetHeaderRoute.Value)
	case s.SetCookieRoute != nil:
		return fmt.Sprintf("setCookieRoute %s=%s", s.SetCookieRoute.Name, s.SetCookieRoute.Value)
	case s.Pause != nil && s.Pause.Approval != nil:
		return "pause for approval"
	case s.Pause != nil && s.Pause.Duration > 0:
		return "pause " + time.Duration(s.Pause.Duration).String()
	case s.Pause != nil:
		return "pause until resumed"
	case s.Analysis != nil:
		return "analysis over " + time.Duration(s.Analysis.Window).String()
	case s.Scale != nil:
		return fmt.Sprintf("scale canary to %d", *s.Scale)
	}
	return "step"
}

// GreyWeights are the per-server weights that send pct percent of a pool's
// traffic to its nCanary canary servers and the rest to its nStable stable
// ones, scaled so the larger weight is HAProxy's maximum (256) for the
// finest split.
func GreyWeights(pct, nStable, nCanary int) (stable, canary int) {
	switch {
	case nCanary == 0 || pct <= 0:
		return 256, 0
	case nStable == 0 || pct >= 100:
		return 0, 256
	}
	s, c := (100-pct)*nCanary, pct*nStable
	top := max(s, c)
	stable, canary = (s*256+top/2)/top, (c*256+top/2)/top
	return max(stable, 1), max(canary, 1)
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
	r, err := newRun(ctx, in.Release.RunID)
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
	ctrl := workflow.GetSignalChannel(ctx, GreyControlSignal)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var c GreyControl
			ctrl.Receive(gctx, &c)
			g.onControl(gctx, c)
		}
	})
	if d := in.Release.ProgressDeadline; d > 0 {
		workflow.Go(ctx, func(gctx workflow.Context) { g.watchDeadline(gctx, d) })
	}

	reason, status := g.canaryPhase(ctx)
	if reason == "" {
		return g.promote(ctx)
	}
	return g.abort(ctx, reason, status)
}

// canaryPhase starts the canary and walks the steps. It returns "" when the
// release should be promoted, else why it must be aborted and the run
// status that follows.
func (g *grey) canaryPhase(ctx workflow.Context) (string, berth.RunStatus) {
	r, in := g.r, g.in
	if in.Release.Approval != nil {
		o, err := g.awaitApproval(g.stepCtx(ctx), *in.Release.Approval)
		if reason, status := g.approvalEnd(ctx, o, err); reason != "" {
			return reason, status
		}
	}
	sctx := g.stepCtx(ctx)
	var err error
	if g.rin.Kind == berth.ReleaseBuild {
		// The canary's image is built from the uploaded package first.
		err = r.step(sctx, "build", func() error { return buildImage(sctx, r, g.rin) })
	}
	if err == nil {
		err = r.step(sctx, "prefetch", func() error { return prefetch(sctx, r, g.rin) })
	}
	if err == nil {
		err = r.step(sctx, fmt.Sprintf("canary: start %d", in.Canaries), func() error {
			return g.addCanaries(sctx, in.Canaries)
		})
	}
	if err != nil {
		return g.interrupted(ctx, err)
	}
	g.state.Phase = GreyPhaseCanary
	g.touch()
	for i, s := range in.Steps {
		if reason, status, stop := g.between(ctx); stop {
			return reason, status
		}
		g.state.Step = i
		name := fmt.Sprintf("step %d/%d: %s", i+1, len(in.Steps), s.Describe())
		g.state.Current = s.Describe()
		sctx := g.stepCtx(ctx)
		var reason string
		var status berth.RunStatus
		switch {
		case s.Pause != nil && s.Pause.Approval != nil:
			reason, status = g.approvalStep(sctx, ctx, name, i, s.Pause.Approval)
		case s.Pause != nil:
			reason, status = g.pauseStep(sctx, ctx, name, time.Duration(s.Pause.Duration))
		case s.Analysis != nil:
			reason, status = g.analysisStep(sctx, ctx, name, i, *s.Analysis)
		default:
			if err := r.step(sctx, name, func() error { return g.apply(sctx, s) }); err != nil {
				reason, status = g.interrupted(ctx, err)
			}
		}
		if reason != "" {
			return reason, status
		}
		g.touch()
	}
	g.state.Step = len(in.Steps)
	if reason, status, stop := g.between(ctx); stop {
		return reason, status
	}
	return "", ""
}

// stepCtx is a context the next interrupt cancels.
func (g *grey) stepCtx(ctx workflow.Context) workflow.Context {
	sctx, cancel := workflow.WithCancel(ctx)
	g.cancelStep = cancel
	if g.action.Action != "" || g.deadlineHit {
		cancel()
	}
	return sctx
}

func (g *grey) interrupt() {
	if g.cancelStep != nil {
		g.cancelStep()
	}
}

// between acts on what arrived during the last step: an abort or promote
// ends the steps; a pause holds here until resumed.
func (g *grey) between(ctx workflow.Context) (reason string, status berth.RunStatus, stop bool) {
	if reason, status, stop = g.pending(ctx); stop {
		return
	}
	if !g.state.Paused {
		return "", "", false
	}
	g.state.Phase = GreyPhasePaused
	g.r.recordEvent(ctx, berth.StepEvent{Name: "paused", State: berth.StepWaiting, Detail: "paused by request; resume, promote or abort"})
	_ = workflow.Await(ctx, func() bool { return !g.state.Paused || g.action.Action != "" || g.deadlineHit })
	if reason, status, stop = g.pending(ctx); stop {
		g.r.record(ctx, "paused", berth.StepFailed, reason)
		return
	}
	g.r.record(ctx, "paused", berth.StepDone, "")
	g.state.Phase = GreyPhaseCanary
	return "", "", false
}

// pending turns an abort, a promote, a cancel or the deadline into the end
// of the steps.
func (g *grey) pending(ctx workflow.Context) (string, berth.RunStatus, bool) {
	switch {
	case ctx.Err() != nil:
		return "cancelled", berth.RunCancelled, true
	case g.deadlineHit:
		return g.deadlineReason(), berth.RunFailed, true
	case g.action.Action == GreyAbort:
		reason := "aborted by " + g.action.By
		if g.action.Reason != "" {
			reason += ": " + g.action.Reason
		}
		return reason, berth.RunCancelled, true
	case g.action.Action == GreyPromote:
		return "", "", true
	}
	return "", "", false
}

// interrupted explains a step that failed: an interrupt's reason when one
// came, else the step's own error.
func (g *grey) interrupted(ctx workflow.Context, err error) (string, berth.RunStatus) {
	if reason, status, stop := g.pending(ctx); stop && reason != "" {
		return reason, status
	} else if stop && g.action.Action == GreyPromote && isCancel(ctx, err) {
		// A promote cut a step short; what the step left is undone by
		// the promotion replacing every instance.
		return "", ""
	}
	return errorMessage(err), berth.RunFailed
}

func (g *grey) deadlineReason() string {
	return fmt.Sprintf("progress deadline of %s passed with nobody acting (at %s)", g.in.Release.ProgressDeadline, g.state.Current)
}

func (g *grey) onControl(ctx workflow.Context, c GreyControl) {
	if g.finished || g.state.Phase == GreyPhasePromoting || g.state.Phase == GreyPhaseAborting {
		return
	}
	g.touch()
	switch c.Action {
	case GreyPauseAction:
		g.state.Paused = true
	case GreyResume:
		g.state.Paused = false
	case GreyPromote, GreyAbort:
		if c.Action == GreyPromote && g.state.AwaitingApproval {
			workflow.GetLogger(ctx).Info("promote ignored while an approval is open", "by", c.By)
			return
		}
		if g.action.Action == "" {
			g.action = c
			g.interrupt()
		}
	}
}

// touch restarts the progress deadline.
func (g *grey) touch() {
	g.touchCh.SendAsync(true)
}

// watchDeadline aborts the release when nothing happens for d: no step
// finishes and nobody acts. Timed pauses and analysis windows are planned
// waits and do not count as stalled.
func (g *grey) watchDeadline(ctx workflow.Context, d time.Duration) {
	for !g.finished {
		g.state.DeadlineAt = workflow.Now(ctx).Add(d).UTC()
		tctx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, d)
		reset := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.AddReceive(g.touchCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			reset = true
		})
		sel.Select(ctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if reset || g.planned || g.finished || g.state.Phase == GreyPhasePromoting || g.state.Phase == GreyPhaseAborting {
			continue
		}
		g.deadlineHit = true
		g.interrupt()
		return
	}
}

func (g *grey) syncNames() {
	g.state.Stable = names(g.stable)
	g.state.Canaries = names(g.canaries)
}

func names(insts []berth.PlannedInstance) []string {
	out := make([]string, 0, len(insts))
	for _, pi := range insts {
		out = append(out, pi.Name)
	}
	return out
}

// apply runs a step that changes the load balancer or the canary.
func (g *grey) apply(ctx workflow.Context, s GreyStep) error {
	switch {
	case s.SetWeight != nil:
		return g.setWeight(ctx, *s.SetWeight)
	case s.SetHeaderRoute != nil:
		return g.setRoute(ctx, GreyRoute{Kind: "header", Name: s.SetHeaderRoute.Name, Value: s.SetHeaderRoute.Value})
	case s.SetCookieRoute != nil:
		return g.setRoute(ctx, GreyRoute{Kind: "cookie", Name: s.SetCookieRoute.Name, Value: s.SetCookieRoute.Value})
	case s.Scale != nil:
		return g.scale(ctx, *s.Scale)
	}
	return nil
}

// addCanaries starts n canary instances at weight 0, then applies the
// current weight and routes so they take their share.
func (g *grey) addCanaries(ctx workflow.Context, n int) error {
	g.gen++
	rin := g.rin
	rin.LB.Weight = 0
	fresh, undo, err := startBatch(ctx, g.r, rin, rin.Service, n, fmt.Sprintf("%d/canary-%d", rin.RunID, g.gen), nil)
	if err != nil {
		return err
	}
	if rin.Kind == berth.ReleaseFile {
		// A file release's canary runs the stable image with the new
		// package; it is at weight 0 while the package goes in.
		if err := g.installCanaries(ctx, fresh); err != nil {
			return undo(err)
		}
	}
	g.canaries = append(g.canaries, fresh...)
	g.syncNames()
	if err := g.applyWeights(ctx, g.state.Weight); err != nil {
		return err
	}
	return g.applyRoutes(ctx)
}

// installCanaries puts the release's package into new canary instances,
// runs the post-upload command when there is one, and waits until the load
// balancer sees them healthy again. They carry no weight yet, so unlike a
// file release's batch they need no draining.
func (g *grey) installCanaries(ctx workflow.Context, insts []berth.PlannedInstance) error {
	var d *activities.Docker
	rin := g.rin
	futures := make([]workflow.Future, 0, len(insts))
	for _, pi := range insts {
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, pi.Host.Region))
		futures = append(futures, workflow.ExecuteActivity(actx, d.InstallPackage, activities.InstallPackageInput{
			Instance: pi, Service: rin.Service, SHA256: rin.PackageSHA256, HealthTimeout: rin.HealthTimeout.Milliseconds()}))
	}
	if err := waitAll(ctx, futures, nil); err != nil {
		return err
	}
	if len(rin.Command) > 0 {
		if err := runCommand(ctx, g.r, rin, insts, rin.Command); err != nil {
			return err
		}
	}
	return waitServersUp(ctx, rin, insts)
}

// scale changes the number of canary instances; the newest go first.
func (g *grey) scale(ctx workflow.Context, n int) error {
	cur := len(g.canaries)
	switch {
	case n > cur:
		return g.addCanaries(ctx, n-cur)
	case n < cur:
		gone := slices.Clone(g.canaries[n:])
		g.canaries = g.canaries[:n]
		g.syncNames()
		if err := g.applyRoutes(ctx); err != nil {
			return err
		}
		if err := g.applyWeights(ctx, g.state.Weight); err != nil {
			return err
		}
		return g.removeCanaries(ctx, gone)
	}
	return nil
}

// removeCanaries drains canary instances and removes them with what they
// had: servers, firewall openings, CMDB items, ports.
func (g *grey) removeCanaries(ctx workflow.Context, insts []berth.PlannedInstance) error {
	if len(insts) == 0 {
		return nil
	}
	if err := drain(ctx, g.rin, insts); err != nil {
		return err
	}
	if err := unexpose(ctx, g.r, activities.UnexposeInput{ApplicationID: g.rin.ApplicationID, Subject: g.rin.subject(), Instances: insts}); err != nil {
		return err
	}
	return removeInstances(ctx, insts, true)
}

// poolPlan reads which pools hold the release's instances, and which of
// them are canaries.
func (g *grey) poolPlan(ctx workflow.Context) (activities.UnexposePlan, map[string]bool, error) {
	all := append(slices.Clone(g.stable), g.canaries...)
	plan, err := g.rin.pools().plan(ctx, all)
	canary := map[string]bool{}
	for _, c := range g.canaries {
		canary[c.Name] = true
	}
	return plan, canary, err
}

// putWeights sets every server's weight as weightOf says for its pool's
// counts, reads the weights back from the load balancer and records them.
// bestEffort goes on past a pool that failed (an abort must reach them all).
func (g *grey) putWeights(ctx workflow.Context, weightOf func(canary bool, nStable, nCanary int) int, bestEffort bool) error {
	var lbA *activities.LB
	plan, canary, err := g.poolPlan(ctx)
	if err != nil {
		return err
	}
	weights := map[string]int{}
	var firstErr error
	for _, p := range plan.Pools {
		nc := 0
		for _, n := range p.Names {
			if canary[n] {
				nc++
			}
		}
		in := activities.ServersInput{Backend: p.Backend}
		for _, n := range p.Names {
			w := weightOf(canary[n], len(p.Names)-nc, nc)
			in.Servers = append(in.Servers, lb.Server{Name: n, Weight: w})
			weights[n] = w
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
		if err := workflow.ExecuteActivity(actx, lbA.SetWeights, in).Get(ctx, nil); err != nil && firstErr == nil {
			firstErr = err
			if !bestEffort {
				return err
			}
		}
	}
	g.recordWeights(ctx, weights)
	return firstErr
}

// applyWeights gives the canary pct percent of each pool's traffic.
func (g *grey) applyWeights(ctx workflow.Context, pct int) error {
	return g.putWeights(ctx, func(canary bool, ns, nc int) int {
		ws, wc := GreyWeights(pct, ns, nc)
		if canary {
			return wc
		}
		return ws
	}, false)
}

// restoreWeights puts every stable server back at the release's normal
// weight and the canaries at 0: all traffic to stable at once.
func (g *grey) restoreWeights(ctx workflow.Context) error {
	return g.putWeights(ctx, func(canary bool, _, _ int) int {
		if canary {
			return 0
		}
		return g.rin.LB.Weight
	}, true)
}

func (g *grey) recordWeights(ctx workflow.Context, weights map[string]int) {
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, g.r.st.RecordWeights, activities.WeightsInput{Weights: weights}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("weights not recorded", "error", err)
	}
}

func (g *grey) setWeight(ctx workflow.Context, pct int) error {
	if err := g.applyWeights(ctx, pct); err != nil {
		return err
	}
	g.state.Weight = pct
	return nil
}

func (g *grey) setRoute(ctx workflow.Context, rt GreyRoute) error {
	prev := g.routes
	g.routes = slices.DeleteFunc(slices.Clone(g.routes), func(o GreyRoute) bool { return o.Kind == rt.Kind && o.Name == rt.Name })
	g.routes = append(g.routes, rt)
	if err := g.applyRoutes(ctx); err != nil {
		g.routes = prev
		return err
	}
	return nil
}

// applyRoutes sets each pool's routes to its canary servers (none when the
// pool has no canary or there are no routes), and records them.
func (g *grey) applyRoutes(ctx workflow.Context) error {
	var lbA *activities.LB
	plan, canary, err := g.poolPlan(ctx)
	if err != nil {
		return err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	for _, p := range plan.Pools {
		var servers []string
		for _, n := range p.Names {
			if canary[n] {
				servers = append(servers, n)
			}
		}
		in := activities.RoutesInput{Backend: p.Backend}
		if len(servers) > 0 {
			for _, rt := range g.routes {
				route := lb.Route{Value: rt.Value, Servers: servers}
				if rt.Kind == "header" {
					route.Header = rt.Name
				} else {
					route.Cookie = rt.Name
				}
				in.Routes = append(in.Routes, route)
			}
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
		if err := workflow.ExecuteActivity(actx, lbA.SetRoutes, in).Get(ctx, nil); err != nil {
			return err
		}
		if err := workflow.ExecuteLocalActivity(lctx, g.r.st.RecordRoutes, in).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("routes not recorded", "backend", p.Backend, "error", err)
		}
	}
	g.state.Routes = slices.Clone(g.routes)
	return nil
}

// pauseStep waits for d, or with d 0 until someone resumes, promotes or
// aborts; a promote or abort ends it early either way.
func (g *grey) pauseStep(sctx, ctx workflow.Context, name string, d time.Duration) (string, berth.RunStatus) {
	r := g.r
	g.state.Phase = GreyPhasePaused
	defer func() {
		if g.state.Phase == GreyPhasePaused {
			g.state.Phase = GreyPhaseCanary
		}
	}()
	if d > 0 {
		r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting, Detail: "timed pause of " + d.String()})
		g.planned = true
		err := workflow.Sleep(sctx, d)
		g.planned = false
		g.touch()
		if err != nil {
			return g.endWait(ctx, name, err)
		}
		r.record(ctx, name, berth.StepDone, "")
		return "", ""
	}
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting, Detail: "paused until resumed or promoted"})
	g.state.Paused = true
	err := workflow.Await(sctx, func() bool { return !g.state.Paused })
	g.state.Paused = false
	if err != nil {
		return g.endWait(ctx, name, err)
	}
	r.record(ctx, name, berth.StepDone, "resumed")
	return "", ""
}

// endWait closes a wait an interrupt ended.
func (g *grey) endWait(ctx workflow.Context, name string, err error) (string, berth.RunStatus) {
	reason, status := g.interrupted(ctx, err)
	if reason == "" {
		g.r.record(ctx, name, berth.StepDone, "promoted by "+g.action.By)
		return "", ""
	}
	g.r.record(ctx, name, berth.StepFailed, reason)
	return reason, status
}

// approvalStep waits for the step's approval. A rejection is a decision to
// abort: traffic goes back to stable and the canary is removed.
func (g *grey) approvalStep(sctx, ctx workflow.Context, name string, i int, a *GreyApproval) (string, berth.RunStatus) {
	roles := a.Roles
	if len(roles) == 0 {
		roles = []berth.Role{berth.RoleApprover}
	}
	quorum := max(a.Quorum, 1)
	onTimeout := a.OnTimeout
	if onTimeout == "" {
		onTimeout = berth.OnTimeoutFail
	}
	g.state.Phase = GreyPhasePaused
	defer func() {
		if g.state.Phase == GreyPhasePaused {
			g.state.Phase = GreyPhaseCanary
		}
	}()
	rin := g.in.Release
	req := berth.ApprovalRequest{Step: name, Roles: roles, Quorum: quorum, SeparateDuties: g.in.SeparateDuties,
		StartedBy: g.in.StartedBy, TenantID: g.in.TenantID, EnvironmentID: rin.EnvironmentID,
		Timeout: time.Duration(a.Timeout), OnTimeout: onTimeout, EscalateTo: a.EscalateTo,
		Summary: fmt.Sprintf("grey release of %s/%s %s to %s: canary at %d%% (%d canary, %d stable); continue with step %d/%d?",
			rin.subject(), rin.Service.Name, rin.LastGoodImage, rin.Service.Image, g.state.Weight, len(g.canaries), len(g.stable),
			i+2, len(g.in.Steps))}
	o, err := g.awaitApproval(sctx, req)
	return g.approvalEnd(ctx, o, err)
}

// awaitApproval waits for an approval as a planned wait (the approval has
// its own timeout and policy, so the progress deadline does not run), and
// with promote held back: a promote must not skip what people are asked
// to sign off. An abort still ends the wait at once.
func (g *grey) awaitApproval(ctx workflow.Context, req berth.ApprovalRequest) (berth.ApprovalOutcome, error) {
	g.planned, g.state.AwaitingApproval = true, true
	defer func() {
		g.planned, g.state.AwaitingApproval = false, false
		g.touch()
	}()
	return awaitApproval(ctx, g.r, req)
}

func (g *grey) approvalEnd(ctx workflow.Context, o berth.ApprovalOutcome, err error) (string, berth.RunStatus) {
	switch {
	case err != nil:
		if reason, status, stop := g.pending(ctx); stop {
			return reason, status
		}
		if isType(err, berth.ErrApprovalAborted) {
			return errorMessage(err), berth.RunCancelled
		}
		return errorMessage(err), berth.RunFailed
	case o.State == berth.ApprovalRejected:
		return o.Rejection(), berth.RunFailed
	}
	return "", ""
}

// analysisStep reads the load balancer's figures at the start and the end
// of the window and judges the canary against its thresholds.
func (g *grey) analysisStep(sctx, ctx workflow.Context, name string, i int, a GreyAnalysis) (string, berth.RunStatus) {
	r := g.r
	r.status.Step = name
	r.record(ctx, name, berth.StepRunning, "")
	before, err := g.readStats(sctx)
	if err == nil {
		g.planned = true
		err = workflow.Sleep(sctx, time.Duration(a.Window))
		g.planned = false
		g.touch()
	}
	var after []lb.ServerStats
	if err == nil {
		after, err = g.readStats(sctx)
	}
	if err != nil {
		return g.endWait(ctx, name, err)
	}
	res := Judge(a, before, after, g.state.Canaries)
	res.Step = i
	g.state.Analyses = append(g.state.Analyses, res)
	detail := fmt.Sprintf("%s: canary %d requests, %d 5xx (%.1f%%), avg %d ms; stable %d requests, %d 5xx (%.1f%%), avg %d ms",
		res.Verdict, res.CanaryRequests, res.Canary5xx, 100*res.CanaryErrorRate, res.CanaryAvgMs,
		res.StableRequests, res.Stable5xx, 100*res.StableErrorRate, res.StableAvgMs)
	switch res.Verdict {
	case "fail":
		r.record(ctx, name, berth.StepFailed, detail+" — "+res.Reason)
		return "analysis failed: " + res.Reason, berth.RunFailed
	case "inconclusive":
		r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting, Detail: detail + " — " + res.Reason + "; paused for a person"})
		g.state.Paused = true
		g.state.Phase = GreyPhasePaused
		werr := workflow.Await(sctx, func() bool { return !g.state.Paused })
		g.state.Paused = false
		g.state.Phase = GreyPhaseCanary
		if werr != nil {
			return g.endWait(ctx, name, werr)
		}
		r.record(ctx, name, berth.StepDone, "inconclusive, resumed by a person")
		return "", ""
	}
	r.status.Done = append(r.status.Done, name)
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepDone, Detail: detail})
	return "", ""
}

// readStats reads every pool that holds the release's instances.
func (g *grey) readStats(ctx workflow.Context) ([]lb.ServerStats, error) {
	var lbA *activities.LB
	plan, _, err := g.poolPlan(ctx)
	if err != nil {
		return nil, err
	}
	var out []lb.ServerStats
	for _, p := range plan.Pools {
		var stats []lb.ServerStats
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
		if err := workflow.ExecuteActivity(actx, lbA.PoolStats, p.Backend).Get(ctx, &stats); err != nil {
			return nil, err
		}
		out = append(out, stats...)
	}
	return out, nil
}

// Judge compares canary and stable servers over a window from two readings
// of the load balancer's counters. A counter that went down was reset by a
// reload, and then counts from zero.
func Judge(a GreyAnalysis, before, after []lb.ServerStats, canaries []string) GreyAnalysisResult {
	isCanary := map[string]bool{}
	for _, c := range canaries {
		isCanary[c] = true
	}
	delta := func(b, e int64) int64 {
		if e < b {
			return e
		}
		return e - b
	}
	var res GreyAnalysisResult
	var canaryMs, stableMs int64
	// Slices, not maps, so the sums are made in one order on every replay.
	prev := make(map[string]lb.ServerStats, len(before))
	for _, b := range before {
		prev[b.Name] = b
	}
	for _, e := range after {
		name, b := e.Name, prev[e.Name]
		req, e5 := delta(b.Requests, e.Requests), delta(b.Responses5xx, e.Responses5xx)
		if isCanary[name] {
			res.CanaryRequests += req
			res.Canary5xx += e5
			canaryMs += req * e.AvgResponseMs
		} else {
			res.StableRequests += req
			res.Stable5xx += e5
			stableMs += req * e.AvgResponseMs
		}
	}
	if res.CanaryRequests > 0 {
		res.CanaryErrorRate = float64(res.Canary5xx) / float64(res.CanaryRequests)
		res.CanaryAvgMs = canaryMs / res.CanaryRequests
	}
	if res.StableRequests > 0 {
		res.StableErrorRate = float64(res.Stable5xx) / float64(res.StableRequests)
		res.StableAvgMs = stableMs / res.StableRequests
	}
	minReq := max(a.MinRequests, 1)
	switch {
	case res.CanaryRequests < minReq:
		res.Verdict = "inconclusive"
		res.Reason = fmt.Sprintf("the canary answered %d requests, fewer than the %d needed for a verdict", res.CanaryRequests, minReq)
	case res.CanaryErrorRate > a.MaxErrorRate:
		res.Verdict = "fail"
		res.Reason = fmt.Sprintf("canary 5xx share %.1f%% is above the limit of %.1f%%", 100*res.CanaryErrorRate, 100*a.MaxErrorRate)
	case a.MaxErrorRateIncrease > 0 && res.CanaryErrorRate-res.StableErrorRate > a.MaxErrorRateIncrease:
		res.Verdict = "fail"
		res.Reason = fmt.Sprintf("canary 5xx share %.1f%% exceeds stable's %.1f%% by more than %.1f points",
			100*res.CanaryErrorRate, 100*res.StableErrorRate, 100*a.MaxErrorRateIncrease)
	case a.MaxResponseMs > 0 && res.CanaryAvgMs > a.MaxResponseMs:
		res.Verdict = "fail"
		res.Reason = fmt.Sprintf("canary average response time %d ms is above the limit of %d ms", res.CanaryAvgMs, a.MaxResponseMs)
	default:
		res.Verdict = "pass"
		res.Reason = "within thresholds"
	}
	return res
}

// abort takes all traffic back to stable in one step, then removes the
// routes and the canary with everything it had. Nothing of the canary
// remains; the stable instances were never touched.
func (g *grey) abort(ctx workflow.Context, reason string, status berth.RunStatus) (*GreyReleaseResult, error) {
	r := g.r
	g.state.Phase = GreyPhaseAborting
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	err := r.step(dctx, "abort: all traffic to stable", func() error {
		if err := g.restoreWeights(dctx); err != nil {
			return err
		}
		g.state.Weight = 0
		g.routes = nil
		if err := g.applyRoutes(dctx); err != nil {
			return err
		}
		gone := g.canaries
		g.canaries = nil
		if err := g.removeCanaries(dctx, gone); err != nil {
			g.canaries = gone
			return err
		}
		g.syncNames()
		return nil
	})
	if err != nil {
		reason += "; removing the canary failed: " + errorMessage(err)
	}
	return g.end(dctx, berth.ReleaseAborted, reason, status)
}

// promote replaces the stable instances with the new image in batches and
// then removes the canary; a failing batch rolls the replaced ones back to
// the last-good image and aborts.
func (g *grey) promote(ctx workflow.Context) (*GreyReleaseResult, error) {
	r := g.r
	g.state.Phase = GreyPhasePromoting
	g.state.Current = "promote"
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	by := "the steps' end"
	if g.action.Action == GreyPromote {
		by = g.action.By
	}
	err := r.step(dctx, "promote: routes off, weights even ("+by+")", func() error {
		g.routes = nil
		if err := g.applyRoutes(dctx); err != nil {
			return err
		}
		g.state.Weight = 100 * len(g.canaries) / max(len(g.canaries)+len(g.stable), 1)
		return g.evenWeights(dctx)
	})
	batch := max(g.rin.BatchSize, 1)
	if err == nil && g.rin.Kind == berth.ReleaseFile {
		return g.promoteFile(ctx, dctx, by, batch)
	}
	total := (len(g.stable) + batch - 1) / batch
	var released []berth.PlannedInstance
	old := slices.Clone(g.stable)
	for b := 0; err == nil && b*batch < len(old); b++ {
		group := old[b*batch : min((b+1)*batch, len(old))]
		var fresh []berth.PlannedInstance
		err = r.step(dctx, fmt.Sprintf("promote: batch %d/%d", b+1, total), func() error {
			var err error
			fresh, err = replaceBatch(dctx, r, g.rin, g.rin.Service, group, fmt.Sprintf("%d/promote-%d", g.rin.RunID, b+1))
			return err
		})
		if fresh != nil {
			released = append(released, fresh...)
			g.stable = append(g.stable[len(group):], fresh...)
			g.syncNames()
		}
	}
	if err == nil {
		return g.promoted(dctx, by)
	}
	reason := "promotion failed: " + errorMessage(err)
	if len(released) > 0 && g.rin.LastGoodImage != "" {
		good := g.rin.Service
		good.Image = g.rin.LastGoodImage
		rbErr := r.step(dctx, "rollback", func() error {
			back, err := replaceBatch(dctx, r, g.rin, good, released, fmt.Sprintf("%d/rollback", g.rin.RunID))
			if back != nil {
				g.stable = append(slices.DeleteFunc(g.stable, func(pi berth.PlannedInstance) bool {
					return slices.ContainsFunc(released, func(x berth.PlannedInstance) bool { return x.Name == pi.Name })
				}), back...)
			}
			return err
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			reason += "; rolled back to " + g.rin.LastGoodImage
		}
	}
	return g.abort(ctx, reason, berth.RunFailed)
}

// promoteFile installs the package into the stable instances in place,
// batch by batch (drain, install, health, back in rotation), then removes
// the canary. A failing batch puts the last-good package back on the
// instances touched so far and aborts.
func (g *grey) promoteFile(ctx, dctx workflow.Context, by string, batch int) (*GreyReleaseResult, error) {
	r, rin := g.r, g.rin
	total := (len(g.stable) + batch - 1) / batch
	var touched []berth.PlannedInstance
	var err error
	for b := 0; err == nil && b*batch < len(g.stable); b++ {
		group := g.stable[b*batch : min((b+1)*batch, len(g.stable))]
		touched = append(touched, group...)
		err = r.step(dctx, fmt.Sprintf("promote: batch %d/%d", b+1, total), func() error {
			return installBatch(dctx, r, rin, group, rin.PackageSHA256, rin.Command)
		})
	}
	if err == nil {
		return g.promoted(dctx, by)
	}
	reason := "promotion failed: " + errorMessage(err)
	if rin.LastGoodPackage != "" {
		rbErr := r.step(dctx, "rollback", func() error {
			return installInBatches(dctx, r, rin, touched, rin.LastGoodPackage, batch)
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			reason += "; rolled back to the last-good package"
		}
	} else {
		reason += "; no earlier package to restore: instances that failed stay out of rotation"
	}
	return g.abort(ctx, reason, berth.RunFailed)
}

// promoted removes the canary once every stable instance runs the new
// version, and records the release as the service's last-good one.
func (g *grey) promoted(dctx workflow.Context, by string) (*GreyReleaseResult, error) {
	err := g.r.step(dctx, "promote: remove canary", func() error {
		gone := g.canaries
		g.canaries = nil
		g.syncNames()
		return g.removeCanaries(dctx, gone)
	})
	if err != nil {
		// The service runs the new version everywhere; a canary left
		// behind is reported, not rolled back.
		return g.end(dctx, berth.ReleaseSucceeded, "promoted; removing the canary failed: "+errorMessage(err), berth.RunFailed)
	}
	g.state.Weight = 100
	return g.end(dctx, berth.ReleaseSucceeded, "promoted by "+by, berth.RunSucceeded)
}

// evenWeights gives every instance, canary or stable, the normal weight.
func (g *grey) evenWeights(ctx workflow.Context) error {
	return g.putWeights(ctx, func(bool, int, int) int { return g.rin.LB.Weight }, false)
}

// end records the release's and the run's outcome.
func (g *grey) end(ctx workflow.Context, outcome berth.ReleaseOutcome, reason string, status berth.RunStatus) (*GreyReleaseResult, error) {
	g.finished = true
	g.state.Phase = GreyPhaseDone
	g.state.Outcome, g.state.Reason = outcome, reason
	g.state.Current = ""
	g.r.finishRelease(ctx, g.rin, outcome, reason)
	res := &GreyReleaseResult{Outcome: outcome, Instances: names(append(slices.Clone(g.stable), g.canaries...))}
	if status == berth.RunSucceeded {
		g.r.status.Step = "done"
		g.r.finish(ctx, activities.FinishInput{Status: status})
		return res, nil
	}
	g.r.status.Error = reason
	g.r.finish(ctx, activities.FinishInput{Status: status, Error: reason})
	return res, temporal.NewNonRetryableApplicationError(reason, "GreyRelease"+strings.ToUpper(string(outcome[:1]))+string(outcome[1:]), nil)
}
