package workflows

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

func TestGreyWeightsGiveTheShare(t *testing.T) {
	for _, tc := range []struct{ pct, ns, nc int }{{20, 4, 1}, {50, 4, 1}, {5, 4, 1}, {80, 4, 1}, {33, 3, 2}, {1, 20, 1}, {99, 1, 20}} {
		s, c := GreyWeights(tc.pct, tc.ns, tc.nc)
		require.LessOrEqual(t, max(s, c), 256)
		require.Positive(t, s)
		require.Positive(t, c)
		share := 100 * float64(c*tc.nc) / float64(c*tc.nc+s*tc.ns)
		require.InDelta(t, tc.pct, share, 0.8, "pct %d with %d stable and %d canary: weights %d/%d", tc.pct, tc.ns, tc.nc, s, c)
	}
	s, c := GreyWeights(0, 4, 1)
	require.Equal(t, 0, c)
	require.Positive(t, s)
	s, c = GreyWeights(100, 4, 1)
	require.Equal(t, 0, s)
	require.Positive(t, c)
}

func TestJudge(t *testing.T) {
	a := berth.GreyAnalysis{Window: berth.Duration(time.Minute), MaxErrorRate: 0.05, MinRequests: 10}
	before := []lb.ServerStats{{Name: "c", Requests: 100, Responses5xx: 1}, {Name: "s", Requests: 1000}}
	at := func(c lb.ServerStats) []lb.ServerStats {
		c.Name = "c"
		return []lb.ServerStats{c, {Name: "s", Requests: 1400, Responses5xx: 2}}
	}
	res := Judge(a, before, at(lb.ServerStats{Requests: 200, Responses5xx: 3, AvgResponseMs: 4}), []string{"c"})
	require.Equal(t, AnalysisPass, res.Verdict, res.Reason)
	require.EqualValues(t, 100, res.CanaryRequests)
	require.EqualValues(t, 2, res.Canary5xx)
	require.EqualValues(t, 400, res.StableRequests)

	res = Judge(a, before, at(lb.ServerStats{Requests: 200, Responses5xx: 31}), []string{"c"})
	require.Equal(t, AnalysisFail, res.Verdict)
	require.Contains(t, res.Reason, "30.0%")

	// A reload reset the counters: the later reading counts from zero.
	res = Judge(a, before, at(lb.ServerStats{Requests: 50, Responses5xx: 0}), []string{"c"})
	require.Equal(t, AnalysisPass, res.Verdict)
	require.EqualValues(t, 50, res.CanaryRequests)

	res = Judge(a, before, at(lb.ServerStats{Requests: 105}), []string{"c"})
	require.Equal(t, AnalysisInconclusive, res.Verdict)

	a.MaxErrorRate, a.MaxErrorRateIncrease = 1, 0.01
	res = Judge(a, before, at(lb.ServerStats{Requests: 200, Responses5xx: 5}), []string{"c"})
	require.Equal(t, AnalysisFail, res.Verdict)
	require.Contains(t, res.Reason, "exceeds stable")

	// Response time: the canary's average, weighted by its requests.
	a = berth.GreyAnalysis{Window: berth.Duration(time.Minute), MaxErrorRate: 1, MaxResponseMs: 50}
	res = Judge(a, before, at(lb.ServerStats{Requests: 200, AvgResponseMs: 80}), []string{"c"})
	require.Equal(t, AnalysisFail, res.Verdict)
	require.EqualValues(t, 80, res.CanaryAvgMs)
	require.Contains(t, res.Reason, "average response time 80 ms is above the limit of 50 ms")
	res = Judge(a, before, at(lb.ServerStats{Requests: 200, AvgResponseMs: 20}), []string{"c"})
	require.Equal(t, AnalysisPass, res.Verdict)
}

