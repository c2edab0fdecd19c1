package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workflows"
)

// greyBody is GET /services/{id}/grey.
type greyBody struct {
	RunID  uint                 `json:"runId"`
	Active bool                 `json:"active"`
	State  *workflows.GreyState `json:"state"`
	Canary struct {
		Requests  int64 `json:"requests"`
		Errors5xx int64 `json:"errors5xx"`
	} `json:"canary"`
}

func (hs *harness) grey(t testing.TB, serviceID uint) greyBody {
	t.Helper()
	var gb greyBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/grey?live=1", serviceID), nil, &gb))
	return gb
}

// startGrey posts a grey release as YAML, the way the UI's form sends it.
func (hs *harness) startGrey(t testing.TB, serviceID uint, doc string) releaseStarted {
	t.Helper()
	var rs releaseStarted
	code := hs.api(t, "POST", fmt.Sprintf("/api/v1/services/%d/grey", serviceID), "application/yaml", []byte(doc), &rs)
	require.Equal(t, http.StatusAccepted, code)
	return rs
}

// waitGrey waits until the grey release reports a state cond accepts.
func (hs *harness) waitGrey(t testing.TB, serviceID uint, what string, cond func(*workflows.GreyState) bool) workflows.GreyState {
	t.Helper()
	var st workflows.GreyState
	reached := assert.Eventually(t, func() bool {
		var gb greyBody
		if hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/grey", serviceID), nil, &gb) != http.StatusOK || gb.State == nil {
			return false
		}
		st = *gb.State
		return cond(&st)
	}, 2*time.Minute, 20*time.Millisecond)
	// The last state seen says where the release stopped.
	require.True(t, reached, "grey release never reached %s; last state: phase %s, step %d, paused %v, weight %d, outcome %q %s",
		what, st.Phase, st.Step, st.Paused, st.Weight, st.Outcome, st.Reason)
	return st
}

func (hs *harness) greyAction(t testing.TB, serviceID uint, action string) {
	t.Helper()
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/grey/%s", serviceID, action),
		map[string]string{"reason": "e2e"}, nil))
}

// split sends n requests through the frontend (with header, when given) and
// counts the answers by version. Only loopback is targeted.
func split(t testing.TB, front string, n int, header string) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	out := map[string]int{}
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", front, nil)
		if header != "" {
			k, v, _ := strings.Cut(header, ": ")
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out[fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))]++
			continue
		}
		out[string(b)]++
	}
	return out
}

func share(m map[string]int, key string, n int) float64 { return 100 * float64(m[key]) / float64(n) }

// A grey release v1 → v2 with 4 stable and 1 canary on two hosts: at
// setWeight 20 and 50 the share served by v2 over 2,000 requests is within 4
// points; a request with the canary header always reaches v2; promote under
// load drops no request and leaves 4 instances on v2, no routes and no canary.
func TestGreyReleaseSplitsTrafficAndPromotes(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "grey")
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	rs := hs.startGrey(t, svc.ID, `image: berth-sample:v2
canaries: 1
steps:
  - setWeight: 20
  - setHeaderRoute: {name: X-Canary, value: always}
  - pause: {}
  - setWeight: 50
  - pause: {}
`)
	st := hs.waitGrey(t, svc.ID, "paused at 20%", func(s *workflows.GreyState) bool { return s.Step == 2 && s.Paused })
	require.Equal(t, 20, st.Weight)
	require.Len(t, st.Canaries, 1)
	require.Len(t, st.Stable, 4)
	pb := hs.pool(t, svc.ID)
	require.Len(t, pb.Backend.Routes, 1, "the header route is in the load balancer's records")

	const n = 2000
	m := split(t, front, n, "")
	t.Logf("setWeight 20: %v (v2 %.1f%%)", m, share(m, "v2", n))
	require.Equal(t, n, m["v1"]+m["v2"])
	require.InDelta(t, 20, share(m, "v2", n), 4)
	m = split(t, front, 200, "X-Canary: always")
	require.Equal(t, map[string]int{"v2": 200}, m, "the canary header always reaches v2")

	resumed := time.Now()
	hs.greyAction(t, svc.ID, "resume")
	st = hs.waitGrey(t, svc.ID, "paused at 50%", func(s *workflows.GreyState) bool { return s.Step == 4 && s.Paused })
	t.Logf("resume → weight 50 applied and read back, seen through the API, in %s", time.Since(resumed).Round(time.Millisecond))
	require.Equal(t, 50, st.Weight)
	m = split(t, front, n, "")
	t.Logf("setWeight 50: %v (v2 %.1f%%)", m, share(m, "v2", n))
	require.Equal(t, n, m["v1"]+m["v2"])
	require.InDelta(t, 50, share(m, "v2", n), 4)
	m = split(t, front, 200, "X-Canary: always")
	require.Equal(t, map[string]int{"v2": 200}, m)
	gb := hs.grey(t, svc.ID)
	require.Positive(t, gb.Canary.Requests, "live canary figures come from HAProxy")
	pb = hs.pool(t, svc.ID)
	hs.recordHistory(t, workflows.PoolStatsID(pb.Pool.Region, pb.Backend.Name), "", "pool-stats")

	l := startLoad(t, front)
	hs.greyAction(t, svc.ID, "promote")
	run := hs.waitRun(t, rs.RunID)
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during promote: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Equal(t, []string{"v2", "v2", "v2", "v2"}, hs.versions(t, apps))
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 4)
	pb = hs.pool(t, svc.ID)
	requirePoolMatches(t, pb, svc.Instances)
	require.Empty(t, pb.Backend.Routes, "no canary route is left")
	for _, s := range pb.Backend.Servers {
		require.Equal(t, 100, s.Weight, "every server is back at the normal weight")
	}
	rb := hs.releases(t, svc.ID)
	require.Equal(t, rs.ReleaseID, rb.LastGoodID)
	require.Equal(t, berth.StrategyGrey, rb.Releases[0].Strategy)
	require.Equal(t, 4, countAll(hs.containersOf(t, hs.tenant+"-grey")))
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "grey-release-promoted")
}

