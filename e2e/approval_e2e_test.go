package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// person is a user of the e2e tests with a signed-in session (cookie and
// CSRF token), the way a browser holds one.
type person struct {
	name, password string
	hs             *harness
	client         *http.Client
	csrf           string
}

// newPerson creates a user with roles on a tenant through the admin API and signs them in.
func (hs *harness) newPerson(t testing.TB, name, tenant string, roles ...berth.Role) *person {
	t.Helper()
	p := &person{name: name, password: "pw-" + randHex(8), hs: hs}
	var rs []map[string]string
	for _, r := range roles {
		rs = append(rs, map[string]string{"tenant": tenant, "role": string(r)})
	}
	code := hs.apiJSON(t, "POST", "/api/v1/users", map[string]any{"name": name, "password": p.password, "roles": rs}, nil)
	require.Equal(t, http.StatusCreated, code, "create user %s", name)
	jar, _ := cookiejar.New(nil)
	p.client = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", hs.apiURL+"/login", strings.NewReader(url.Values{"name": {name}, "password": {p.password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", hs.apiURL)
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sign in %s", name)
	resp, err = p.client.Get(hs.apiURL + "/inbox")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, rest, ok := strings.Cut(string(body), `<meta name="csrf-token" content="`)
	require.True(t, ok, "the page carries the session's CSRF token")
	p.csrf, _, _ = strings.Cut(rest, `"`)
	return p
}

// post sends JSON as the person's browser would (same origin, CSRF header).
func (p *person) post(t testing.TB, path string, in, out any) (int, string) {
	t.Helper()
	return p.send(t, "POST", path, in, out)
}

// send is post with another method.
func (p *person) send(t testing.TB, method, path string, in, out any) (int, string) {
	t.Helper()
	b, err := json.Marshal(in)
	require.NoError(t, err)
	req, _ := http.NewRequest(method, p.hs.apiURL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", p.hs.apiURL)
	req.Header.Set("X-CSRF-Token", p.csrf)
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(data, out), "body: %s", data)
	}
	var eb struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(data, &eb)
	return resp.StatusCode, eb.Error.Message
}

// approvalTenant makes a tenant with environments dev and prod (prod: a
// comment is required and the starter may not approve, by default).
func (hs *harness) approvalTenant(t testing.TB, short string) string {
	t.Helper()
	tenant := hs.tenant + "-" + short
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants", map[string]string{"name": tenant}, nil))
	for _, env := range []string{"dev", "prod"} {
		require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments", map[string]string{"name": env}, nil))
	}
	return tenant
}

func (p *person) startGate(t testing.TB, tenant, env string, req map[string]any) uint {
	t.Helper()
	var out runStartedBody
	code, msg := p.post(t, "/api/v1/tenants/"+tenant+"/environments/"+env+"/gates", req, &out)
	require.Equal(t, http.StatusAccepted, code, msg)
	return out.RunID
}

type approvalBody struct {
	ID        uint                `json:"id"`
	RunID     uint                `json:"runId"`
	State     berth.ApprovalState `json:"state"`
	Summary   string              `json:"summary"`
	Decisions []store.Decision    `json:"decisions"`
}