func TestValidateGreySteps(t *testing.T) {
	good := `[{"setWeight":20},{"setHeaderRoute":{"name":"X-Canary","value":"always"}},{"pause":{"duration":"30s"}},
		{"pause":{"approval":{"roles":["approver"],"timeout":"1h"}}},{"analysis":{"window":"20s","maxErrorRate":0.05}},
		{"scale":2},{"setCookieRoute":{"name":"canary","value":"yes"}},{"pause":{}}]`
	var steps []berth.GreyStep
	require.NoError(t, json.Unmarshal([]byte(good), &steps))
	require.NoError(t, berth.ValidateGreySteps(steps))
	require.Equal(t, "pause 30s", steps[2].Describe())

	for doc, want := range map[string]string{
		`[{"setWeight":101}]`:          "setWeight must be 0..100",
		`[{"setWeight":10,"scale":2}]`: "exactly one",
		`[{}]`:                         "exactly one",
		`[{"setHeaderRoute":{"name":"X Canary","value":"a"}}]`:    "name",
		`[{"setHeaderRoute":{"name":"X-Canary","value":"a\nb"}}]`: "value",
		`[{"pause":{"duration":"48h"}}]`:                          "between 1s and 24h",
		`[{"pause":{"duration":"1m","approval":{}}}]`:             "not both",
		`[{"pause":{"approval":{"roles":["root"]}}}]`:             "unknown role",
		`[{"analysis":{"window":"1s","maxErrorRate":0.1}}]`:       "window",
		`[{"analysis":{"window":"10s","maxErrorRate":2}}]`:        "shares",
		`[{"scale":0}]`: "scale must be",
		`[{"pause":{"approval":{"onTimeout":"escalate"}}}]`:                "escalateTo",
		`[{"pause":{"approval":{"onTimeout":"later","roles":["admin"]}}}]`: "onTimeout",
	} {
		var steps []berth.GreyStep
		require.NoError(t, json.Unmarshal([]byte(doc), &steps), doc)
		err := berth.ValidateGreySteps(steps)
		require.Error(t, err, doc)
		require.Contains(t, err.Error(), want, doc)
	}
	var d berth.Duration
	require.Error(t, json.Unmarshal([]byte(`"soon"`), &d))
}

// greyFake records what a grey release did to the load balancer and
// serves stats that grow with every read.
type greyFake struct {
	mu      sync.Mutex
	weights []activities.ServersInput
	routes  []activities.RoutesInput
	reads   int
	// canary5xx is the share of the canary's requests answered 5xx.
	canary5xx float64
	// finishDelay holds the release's FinishRelease record for this long
	// on the test clock: the run has ended but its workflow still answers.
	finishDelay time.Duration
}

func (f *greyFake) lastWeights() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, w := range f.weights {
		for _, s := range w.Servers {
			out[s.Name] = s.Weight
		}
	}
	return out
}

func (f *greyFake) routeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.routes {
		var parts []string
		for _, rt := range r.Routes {
			parts = append(parts, rt.Header+rt.Cookie+"="+rt.Value+"→"+strings.Join(rt.Servers, ","))
		}
		out = append(out, strings.Join(parts, ";"))
	}
	return out
}

func greyInput(steps ...berth.GreyStep) GreyReleaseInput {
	rin := releaseInput()
	rin.Service.Name = "api"
	rin.ProgressDeadline = time.Hour
	return GreyReleaseInput{Release: rin, Canaries: 1, Steps: steps, StartedBy: "dev", TenantID: 1}
}

func newGreyEnv(t *testing.T, fake *greyFake) (*testsuite.TestWorkflowEnvironment, *exposeRecorder) {
	t.Helper()
	env, rec, _ := newGreyEnvInstalls(t, fake)
	return env, rec
}

// newGreyEnvInstalls is newGreyEnv that also returns the package installs.
func newGreyEnvInstalls(t *testing.T, fake *greyFake) (*testsuite.TestWorkflowEnvironment, *exposeRecorder, *releaseFake) {
	t.Helper()
	env, rec, installs := newReleaseEnv(t)
	env.RegisterWorkflowWithOptions(GreyRelease, workflow.RegisterOptions{Name: GreyReleaseName})
	env.OnActivity(lbA.SetWeights, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ServersInput) error {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		fake.weights = append(fake.weights, in)
		return nil
	}).Maybe()
	env.OnActivity(lbA.SetRoutes, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RoutesInput) error {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		fake.routes = append(fake.routes, in)
		return nil
	}).Maybe()
	env.OnActivity(st.RecordWeights, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(st.RecordRoutes, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(lbA.PoolStats, mock.Anything, mock.Anything).Return(func(context.Context, string) ([]lb.ServerStats, error) {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		fake.reads++
		n := int64(100 * fake.reads)
		return []lb.ServerStats{
			{Name: apiName(1), Requests: 4 * n}, {Name: apiName(2), Requests: 4 * n},
			{Name: apiName(9), Requests: n, Responses5xx: int64(float64(n) * fake.canary5xx)},
		}, nil
	}).Maybe()
	env.OnActivity(st.FinishRelease, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return fake.finishDelay
	}).Return(nil).Maybe()
	mockRelease(env, installs, releaseFaults{})
	return env, rec, installs
}

