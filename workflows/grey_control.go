package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
)

// Actions of a GreyControl.
const (
	GreyPromote     = "promote"
	GreyAbort       = "abort"
	GreyPauseAction = "pause"
	GreyResume      = "resume"
)

// GreyControl is what a person asks of a running grey release.
type GreyControl struct {
	Action string `json:"action"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
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
func (g *grey) between(ctx workflow.Context) *greyStop {
	if stop := g.pending(ctx); stop != nil {
		return stop
	}
	if !g.state.Paused {
		return nil
	}
	g.state.Phase = GreyPhasePaused
	g.r.recordEvent(ctx, berth.StepEvent{Name: "paused", State: berth.StepWaiting, Detail: "paused by request; resume, promote or abort"})
	_ = workflow.Await(ctx, func() bool { return !g.state.Paused || g.action.Action != "" || g.deadlineHit })
	if stop := g.pending(ctx); stop != nil {
		g.r.record(ctx, "paused", berth.StepFailed, stop.reason)
		return stop
	}
	g.r.record(ctx, "paused", berth.StepDone, "")
	g.state.Phase = GreyPhaseCanary
	return nil
}

// pending turns an abort, a promote, a cancel or the deadline into the end
// of the steps.
func (g *grey) pending(ctx workflow.Context) *greyStop {
	switch {
	case ctx.Err() != nil:
		return abortFor("cancelled", berth.RunCancelled)
	case g.deadlineHit:
		return abortFor(g.deadlineReason(), berth.RunFailed)
	case g.action.Action == GreyAbort:
		reason := "aborted by " + g.action.By
		if g.action.Reason != "" {
			reason += ": " + g.action.Reason
		}
		return abortFor(reason, berth.RunCancelled)
	case g.action.Action == GreyPromote:
		return &greyStop{promote: true}
	}
	return nil
}

// interrupted explains a step that failed: an interrupt's abort when one
// came, else the step's own error. A promote that cut the step short is
// nil here, like any step's: it is taken up between the steps.
func (g *grey) interrupted(ctx workflow.Context, err error) *greyStop {
	stop := g.pending(ctx)
	switch {
	case stop != nil && !stop.promote:
		return stop
	case stop != nil && isCancel(ctx, err):
		// What the step left is undone by the promotion replacing every
		// instance.
		return nil
	}
	return abortFor(errorMessage(err), berth.RunFailed)
}

// listen takes controls as a signal on every run and, on runs started
// since greyControlUpdateChange, as an update whose validator can say no.
func (g *grey) listen(ctx workflow.Context) error {
	// A run started before the update existed replays without the version
	// marker and gets no handler, so it goes on exactly as recorded: an
	// update to it fails as unknown and the server falls back to the
	// signal. Whether a run takes updates is a fact of its own history,
	// not of which worker build happens to pick it up.
	if workflow.GetVersion(ctx, greyControlUpdateChange, workflow.DefaultVersion, 1) >= 1 {
		err := workflow.SetUpdateHandlerWithOptions(ctx, GreyControlUpdate, g.onUpdate,
			workflow.UpdateHandlerOptions{Validator: g.validateControl})
		if err != nil {
			return err
		}
	}
	ctrl := workflow.GetSignalChannel(ctx, GreyControlSignal)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var c GreyControl
			ctrl.Receive(gctx, &c)
			g.onSignal(gctx, c)
		}
	})
	return nil
}

// refusal says why the release cannot take c now, or "" when it can. It
// is the one copy of the rules: the update's validator answers with it,
// and the signal drops what it refuses.
func (g *grey) refusal(c GreyControl) string {
	of := "grey release of " + g.in.Release.Service.Name
	switch c.Action {
	case GreyPromote, GreyAbort, GreyPauseAction, GreyResume:
	default:
		return fmt.Sprintf("%q is not a grey release action: they are promote, abort, pause and resume", c.Action)
	}
	switch {
	case g.finished || g.state.Phase == GreyPhaseDone:
		return fmt.Sprintf("%s has ended (%s): it takes no %s", of, g.state.Outcome, c.Action)
	case g.state.Phase == GreyPhasePromoting || g.state.Phase == GreyPhaseAborting:
		return fmt.Sprintf("%s is %s: it no longer takes %s", of, g.state.Phase, c.Action)
	case g.action.Action != "":
		// The first decision wins; a second one would be silently lost.
		return fmt.Sprintf("%s was already asked to %s by %s: it no longer takes %s", of, g.action.Action, g.action.By, c.Action)
	case g.deadlineHit:
		return fmt.Sprintf("%s passed its progress deadline and is aborting: it no longer takes %s", of, c.Action)
	}
	switch c.Action {
	case GreyPromote:
		if g.state.AwaitingApproval {
			// People were asked to sign off on what follows.
			return of + " waits for an approval: it is decided in the inbox, and promote cannot skip it (abort can)"
		}
	case GreyPauseAction:
		if g.state.Paused {
			return of + " is already paused"
		}
	case GreyResume:
		if !g.state.Paused && g.state.AwaitingApproval {
			return of + " is not paused: it waits for an approval, which is decided in the inbox"
		}
		if !g.state.Paused {
			return of + " is not paused"
		}
	}
	return ""
}

// validateControl is the update's validator. It runs before the update is
// accepted, so a refused control leaves no trace in the history.
func (g *grey) validateControl(_ workflow.Context, c GreyControl) error {
	if msg := g.refusal(c); msg != "" {
		return temporal.NewApplicationError(msg, GreyControlRefused)
	}
	return nil
}

// onUpdate takes a control the validator accepted.
func (g *grey) onUpdate(_ workflow.Context, c GreyControl) error {
	g.touch()
	g.take(c)
	return nil
}

// onSignal takes a control sent as a signal, which cannot be refused to
// its sender: what refusal rejects is logged and dropped. What it drops
// changed nothing a run went on to do before the update existed, and it
// restarts the deadline just as it did then, so old runs replay unchanged.
func (g *grey) onSignal(ctx workflow.Context, c GreyControl) {
	if g.finished || g.state.Phase == GreyPhasePromoting || g.state.Phase == GreyPhaseAborting {
		// Unlike the refusals below, these never restarted the deadline.
		return
	}
	g.touch()
	if msg := g.refusal(c); msg != "" {
		workflow.GetLogger(ctx).Info("grey control refused", "action", c.Action, "by", c.By, "why", msg)
		return
	}
	g.take(c)
}

// take applies an accepted control. An update's validator does not run
// again on replay, so take keeps the first decision by itself.
func (g *grey) take(c GreyControl) {
	switch c.Action {
	case GreyPauseAction:
		g.state.Paused = true
	case GreyResume:
		g.state.Paused = false
	case GreyPromote, GreyAbort:
		if g.action.Action == "" {
			g.action = c
			g.interrupt()
		}
	}
}

// pauseStep waits for d, or with d 0 until someone resumes, promotes or
// aborts; a promote or abort ends it early either way.
func (g *grey) pauseStep(sctx, ctx workflow.Context, name string, d time.Duration) *greyStop {
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
		return nil
	}
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting, Detail: "paused until resumed or promoted"})
	g.state.Paused = true
	err := workflow.Await(sctx, func() bool { return !g.state.Paused })
	g.state.Paused = false
	if err != nil {
		return g.endWait(ctx, name, err)
	}
	r.record(ctx, name, berth.StepDone, "resumed")
	return nil
}

// endWait closes a wait an interrupt ended.
func (g *grey) endWait(ctx workflow.Context, name string, err error) *greyStop {
	stop := g.interrupted(ctx, err)
	if stop == nil {
		g.r.record(ctx, name, berth.StepDone, "promoted by "+g.action.By)
		return nil
	}
	g.r.record(ctx, name, berth.StepFailed, stop.reason)
	return stop
}

// approvalStep waits for the step's approval. A rejection is a decision to
// abort: traffic goes back to stable and the canary is removed.
func (g *grey) approvalStep(sctx, ctx workflow.Context, name string, i int, a *berth.GreyApproval) *greyStop {
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

// approvalEnd turns an approval's outcome into an abort, or nil to go on.
func (g *grey) approvalEnd(ctx workflow.Context, o berth.ApprovalOutcome, err error) *greyStop {
	switch {
	case err != nil:
		if stop := g.pending(ctx); stop != nil {
			return stop.aborting()
		}
		if isType(err, berth.ErrApprovalAborted) {
			return abortFor(errorMessage(err), berth.RunCancelled)
		}
		return abortFor(errorMessage(err), berth.RunFailed)
	case o.State == berth.ApprovalRejected:
		return abortFor(o.Rejection(), berth.RunFailed)
	}
	return nil
}