// waitApproval waits until the run's approval step is waiting and returns the approval.
func (hs *harness) waitApproval(t testing.TB, runID uint) approvalBody {
	t.Helper()
	var a approvalBody
	require.Eventually(t, func() bool {
		var list struct{ Approvals []approvalBody }
		if hs.apiJSON(t, "GET", "/api/v1/approvals?state=pending", nil, &list) != http.StatusOK {
			return false
		}
		for _, x := range list.Approvals {
			if x.RunID == runID {
				a = x
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond, "run %d never waited for approval", runID)
	return a
}

func decidePath(id uint) string { return fmt.Sprintf("/api/v1/approvals/%d/decide", id) }

// TestApprovalSurvivesWorkerKill: a run waiting for approval loses nothing
// when its worker is SIGKILLed; the approval given afterwards resumes it.
func TestApprovalSurvivesWorkerKill(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.approvalTenant(t, "apkill")
	dev := hs.newPerson(t, "kill-dev", tenant, berth.RoleDeveloper)
	approver := hs.newPerson(t, "kill-approver", tenant, berth.RoleApprover)
	runID := dev.startGate(t, tenant, "prod", map[string]any{"name": "web", "summary": "web 1.0 → 1.1"})
	a := hs.waitApproval(t, runID)

	hs.restartWorkerHard(t)

	start := time.Now()
	code, msg := approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "after the crash"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, runID)
	t.Logf("approval after a worker SIGKILL resumed the run in %s (includes the new worker's start)", time.Since(start).Round(time.Millisecond))
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	steps := map[string]store.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	require.Equal(t, berth.StepDone, steps["approval"].State)
	require.Equal(t, "approved by kill-approver: after the crash", steps["approval"].Detail)
	require.Greater(t, steps["approval"].WaitingMs, int64(0), "the wait is counted as waiting time")
	require.Equal(t, berth.StepDone, steps["released"].State)
}

// TestDecisionStrandedByAnAPICrashIsResent: the API commits a decision and
// is SIGKILLed before its signal reaches the run (the decision is made in
// the database here, as the dead process left it). The run would wait
// until its approval's timeout; the reconciler's next pass finds the
// decision, sends it again, and the run goes on as approved.
func TestDecisionStrandedByAnAPICrashIsResent(t *testing.T) {
	hs := needHarness(t)
	ctx := context.Background()
	tenant := hs.approvalTenant(t, "apcrash")
	dev := hs.newPerson(t, "crash-dev", tenant, berth.RoleDeveloper)
	hs.newPerson(t, "crash-approver", tenant, berth.RoleApprover)
	runID := dev.startGate(t, tenant, "prod", map[string]any{"name": "web", "summary": "web 1.0 → 1.1", "timeoutSec": 86400})
	a := hs.waitApproval(t, runID)

	var tn store.Tenant
	require.NoError(t, hs.store.DB().Where("name = ?", tenant).First(&tn).Error)
	hs.restartServerHard(t)
	_, closed, err := hs.store.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "crash-approver",
		Bindings: []store.RoleBinding{{TenantID: tn.ID, Role: berth.RoleApprover}}, Decision: "approve", Comment: "before the crash"})
	require.NoError(t, err)
	require.True(t, closed)
	var rb runBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", runID), nil, &rb))
	require.Equal(t, berth.RunRunning, rb.Run.Status, "nothing told the run")

	found := hs.reconcile(t)
	var resent []berth.Finding
	for _, f := range found.Findings {
		if f.Kind == berth.FindingDecisionResent && f.Target == fmt.Sprintf("run %d", runID) {
			resent = append(resent, f)
		}
	}
	require.Len(t, resent, 1, "findings: %+v", found.Findings)
	require.Empty(t, resent[0].Error)
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	for _, s := range run.Steps {
		if s.Name == "approval" {
			require.Equal(t, "approved by crash-approver: before the crash", s.Detail)
		}
	}
	for _, f := range hs.reconcile(t).Findings {
		require.NotEqual(t, fmt.Sprintf("run %d", runID), f.Target, "a second pass finds nothing more: %+v", f)
	}
}

// TestApprovalRaceAndRules: approve and reject at the same moment give one
// decision; the starter, someone without the role, and a late click are
// refused with their reasons; the run follows the one decision.
func TestApprovalRaceAndRules(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.approvalTenant(t, "aprace")
	dev := hs.newPerson(t, "race-dev", tenant, berth.RoleDeveloper, berth.RoleApprover)
	bob := hs.newPerson(t, "race-bob", tenant, berth.RoleApprover)
	carol := hs.newPerson(t, "race-carol", tenant, berth.RoleApprover)
	outsider := hs.newPerson(t, "race-out", tenant, berth.RoleDeveloper)

	runID := dev.startGate(t, tenant, "prod", map[string]any{"name": "api"})
	a := hs.waitApproval(t, runID)

	code, msg := dev.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "mine"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, msg, "separation of duties")
	code, msg = outsider.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "x"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, msg, "only approver may decide")
	code, msg = bob.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, msg, "comment is required")

	var wg sync.WaitGroup
	codes := make([]int, 2)
	start := make(chan struct{})
	for i, p := range []*person{bob, carol} {
		decision := []string{"approve", "reject"}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i], _ = p.post(t, decidePath(a.ID), map[string]string{"decision": decision, "comment": "at once"}, nil)
		}()
	}
	close(start)
	wg.Wait()
	require.ElementsMatch(t, []int{http.StatusOK, http.StatusConflict}, codes, "exactly one decision wins")
	run := hs.waitRun(t, runID)
	if codes[0] == http.StatusOK {
		require.Equal(t, berth.RunSucceeded, run.Status)
	} else {
		require.Equal(t, berth.RunFailed, run.Status)
		require.Equal(t, "rejected by race-carol: at once", run.Error)
	}
	code, msg = bob.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "late"}, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, msg, "already")
}

// TestApprovalTimeoutPolicy: nobody decides in time; abort cancels the run,
// and a decision after that is refused.
func TestApprovalTimeoutPolicy(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.approvalTenant(t, "aptmo")
	dev := hs.newPerson(t, "tmo-dev", tenant, berth.RoleDeveloper)
	bob := hs.newPerson(t, "tmo-bob", tenant, berth.RoleApprover)
	runID := dev.startGate(t, tenant, "dev", map[string]any{"name": "slow", "timeoutSec": 2, "onTimeout": "abort"})
	a := hs.waitApproval(t, runID)
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunCancelled, run.Status)
	require.Contains(t, run.Error, "not decided within 2s; run aborted")
	code, msg := bob.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, msg, "timed out")
}