// greyUpdate is how a GreyControlUpdate ended, known once the run is over.
type greyUpdate struct {
	accepted  bool
	rejected  error
	completed bool
	err       error
}

// sendGreyUpdate sends c as a GreyControlUpdate from a test callback.
func sendGreyUpdate(env *testsuite.TestWorkflowEnvironment, c GreyControl) *greyUpdate {
	u := &greyUpdate{}
	env.UpdateWorkflow(GreyControlUpdate, "", &testsuite.TestUpdateCallback{
		OnAccept:   func() { u.accepted = true },
		OnReject:   func(err error) { u.rejected = err },
		OnComplete: func(_ any, err error) { u.completed, u.err = true, err },
	}, c)
	return u
}

// requireRefused checks that the validator refused an update, and why.
func requireRefused(t *testing.T, u *greyUpdate, why string) {
	t.Helper()
	require.False(t, u.accepted, "the update was accepted")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, u.rejected, &appErr)
	require.Equal(t, GreyControlRefused, appErr.Type())
	require.Contains(t, appErr.Message(), why)
}

// requireTaken checks that an update was accepted and done.
func requireTaken(t *testing.T, u *greyUpdate) {
	t.Helper()
	require.NoError(t, u.rejected)
	require.True(t, u.accepted)
	require.True(t, u.completed)
	require.NoError(t, u.err)
}

func intp(n int) *int { return &n }

func TestGreyReleaseWalksTheStepsAndPromotes(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(20)},
		berth.GreyStep{SetHeaderRoute: &berth.GreyMatch{Name: "X-Canary", Value: "always"}},
		berth.GreyStep{Analysis: &berth.GreyAnalysis{Window: berth.Duration(time.Minute), MaxErrorRate: 0.05, MinRequests: 10}},
		berth.GreyStep{Pause: &berth.GreyPause{Duration: berth.Duration(10 * time.Minute)}},
		berth.GreyStep{SetWeight: intp(50)})

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res GreyReleaseResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, berth.ReleaseSucceeded, res.Outcome)
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
	// Canary api-9 started at weight 0, got 20% then 50%; the header route
	// named it and was removed on promote; the stable api-1..4 were
	// replaced and the canary removed.
	require.Equal(t, []string{"", "X-Canary=always→" + apiName(9), ""}, fake.routeLog())
	plannedKeys := plannedKeys(rec)
	require.Equal(t, "31/canary-1", plannedKeys[0])
	require.Contains(t, plannedKeys, "31/promote-1")
	require.Contains(t, removals(rec), apiName(9)+" graceful")
	for _, old := range apiNames(1, 2, 3, 4) {
		require.Contains(t, removals(rec), old+" graceful")
	}
}

func TestGreyReleaseFailedAnalysisAbortsToStable(t *testing.T) {
	fake := &greyFake{canary5xx: 0.3}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(20)},
		berth.GreyStep{Analysis: &berth.GreyAnalysis{Window: berth.Duration(time.Minute), MaxErrorRate: 0.05}},
		berth.GreyStep{SetWeight: intp(100)})

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	require.Contains(t, fr.Reason, "analysis failed: canary 5xx share 30.0%")
	w := fake.lastWeights()
	require.Equal(t, 0, w[apiName(9)], "the canary gets no traffic")
	require.Equal(t, 100, w[apiName(1)], "stable is back at its normal weight")
	require.Equal(t, []string{apiName(9) + " graceful"}, removals(rec), "only the canary is removed")
	require.NotContains(t, plannedKeys(rec), "31/promote-1")
}

func TestGreyReleaseAbortSignalEndsAnIndefinitePause(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}}, berth.GreyStep{SetWeight: intp(100)})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyAbort, By: "rm", Reason: "latency"})
	}, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	require.Equal(t, "aborted by rm: latency", fr.Reason)
	require.Equal(t, berth.RunCancelled, rec.onlyFinish(t).Status)
	require.Equal(t, 0, fake.lastWeights()[apiName(9)])
}

func TestGreyReleasePromoteSignalSkipsTheRest(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}}, berth.GreyStep{SetWeight: intp(90)})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyPromote, By: "rm"})
	}, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseSucceeded, fr.Outcome)
	require.Equal(t, "promoted by rm", fr.Reason)
	for _, w := range fake.weights {
		for _, s := range w.Servers {
			if s.Name == apiName(9) {
				require.NotEqual(t, 230, s.Weight, "step 3 (90%) never ran")
			}
		}
	}
}