// serviceSnapshot is everything of a tenant's service a grey release could
// leave behind: pool servers, weights, states and routes; containers; ports;
// open firewall openings; CMDB items.
func (hs *harness) serviceSnapshot(t testing.TB, serviceID uint, tenant string) string {
	t.Helper()
	var opens struct{ Openings []berth.FirewallOpening }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/firewall/openings?state=open", nil, &opens))
	var open []string
	for _, o := range opens.Openings {
		if strings.HasPrefix(o.InstanceName, tenant+"-") {
			open = append(open, fmt.Sprintf("%s %s:%d", o.InstanceName, o.DestIP, o.DestPort))
		}
	}
	sort.Strings(open)
	containers := hs.containersOf(t, tenant)
	var cs []string
	for host, names := range containers {
		for _, n := range names {
			cs = append(cs, host+"/"+n)
		}
	}
	sort.Strings(cs)
	return fmt.Sprintf("pool:\n%s\ncontainers: %v\nports: %v\nopenings: %v\ncmdb: %v %v", poolSnapshot(hs.pool(t, serviceID)), cs,
		hs.portsOfTenant(t, tenant), open, hs.cmdb.IDs("instance:"+tenant), hs.cmdb.IDs("service:"+tenant))
}

// poolSnapshot is what "exactly as before" compares: servers with weights
// and states, and routes.
func poolSnapshot(pb poolBody) string {
	var out []string
	for _, s := range pb.Backend.Servers {
		out = append(out, fmt.Sprintf("%s %s w%d %s", s.Name, s.Addr, s.Weight, s.State))
	}
	sort.Strings(out)
	return strings.Join(out, "\n") + fmt.Sprintf("\nroutes %v", pb.Backend.Routes)
}

// A canary answering 5xx on 30% of requests fails its analysis: the release
// aborts by itself, all traffic returns to v1, the canary is gone, and no
// client on stable saw a failure.
func TestGreyReleaseFailedAnalysisAborts(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "greybad")
	before := hs.serviceSnapshot(t, svc.ID, hs.tenant+"-greybad")
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	stop := make(chan struct{})
	done := make(chan map[string]int)
	go func() {
		// Counts by answer until stopped; loopback only, bounded.
		c := &http.Client{Timeout: 5 * time.Second}
		m := map[string]int{}
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				done <- m
				return
			default:
			}
			resp, err := c.Get(front)
			if err != nil {
				m["error"]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m[fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))]++
		}
		done <- m
	}()
	rs := hs.startGrey(t, svc.ID, `image: berth-sample:v2err
steps:
  - setWeight: 20
  - analysis: {window: 4s, maxErrorRate: 0.05, minRequests: 20}
  - setWeight: 100
`)
	run := hs.waitRun(t, rs.RunID)
	close(stop)
	m := <-done
	t.Logf("answers during the grey release: %v", m)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "analysis failed: canary 5xx share")
	require.Positive(t, m["500 injected failure"], "the canary did fail requests")
	for k, v := range m {
		switch k {
		case "200 v1", "200 v2", "500 injected failure":
		default:
			t.Errorf("%d answers %q: only the canary may fail, and only with its own 500", v, k)
		}
	}
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseAborted, rb.Releases[0].Outcome)
	require.NotEqual(t, rs.ReleaseID, rb.LastGoodID)
	require.Equal(t, before, hs.serviceSnapshot(t, svc.ID, hs.tenant+"-greybad"), "the service is exactly as before")
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps))
	m = split(t, front, 200, "")
	require.Equal(t, map[string]int{"v1": 200}, m, "all traffic is on stable")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "grey-release-aborted")
}

