package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// greyStop ends the canary phase early; nil goes on with the steps.
type greyStop struct {
	// promote ends the steps for a promotion someone asked for; without
	// it the release aborts for reason and the run ends as status.
	promote bool
	reason  string
	status  berth.RunStatus
}

// abortFor is the stop that aborts the release.
func abortFor(reason string, status berth.RunStatus) *greyStop {
	return &greyStop{reason: reason, status: status}
}

// aborting keeps an abort and drops a promote. The promote is not lost:
// it stays in g.action, and canaryPhase ends in the promotion when no
// abort comes first.
func (s *greyStop) aborting() *greyStop {
	if s == nil || s.promote {
		return nil
	}
	return s
}

// canaryPhase starts the canary and walks the steps. It returns the abort
// that ends the phase, or nil when the release goes on to its promotion.
func (g *grey) canaryPhase(ctx workflow.Context) *greyStop {
	r, in := g.r, g.in
	if in.Release.Approval != nil {
		o, err := g.awaitApproval(g.stepCtx(ctx), *in.Release.Approval)
		if stop := g.approvalEnd(ctx, o, err); stop != nil {
			return stop
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
		if stop := g.between(ctx); stop != nil {
			return stop.aborting()
		}
		g.state.Step = i
		name := fmt.Sprintf("step %d/%d: %s", i+1, len(in.Steps), s.Describe())
		g.state.Current = s.Describe()
		sctx := g.stepCtx(ctx)
		// A step returns only an abort: a promote that cut it short is
		// taken up by between, once the step's end is recorded.
		var stop *greyStop
		switch {
		case s.Pause != nil && s.Pause.Approval != nil:
			stop = g.approvalStep(sctx, ctx, name, i, s.Pause.Approval)
		case s.Pause != nil:
			stop = g.pauseStep(sctx, ctx, name, time.Duration(s.Pause.Duration))
		case s.Analysis != nil:
			stop = g.analysisStep(sctx, ctx, name, i, *s.Analysis)
		default:
			if err := r.step(sctx, name, func() error { return g.apply(sctx, s) }); err != nil {
				stop = g.interrupted(ctx, err)
			}
		}
		if stop != nil {
			return stop
		}
		g.touch()
	}
	g.state.Step = len(in.Steps)
	return g.between(ctx).aborting()
}

func (g *grey) deadlineReason() string {
	return fmt.Sprintf("progress deadline of %s passed with nobody acting (at %s)", g.in.Release.ProgressDeadline, g.state.Current)
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

// addCanaries starts n canary instances at weight 0, then applies the
// current weight and routes so they take their share.
func (g *grey) addCanaries(ctx workflow.Context, n int) error {
	g.gen++
	rin := g.rin
	rin.LB.Weight = 0
	fresh, undo, err := startBatch(ctx, g.r, rin, rin.Service, n, fmt.Sprintf("%d/canary-%d", rin.RunID, g.gen), false, nil, nil)
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
	if err := installPackage(ctx, g.r, g.rin, insts, g.rin.PackageSHA256, g.rin.Command); err != nil {
		return err
	}
	return waitServersUp(ctx, g.rin, insts)
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

// abort takes all traffic back to stable in one step, then removes the
// routes and the canary with everything it had. Nothing of the canary
// remains; the stable instances were never touched.
func (g *grey) abort(ctx workflow.Context, stop *greyStop) (*GreyReleaseResult, error) {
	r := g.r
	reason := stop.reason
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
	return g.end(dctx, berth.ReleaseAborted, reason, stop.status)
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