func TestGreyReleaseUnattendedPastDeadlineAborts(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{Duration: berth.Duration(2 * time.Hour)}}, berth.GreyStep{Pause: &berth.GreyPause{}})
	in.Release.ProgressDeadline = 30 * time.Minute

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	// The two-hour timed pause is planned and passes; the open-ended pause
	// after it is unattended and hits the deadline.
	require.Contains(t, fr.Reason, "progress deadline of 30m0s passed with nobody acting (at pause until resumed)")
	require.Equal(t, berth.RunFailed, rec.onlyFinish(t).Status)
}

func TestGreyReleaseRejectedApprovalAborts(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{Approval: &berth.GreyApproval{}}}, berth.GreyStep{SetWeight: intp(100)})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(ApprovalSignal, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalRejected, By: []string{"ann"}, Comment: "5xx up"})
	}, time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	require.Equal(t, "rejected by ann: 5xx up", fr.Reason)
	require.Equal(t, []string{apiName(9) + " graceful"}, removals(rec))
}

func TestGreyReleaseScaleStepAddsAndRemovesCanaries(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(20)}, berth.GreyStep{Scale: intp(3)},
		berth.GreyStep{SetHeaderRoute: &berth.GreyMatch{Name: "X-Canary", Value: "always"}}, berth.GreyStep{Scale: intp(1)},
		berth.GreyStep{Pause: &berth.GreyPause{}})
	var states []GreyState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(GreyStateQuery)
		require.NoError(t, err)
		var st GreyState
		require.NoError(t, v.Get(&st))
		states = append(states, st)
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyAbort, By: "rm"})
	}, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Len(t, states, 1)
	require.Len(t, states[0].Canaries, 1, "scaled 1 → 3 → 1")
	require.Equal(t, 20, states[0].Weight)
	keys := plannedKeys(rec)
	require.Equal(t, []string{"31/canary-1", "31/canary-2"}, keys)
	routes := fake.routeLog()
	require.Len(t, routes, 5)
	require.Equal(t, 3, strings.Count(routes[2], "→")+strings.Count(routes[2], ","), "the route names the three canaries: %s", routes[2])
	require.NotContains(t, routes[3], ",", "after scaling in the route names one canary: %s", routes[3])
	require.Empty(t, routes[4], "abort removes the routes")
	require.Equal(t, berth.ReleaseAborted, onlyFinishRelease(t, rec).Outcome)
}

func TestGreyReleasePauseSignalHoldsBetweenSteps(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{Duration: berth.Duration(time.Minute)}}, berth.GreyStep{SetWeight: intp(40)})
	var weightAtPause int
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyPauseAction, By: "rm"})
	}, 30*time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(GreyStateQuery)
		require.NoError(t, err)
		var st GreyState
		require.NoError(t, v.Get(&st))
		require.True(t, st.Paused)
		weightAtPause = st.Weight
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyResume, By: "rm"})
	}, 20*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 10, weightAtPause, "the pause held before the 40% step")
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
}

func TestGreyReleasePromoteAndAbortAtOnceMakeOneDecision(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}})
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyAbort, By: "ann"})
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyPromote, By: "bob"})
	}, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome, "the first decision wins")
	require.Equal(t, "aborted by ann", fr.Reason)
	require.NotContains(t, plannedKeys(rec), "31/promote-1")
}

func TestGreyReleaseCancelledRunRemovesTheCanary(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{SetHeaderRoute: &berth.GreyMatch{Name: "X-Canary", Value: "always"}}, berth.GreyStep{Pause: &berth.GreyPause{}})
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	require.Equal(t, "cancelled", fr.Reason)
	require.Equal(t, berth.RunCancelled, rec.onlyFinish(t).Status)
	require.Equal(t, []string{apiName(9) + " graceful"}, removals(rec))
	routes := fake.routeLog()
	require.Empty(t, routes[len(routes)-1], "the route went with the canary")
	require.Equal(t, 0, fake.lastWeights()[apiName(9)])
}