// An abort by a person leaves the service exactly as before; a grey release
// nobody touches past its progress deadline aborts by itself.
func TestGreyReleaseAbortAndDeadline(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	apps := hs.newEnv(t, "greyab")
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	tenant := hs.tenant + "-greyab"
	before := hs.serviceSnapshot(t, svc.ID, tenant)
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"

	rs := hs.startGrey(t, svc.ID, `{"image": "berth-sample:v2", "steps": [{"setWeight": 30}, {"scale": 2},
		{"setCookieRoute": {"name": "canary", "value": "yes"}}, {"pause": {}}]}`)
	st := hs.waitGrey(t, svc.ID, "paused", func(s *workflows.GreyState) bool { return s.Step == 3 && s.Paused })
	require.Len(t, st.Canaries, 2, "the scale step added a canary")
	require.Len(t, hs.pool(t, svc.ID).Backend.Routes[0].Servers, 2, "the route names both canaries")
	m := split(t, front, 1000, "")
	require.InDelta(t, 30, share(m, "v2", 1000), 5, "two canaries share 30%%: %v", m)
	require.Equal(t, map[string]int{"v2": 40}, split(t, front, 40, "Cookie: canary=yes"))
	require.NotEqual(t, before, hs.serviceSnapshot(t, svc.ID, tenant))
	hs.greyAction(t, svc.ID, "abort")
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunCancelled, run.Status)
	require.Contains(t, run.Error, "aborted by")
	require.Equal(t, before, hs.serviceSnapshot(t, svc.ID, tenant), "abort leaves the service exactly as before")
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/grey/promote", svc.ID), nil, nil),
		"an ended grey release takes no action")

	rs = hs.startGrey(t, svc.ID, `{"image": "berth-sample:v2", "progressDeadline": "6s", "steps": [{"setWeight": 10}, {"pause": {}}]}`)
	run = hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "progress deadline of 6s passed with nobody acting")
	require.Equal(t, before, hs.serviceSnapshot(t, svc.ID, tenant))
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "grey-release-deadline")
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseAborted, rb.Releases[0].Outcome)

	// Retrying the run starts the same grey release again.
	var again runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/runs/%d/retry", rs.RunID), nil, &again))
	retried := hs.waitRun(t, again.RunID)
	require.Equal(t, berth.KindGreyRelease, retried.Kind)
	require.Equal(t, rs.RunID, retried.RetryOf)
	require.Contains(t, retried.Error, "progress deadline of 6s passed")
	require.Equal(t, before, hs.serviceSnapshot(t, svc.ID, tenant))
}

// A grey release waiting on an approval between weights survives a SIGKILL
// of the worker and goes on when approved; the weight and route set before
// the kill are still in force afterwards.
func TestGreyReleaseApprovalSurvivesWorkerKill(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	tenant := hs.tenant + "-greyap"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev"})
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	dev := hs.newPerson(t, "grey-dev", tenant, berth.RoleDeveloper)
	approver := hs.newPerson(t, "grey-approver", tenant, berth.RoleApprover)

	var rs releaseStarted
	code, msg := dev.post(t, fmt.Sprintf("/api/v1/services/%d/grey", svc.ID), map[string]any{"image": "berth-sample:v2",
		"steps": []map[string]any{{"setWeight": 50}, {"setHeaderRoute": map[string]string{"name": "X-Canary", "value": "always"}},
			{"pause": map[string]any{"approval": map[string]any{"roles": []string{"approver"}}}}, {"setWeight": 100}}}, &rs)
	require.Equal(t, http.StatusAccepted, code, msg)
	a := hs.waitApproval(t, rs.RunID)
	code, msg = dev.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusForbidden, code, "a developer may not approve: %s", msg)
	code, msg = dev.post(t, fmt.Sprintf("/api/v1/services/%d/grey/promote", svc.ID), map[string]string{}, nil)
	require.Equal(t, http.StatusConflict, code, "promote cannot skip the approval")
	require.Contains(t, msg, "waits for an approval")

	pidFile := filepath.Join(hs.logDir, "haproxy", "haproxy.pid")
	oldPID, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	hs.restartWorkerHard(t)
	// The new worker replaces the region's HAProxy with one built from
	// berth's records alone: weights and routes must come from there.
	require.Eventually(t, func() bool {
		pid, err := os.ReadFile(pidFile)
		if err != nil || string(pid) == string(oldPID) {
			return false
		}
		resp, err := http.Get(front)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 20*time.Millisecond, "the load balancer never answered after the worker's restart")
	m := split(t, front, 400, "")
	require.InDelta(t, 50, share(m, "v2", 400), 8, "the split survives the worker's restart: %v", m)
	require.Equal(t, map[string]int{"v2": 50}, split(t, front, 50, "X-Canary: always"))

	code, msg = approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "canary looks fine"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v2", "v2"}, hs.versions(t, apps))
	require.Empty(t, hs.pool(t, svc.ID).Backend.Routes)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "grey-release-approved-after-kill")
}

