package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

// AnalysisVerdict is what an analysis concluded of the canary. It is text,
// so the state query and the UI read the same words as before.
type AnalysisVerdict string

// Analysis verdicts.
const (
	// AnalysisPass: within every threshold; the steps go on.
	AnalysisPass AnalysisVerdict = "pass"
	// AnalysisFail: a threshold was crossed; the release aborts.
	AnalysisFail AnalysisVerdict = "fail"
	// AnalysisInconclusive: too few requests for a verdict; the release
	// pauses for a person.
	AnalysisInconclusive AnalysisVerdict = "inconclusive"
)

// GreyAnalysisResult is one analysis, with its figures.
type GreyAnalysisResult struct {
	Step            int             `json:"step"`
	Verdict         AnalysisVerdict `json:"verdict"`
	Reason          string          `json:"reason"`
	CanaryRequests  int64           `json:"canaryRequests"`
	Canary5xx       int64           `json:"canary5xx"`
	CanaryErrorRate float64         `json:"canaryErrorRate"`
	CanaryAvgMs     int64           `json:"canaryAvgMs"`
	StableRequests  int64           `json:"stableRequests"`
	Stable5xx       int64           `json:"stable5xx"`
	StableErrorRate float64         `json:"stableErrorRate"`
	StableAvgMs     int64           `json:"stableAvgMs"`
}

// analysisStep reads the load balancer's figures at the start and the end
// of the window and judges the canary against its thresholds.
func (g *grey) analysisStep(sctx, ctx workflow.Context, name string, i int, a berth.GreyAnalysis) *greyStop {
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
	case AnalysisFail:
		r.record(ctx, name, berth.StepFailed, detail+" — "+res.Reason)
		return abortFor("analysis failed: "+res.Reason, berth.RunFailed)
	case AnalysisInconclusive:
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
		return nil
	}
	r.status.Done = append(r.status.Done, name)
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepDone, Detail: detail})
	return nil
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
		if err := onRegion(actx, lbA.PoolStats, p.Backend).Get(ctx, &stats); err != nil {
			return nil, err
		}
		out = append(out, stats...)
	}
	return out, nil
}

// Judge compares canary and stable servers over a window from two readings
// of the load balancer's counters. A counter that went down was reset by a
// reload, and then counts from zero.
func Judge(a berth.GreyAnalysis, before, after []lb.ServerStats, canaries []string) GreyAnalysisResult {
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
		res.Verdict = AnalysisInconclusive
		res.Reason = fmt.Sprintf("the canary answered %d requests, fewer than the %d needed for a verdict", res.CanaryRequests, minReq)
	case res.CanaryErrorRate > a.MaxErrorRate:
		res.Verdict = AnalysisFail
		res.Reason = fmt.Sprintf("canary 5xx share %.1f%% is above the limit of %.1f%%", 100*res.CanaryErrorRate, 100*a.MaxErrorRate)
	case a.MaxErrorRateIncrease > 0 && res.CanaryErrorRate-res.StableErrorRate > a.MaxErrorRateIncrease:
		res.Verdict = AnalysisFail
		res.Reason = fmt.Sprintf("canary 5xx share %.1f%% exceeds stable's %.1f%% by more than %.1f points",
			100*res.CanaryErrorRate, 100*res.StableErrorRate, 100*a.MaxErrorRateIncrease)
	case a.MaxResponseMs > 0 && res.CanaryAvgMs > a.MaxResponseMs:
		res.Verdict = AnalysisFail
		res.Reason = fmt.Sprintf("canary average response time %d ms is above the limit of %d ms", res.CanaryAvgMs, a.MaxResponseMs)
	default:
		res.Verdict = AnalysisPass
		res.Reason = "within thresholds"
	}
	return res
}