func TestGreyReleasePromoteCannotSkipAnApproval(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{Approval: &berth.GreyApproval{}}}, berth.GreyStep{SetWeight: intp(60)})
	in.Release.ProgressDeadline = 30 * time.Minute
	var promote, resume, pause *greyUpdate
	env.RegisterDelayedCallback(func() {
		promote = sendGreyUpdate(env, GreyControl{Action: GreyPromote, By: "dev"})
		resume = sendGreyUpdate(env, GreyControl{Action: GreyResume, By: "dev"})
		// A signal cannot be refused to its sender; the release drops it.
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyPromote, By: "dev"})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(GreyStateQuery)
		require.NoError(t, err)
		var st GreyState
		require.NoError(t, v.Get(&st))
		require.True(t, st.AwaitingApproval, "still waiting: the promotes were refused, and the deadline does not run during an approval")
		// A pause is taken during an approval and holds after it.
		pause = sendGreyUpdate(env, GreyControl{Action: GreyPauseAction, By: "dev"})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(ApprovalSignal, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"ann"}})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(GreyStateQuery)
		require.NoError(t, err)
		var st GreyState
		require.NoError(t, v.Get(&st))
		require.True(t, st.Paused, "the pause asked for during the approval holds after it")
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyResume, By: "dev"})
	}, 2*time.Hour+10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	requireRefused(t, promote, "grey release of api waits for an approval: it is decided in the inbox, and promote cannot skip it (abort can)")
	requireRefused(t, resume, "is not paused: it waits for an approval")
	requireTaken(t, pause)
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseSucceeded, fr.Outcome)
	require.Equal(t, "promoted by the steps' end", fr.Reason, "the step after the approval ran, then the steps' end promoted")
}

func TestGreyControlUpdateRefusesResumeWhenNotPaused(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{Duration: berth.Duration(10 * time.Minute)}}, berth.GreyStep{SetWeight: intp(40)})
	var resume, pause, again, resumed *greyUpdate
	env.RegisterDelayedCallback(func() {
		resume = sendGreyUpdate(env, GreyControl{Action: GreyResume, By: "rm"})
		pause = sendGreyUpdate(env, GreyControl{Action: GreyPauseAction, By: "rm"})
		again = sendGreyUpdate(env, GreyControl{Action: GreyPauseAction, By: "rm"})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		resumed = sendGreyUpdate(env, GreyControl{Action: GreyResume, By: "rm"})
	}, 30*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	requireRefused(t, resume, "grey release of api is not paused")
	requireTaken(t, pause)
	requireRefused(t, again, "grey release of api is already paused")
	requireTaken(t, resumed)
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
}

func TestGreyControlUpdatePromotesAndTheFirstDecisionWins(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}}, berth.GreyStep{SetWeight: intp(90)})
	var promote, abort *greyUpdate
	env.RegisterDelayedCallback(func() {
		promote = sendGreyUpdate(env, GreyControl{Action: GreyPromote, By: "rm"})
		abort = sendGreyUpdate(env, GreyControl{Action: GreyAbort, By: "ann"})
	}, 10*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	requireTaken(t, promote)
	requireRefused(t, abort, "grey release of api was already asked to promote by rm: it no longer takes abort")
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseSucceeded, fr.Outcome)
	require.Equal(t, "promoted by rm", fr.Reason)
	require.Contains(t, plannedKeys(rec), "31/promote-1")
}

func TestGreyControlUpdateRefusedOnceTheReleaseEnded(t *testing.T) {
	fake := &greyFake{finishDelay: time.Hour}
	env, rec := newGreyEnv(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}})
	var abort *greyUpdate
	var late []*greyUpdate
	env.RegisterDelayedCallback(func() {
		abort = sendGreyUpdate(env, GreyControl{Action: GreyAbort, By: "rm", Reason: "latency"})
	}, 10*time.Minute)
	// The abort has run; the run's end is still being recorded.
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(GreyStateQuery)
		require.NoError(t, err)
		var st GreyState
		require.NoError(t, v.Get(&st))
		require.Equal(t, GreyPhaseDone, st.Phase)
		for _, a := range []string{GreyPromote, GreyAbort, GreyPauseAction, GreyResume} {
			late = append(late, sendGreyUpdate(env, GreyControl{Action: a, By: "bob"}))
		}
	}, 30*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	requireTaken(t, abort)
	require.Len(t, late, 4)
	for _, u := range late {
		requireRefused(t, u, "grey release of api has ended (aborted): it takes no ")
	}
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseAborted, fr.Outcome)
	require.Equal(t, "aborted by rm: latency", fr.Reason)
}