// Bad grey release requests are refused with a message and start nothing.
func TestGreyReleaseRefusals(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "greyno")
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	path := fmt.Sprintf("/api/v1/services/%d/grey", svc.ID)
	for doc, want := range map[string]string{
		`image: "bad image"`: "image must be",
		"image: berth-sample:v2\nsteps: [{setWeight: 120}]":                                "setWeight must be 0..100",
		"image: berth-sample:v2\nsteps: [{setWieght: 20}]":                                 "unknown field",
		"image: berth-sample:v2\ncanaries: 99":                                             "canaries must be",
		"image: berth-sample:v2\nsteps: [{setHeaderRoute: {name: \"X-A\\nB\", value: x}}]": "name",
		"image: berth-sample:v2\nprogressDeadline: 1s":                                     "progressDeadline",
	} {
		var eb struct{ Error struct{ Message string } }
		code := hs.api(t, "POST", path, "application/yaml", []byte(doc), &eb)
		require.Equal(t, http.StatusBadRequest, code, doc)
		require.Contains(t, eb.Error.Message, want, doc)
	}
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", path, nil, nil), "no grey release yet")
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", path+"/explode", nil, nil))
	require.Equal(t, 1, countAll(hs.containersOf(t, hs.tenant+"-greyno")))

	// One run per application: a second grey release, or a rolling one,
	// while a grey release runs is refused naming it; resume when not paused too.
	rs := hs.startGrey(t, svc.ID, "image: berth-sample:v2\nsteps: [{pause: {}}, {setWeight: 10}, {pause: {}}]\n")
	hs.waitGrey(t, svc.ID, "paused", func(s *workflows.GreyState) bool { return s.Step == 0 && s.Paused })
	var eb struct{ Error struct{ Message string } }
	require.Equal(t, http.StatusConflict, hs.api(t, "POST", path, "application/yaml", []byte("image: berth-sample:v3\n"), &eb))
	require.Contains(t, eb.Error.Message, fmt.Sprintf("run %d (grey-release by admin)", rs.RunID))
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID), map[string]string{"image": "berth-sample:v3"}, nil))
	hs.greyAction(t, svc.ID, "resume")
	hs.waitGrey(t, svc.ID, "resumed into the last pause", func(s *workflows.GreyState) bool { return s.Step == 2 && s.Paused })
	hs.greyAction(t, svc.ID, "abort")
	require.Equal(t, berth.RunCancelled, hs.waitRun(t, rs.RunID).Status)
	require.Equal(t, 1, countAll(hs.containersOf(t, hs.tenant+"-greyno")))
}