// A run started before the update existed has no handler: the server's
// update fails as unknown, and the signal it falls back to still works.
func TestGreyReleaseStartedBeforeUpdatesTakesTheSignal(t *testing.T) {
	fake := &greyFake{}
	env, rec := newGreyEnv(t, fake)
	env.OnGetVersion(greyControlUpdateChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	in := greyInput(berth.GreyStep{SetWeight: intp(10)}, berth.GreyStep{Pause: &berth.GreyPause{}}, berth.GreyStep{SetWeight: intp(90)})
	var update *greyUpdate
	env.RegisterDelayedCallback(func() {
		update = sendGreyUpdate(env, GreyControl{Action: GreyPromote, By: "rm"})
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(GreyControlSignal, GreyControl{Action: GreyPromote, By: "rm"})
	}, 20*time.Minute)

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.False(t, update.accepted)
	require.ErrorContains(t, update.rejected, "unknown update")
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseSucceeded, fr.Outcome)
	require.Equal(t, "promoted by rm", fr.Reason)
}

// The rules hold in every phase, for the update and the signal alike.
func TestGreyControlRefusal(t *testing.T) {
	in := greyInput()
	for _, tc := range []struct {
		name   string
		set    func(g *grey)
		action string
		want   string // "" when the control is taken
	}{
		{"pause in the canary", func(*grey) {}, GreyPauseAction, ""},
		{"abort in the canary", func(*grey) {}, GreyAbort, ""},
		{"promote in the canary", func(*grey) {}, GreyPromote, ""},
		{"promote while starting", func(g *grey) { g.state.Phase = GreyPhaseStarting }, GreyPromote, ""},
		{"resume when paused", func(g *grey) { g.state.Paused = true }, GreyResume, ""},
		{"abort during an approval", func(g *grey) { g.state.AwaitingApproval = true }, GreyAbort, ""},
		{"pause during an approval", func(g *grey) { g.state.AwaitingApproval = true }, GreyPauseAction, ""},
		{"unknown action", func(*grey) {}, "rollback", `"rollback" is not a grey release action`},
		{"resume when not paused", func(*grey) {}, GreyResume, "grey release of api is not paused"},
		{"pause when paused", func(g *grey) { g.state.Paused = true }, GreyPauseAction, "is already paused"},
		{"promote during an approval", func(g *grey) { g.state.AwaitingApproval = true }, GreyPromote, "waits for an approval"},
		{"promote after a promote", func(g *grey) { g.action = GreyControl{Action: GreyPromote, By: "rm"} }, GreyPromote, "already asked to promote by rm"},
		{"pause after an abort", func(g *grey) { g.action = GreyControl{Action: GreyAbort, By: "rm"} }, GreyPauseAction, "already asked to abort by rm"},
		{"promote past the deadline", func(g *grey) { g.deadlineHit = true }, GreyPromote, "passed its progress deadline"},
		{"abort while promoting", func(g *grey) { g.state.Phase = GreyPhasePromoting }, GreyAbort, "is promoting: it no longer takes abort"},
		{"pause while aborting", func(g *grey) { g.state.Phase = GreyPhaseAborting }, GreyPauseAction, "is aborting: it no longer takes pause"},
		{"abort after the end", func(g *grey) {
			g.finished, g.state.Phase, g.state.Outcome = true, GreyPhaseDone, berth.ReleaseSucceeded
		}, GreyAbort, "has ended (succeeded): it takes no abort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &grey{in: in, state: GreyState{Phase: GreyPhaseCanary}}
			tc.set(g)
			got := g.refusal(GreyControl{Action: tc.action, By: "bob"})
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.want)
		})
	}
}

func TestGreyReleaseOfAFilePackage(t *testing.T) {
	fake := &greyFake{}
	env, rec, installs := newGreyEnvInstalls(t, fake)
	in := greyInput(berth.GreyStep{SetWeight: intp(25)})
	in.Release.Kind, in.Release.PackageSHA256, in.Release.LastGoodPackage = berth.ReleaseFile, relNewSHA, relGoodSHA
	in.Release.Service.Image = relGoodImage
	in.Release.BatchSize = 2

	env.ExecuteWorkflow(GreyReleaseName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var got []string
	for _, c := range installs.installed() {
		got = append(got, c.In.Instance.Name+" "+c.In.SHA256)
	}
	// The canary first, then the stable instances in place, in batches.
	require.Equal(t, apiName(9)+" "+relNewSHA, got[0])
	require.ElementsMatch(t, []string{apiName(1) + " " + relNewSHA, apiName(2) + " " + relNewSHA,
		apiName(3) + " " + relNewSHA, apiName(4) + " " + relNewSHA}, got[1:])
	require.Equal(t, []string{"31/canary-1"}, plannedKeys(rec), "no instance is replaced: the package goes in place")
	require.Equal(t, []string{apiName(9) + " graceful"}, removals(rec))
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
}