// In Chromium: a developer starts a grey release from the service page's
// YAML form, sees the step, weight, route and canary-vs-stable figures
// appear without reloading, and aborts it with the page's button.
func TestUIGreyRelease(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-greyui"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev"})
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	dev := hs.newPerson(t, "greyui-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, fmt.Sprintf("/services/%d", svc.ID))
	waitJS(t, ctx, `document.getElementById('grey-live').textContent.includes('No grey release yet')`, 10*time.Second)
	do(t, ctx, chromedp.Click(chromedp.CSS("details.grey-start summary")))
	doc := "image: berth-sample:v2\\nsteps:\\n  - setWeight: 20\\n  - setHeaderRoute: {name: X-Canary, value: always}\\n  - pause: {}\\n"
	eval[bool](t, ctx, `(function(){document.getElementById('grey-doc').value = "`+doc+`"; window.confirm = function(){return true}; return true})()`)
	// The instance charts load beside the form and move the page; submitting
	// through the button element avoids a click landing on a moved target.
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("form.grey-form button[type=submit]")))
	eval[bool](t, ctx, `(function(){var f=document.querySelector('form.grey-form'); f.requestSubmit(f.querySelector('button[type=submit]')); return true})()`)
	waitJS(t, ctx, `document.querySelector('form.grey-form .result').textContent != ''`, 30*time.Second)
	require.Contains(t, eval[string](t, ctx, `document.querySelector('form.grey-form .result').textContent`), "Started: run #")
	waitJS(t, ctx, `(function(){var t=document.getElementById('grey-live').textContent; return t.includes('20%') && t.includes('header X-Canary=always') && t.includes('paused')})()`, time.Minute)
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	split(t, front, 100, "")
	waitJS(t, ctx, `(function(){var c=document.querySelectorAll('#grey-live tbody tr'); return c.length==2 && Number(c[0].children[3].textContent) > 0 && Number(c[1].children[3].textContent) > 0})()`, 10*time.Second)
	split(t, front, 100, "")
	waitJS(t, ctx, `(function(){var p=document.querySelector('#grey-live .grey-window'); return !!p && /canary [0-9.]+ req\/s/.test(p.textContent) && !/canary 0\.0 req/.test(p.textContent)})()`, 10*time.Second)
	hs.screenshot(t, ctx, "grey-release")
	do(t, ctx, chromedp.EmulateViewport(375, 812))
	waitJS(t, ctx, `document.querySelectorAll('#grey-live tbody tr').length == 2`, 10*time.Second)
	noSideScroll(t, ctx, "service page with a grey release")
	do(t, ctx, chromedp.EmulateViewport(1280, 900))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[data-grey="abort"]`)))
	eval[bool](t, ctx, `(function(){document.querySelector('button[data-grey="abort"]').click(); return true})()`)
	waitJS(t, ctx, `document.getElementById('grey-live').textContent.includes('Ended: aborted')`, time.Minute)
	gb := hs.grey(t, svc.ID)
	require.False(t, gb.Active)
	require.Equal(t, map[string]int{"v1": 50}, split(t, front, 50, "X-Canary: always"), "the route went with the canary")
}

// A service cloned as a new application runs the same spec with another
// image beside the original, which is left alone.
func TestServiceClone(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "clone")
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	path := fmt.Sprintf("/api/v1/services/%d/clone", svc.ID)

	var out runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", path, map[string]any{"name": "shop-try", "image": "berth-sample:v2", "replicas": 1}, &out))
	run := hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	clone := hs.app(t, apps, "shop-try").Services[0]
	require.Equal(t, "web", clone.Name)
	require.Len(t, clone.Instances, 1)
	p := clone.Instances[0].Ports[0]
	code, v := httpGet(t, fmt.Sprintf("http://%s:%d/version", p.HostIP, p.HostPort))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "v2", v)
	require.Equal(t, []string{"v1", "v1"}, hs.versions(t, apps), "the original is untouched")
	require.NotEqual(t, hs.pool(t, svc.ID).Backend.ListenAddr, hs.pool(t, clone.ID).Backend.ListenAddr, "the clone has its own frontend")

	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", path, map[string]any{"name": "shop-x", "environment": "nowhere"}, nil))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", path, map[string]any{"name": "Bad Name"}, nil))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", path, map[string]any{"name": "shop-y", "image": "a b"}, nil))
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", "/api/v1/services/999999/clone", map[string]any{"name": "shop-z"}, nil))
}

// A grey release of an uploaded package: the package is built into the
// canary's image (pushed to the registry), the canary serves the package's
// version beside v1 at the step's weight, and promote puts it everywhere.
func TestGreyReleaseOfPackage(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	needRegistry(t, hs)
	apps := hs.newEnv(t, "greypkg")
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	code, body := hs.uploadGrey(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0", "build": "true",
		"grey": "steps:\n  - setWeight: 50\n  - pause: {}\n"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	hs.waitGrey(t, svc.ID, "paused at 50%", func(s *workflows.GreyState) bool { return s.Step == 1 && s.Paused })
	m := split(t, front, 400, "")
	require.Equal(t, 400, m["v1"]+m["v9"], "%v", m)
	require.InDelta(t, 50, share(m, "v9", 400), 6, "%v", m)
	hs.greyAction(t, svc.ID, "promote")
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v9", "v9"}, hs.versions(t, apps))
	require.Equal(t, "build", run.Steps[0].Name)

	code, body = hs.uploadGrey(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.1", "grey": "image: other:1\n"})
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
	require.Contains(t, string(body), "gives no image")
	// A bad document is refused before the package is stored.
	stored := hs.artifactCount(t)
	code, body = hs.uploadGrey(t, svc.ID, "good.zip", map[string]string{"version": "9.0.2", "grey": "steps: [{setWeight: 300}]\n"})
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
	require.Contains(t, string(body), "setWeight must be 0..100")
	require.Equal(t, stored, hs.artifactCount(t))
}

// A grey release of a file package without a registry: canary instances of
// the stable image get the package installed while at weight 0, serve its
// version at the step's weight and to the header route, and promote
// installs it into the stable instances in place, batch by batch.
func TestGreyReleaseOfFilePackage(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	apps := hs.newEnv(t, "greyfile")
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	before := []string{svc.Instances[0].Name, svc.Instances[1].Name}
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	code, body := hs.uploadGrey(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0",
		"grey": "steps:\n  - setHeaderRoute: {name: X-Canary, value: always}\n  - setWeight: 50\n  - pause: {}\n"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	hs.waitGrey(t, svc.ID, "paused at 50%", func(s *workflows.GreyState) bool { return s.Step == 2 && s.Paused })
	m := split(t, front, 400, "")
	require.Equal(t, 400, m["v1"]+m["v9"], "%v", m)
	require.InDelta(t, 50, share(m, "v9", 400), 6, "%v", m)
	require.Equal(t, map[string]int{"v9": 40}, split(t, front, 40, "X-Canary: always"))
	l := startLoad(t, front)
	hs.greyAction(t, svc.ID, "promote")
	run := hs.waitRun(t, rs.RunID)
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during the file promote: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Equal(t, []string{"v9", "v9"}, hs.versions(t, apps))
	svc = hs.app(t, apps, "shop").Services[0]
	require.ElementsMatch(t, before, []string{svc.Instances[0].Name, svc.Instances[1].Name}, "the package went into the stable instances in place")
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseFile, rb.Releases[0].Kind)
	require.Equal(t, rs.ReleaseID, rb.LastGoodID)
	require.Equal(t, 2, countAll(hs.containersOf(t, hs.tenant+"-greyfile")), "the canary is gone")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "grey-release-file")
}

// A run page left open while its run ends offers what now applies without
// a reload: here a grey release aborted elsewhere gets its Retry button,
// and the retry starts the same grey release again.
func TestUIRetryAppearsWhenOpenRunEnds(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	tenant := hs.tenant + "-greyrt"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev"})
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	dev := hs.newPerson(t, "greyrt-dev", tenant, berth.RoleDeveloper)
	var rs releaseStarted
	code, msg := dev.post(t, fmt.Sprintf("/api/v1/services/%d/grey", svc.ID), map[string]any{"image": "berth-sample:v2",
		"steps": []map[string]any{{"setWeight": 10}, {"pause": map[string]any{}}}}, &rs)
	require.Equal(t, http.StatusAccepted, code, msg)
	hs.waitGrey(t, svc.ID, "paused", func(s *workflows.GreyState) bool { return s.Paused })

	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, fmt.Sprintf("/runs/%d", rs.RunID))
	waitJS(t, ctx, `document.getElementById('live-state').dataset.state === 'live'`, 10*time.Second)
	require.False(t, eval[bool](t, ctx, `!!document.querySelector('form.retry-form')`), "no retry while the run runs")
	hs.greyAction(t, svc.ID, "abort")
	waitJS(t, ctx, `!!document.querySelector('form.retry-form button')`, 30*time.Second)
	eval[bool](t, ctx, `(function(){var f=document.querySelector('form.retry-form'); f.requestSubmit(f.querySelector('button')); return true})()`)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("a.retry-of")))
	var again uint
	_, err := fmt.Sscanf(eval[string](t, ctx, `window.location.pathname`), "/runs/%d", &again)
	require.NoError(t, err)
	hs.waitGrey(t, svc.ID, "the retried grey release paused", func(s *workflows.GreyState) bool { return s.Paused })
	hs.greyAction(t, svc.ID, "abort")
	run := hs.waitRun(t, again)
	require.Equal(t, berth.KindGreyRelease, run.Kind)
	require.Equal(t, rs.RunID, run.RetryOf)
}
