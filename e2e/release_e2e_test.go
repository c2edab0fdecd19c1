package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// releaseCompose is the service the release tests move between versions.
var releaseCompose = webCompose("web", 4, "")

// deployForRelease deploys 4 instances of v1 on both hosts behind HAProxy.
func (hs *harness) deployForRelease(t testing.TB, short string) (string, store.ServiceView) {
	t.Helper()
	apps := hs.newEnv(t, short)
	hs.deployOK(t, apps, "shop", releaseCompose)
	return apps, hs.app(t, apps, "shop").Services[0]
}

type releaseStarted struct {
	RunID     uint `json:"runId"`
	ReleaseID uint `json:"releaseId"`
}

func (hs *harness) release(t testing.TB, serviceID uint, body map[string]any) (releaseStarted, store.Run) {
	t.Helper()
	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", serviceID), body, &rs))
	return rs, hs.waitRun(t, rs.RunID)
}

// versions reads /version from every live instance of shop's web directly.
func (hs *harness) versions(t testing.TB, apps string) []string {
	t.Helper()
	return hs.serviceVersions(t, apps, "web")
}

type releasesBody struct {
	Releases   []store.Release `json:"releases"`
	CurrentID  uint            `json:"currentId"`
	LastGoodID uint            `json:"lastGoodId"`
}

func (hs *harness) releases(t testing.TB, serviceID uint) releasesBody {
	t.Helper()
	var rb releasesBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/releases", serviceID), nil, &rb))
	return rb
}

// Image release v1 → v2 of 4 instances on two hosts behind HAProxy while a
// load generator runs: no request fails, every instance ends on v2, and the
// history shows v1 → v2.
func TestImageReleaseUnderLoad(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "rel")
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	l := startLoad(t, front)
	rs, run := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v2", "batchSize": 2})
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during release v1 → v2: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Greater(t, ok, int64(50))
	require.Equal(t, []string{"v2", "v2", "v2", "v2"}, hs.versions(t, apps))
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 4)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	rb := hs.releases(t, svc.ID)
	require.Len(t, rb.Releases, 2)
	require.Equal(t, "v2", rb.Releases[0].Version)
	require.Equal(t, berth.ReleaseSucceeded, rb.Releases[0].Outcome)
	require.Equal(t, "v1", rb.Releases[1].Version)
	require.Equal(t, rb.Releases[1].ID, rb.Releases[0].PreviousID)
	require.Equal(t, rs.ReleaseID, rb.CurrentID)
	require.Equal(t, rs.ReleaseID, rb.LastGoodID)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version")
}

// A release whose new version fails its health check in batch 2 rolls back
// by itself: every instance is on the last-good version again, the LB pool
// matches, and the release is marked with the reason.
func TestFailedBatchRollsBack(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "relbad")
	rs, run := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v3bad", "batchSize": 2})
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "rolled back to berth-sample:v1")
	steps := stepStates(run)
	require.Equal(t, berth.StepDone, steps["batch 1/2"])
	require.Equal(t, berth.StepFailed, steps["batch 2/2"])
	require.Equal(t, berth.StepDone, steps["rollback"])
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps))
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 4)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	rb := hs.releases(t, svc.ID)
	require.Equal(t, rs.ReleaseID, rb.Releases[0].ID)
	require.Equal(t, berth.ReleaseRolledBack, rb.Releases[0].Outcome)
	require.Contains(t, rb.Releases[0].Reason, "healthy")
	require.NotEqual(t, rs.ReleaseID, rb.LastGoodID, "a failed release never becomes last-good")
	require.Equal(t, rb.Releases[1].ID, rb.CurrentID)
	require.Len(t, hs.portsOfTenant(t, hs.tenant+"-relbad"), 4)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version-rolled-back")
}

// Rollback from v3 to v1 in one request completes on the fast path (one batch).
func TestRollbackToAnyEarlierRelease(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "relrb")
	_, run := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v2", "batchSize": 4})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	_, run = hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v3", "batchSize": 4})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v3", "v3", "v3", "v3"}, hs.versions(t, apps))
	rb := hs.releases(t, svc.ID)
	v1 := rb.Releases[len(rb.Releases)-1]
	require.Equal(t, "v1", v1.Version)

	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/rollback", svc.ID), map[string]uint{"releaseId": v1.ID}, &rs))
	run = hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, berth.KindRollback, run.Kind)
	var batches []string
	for _, s := range run.Steps {
		if len(s.Name) > 5 && s.Name[:5] == "batch" {
			batches = append(batches, s.Name)
		}
	}
	require.Equal(t, []string{"batch 1/1"}, batches, "a rollback replaces everything in one batch")
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps))
	rb = hs.releases(t, svc.ID)
	require.Equal(t, v1.ID, rb.Releases[0].RollbackOf)
	require.Equal(t, rs.ReleaseID, rb.CurrentID)
}

// Two releases requested at once: one runs, the other is refused with who
// holds the service and since when; the lock is free afterwards.
func TestConcurrentReleasesOneWins(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	_, svc := hs.deployForRelease(t, "relrace")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]struct {
		RunID uint `json:"runId"`
		Error struct{ Code, Message string }
	}, 2)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
				map[string]any{"image": "berth-sample:v2", "batchSize": 4}, &outs[i])
		}(i)
	}
	wg.Wait()
	require.ElementsMatch(t, []int{http.StatusAccepted, http.StatusConflict}, codes)
	winner := 0
	if codes[1] == http.StatusAccepted {
		winner = 1
	}
	require.Contains(t, outs[1-winner].Error.Message, fmt.Sprintf("run %d", outs[winner].RunID))
	require.Contains(t, outs[1-winner].Error.Message, "by admin")
	run := hs.waitRun(t, outs[winner].RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	_, run = hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v3", "batchSize": 4})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
}

// SIGKILL of the worker mid-release: after restart the release completes
// with no instance lost or doubled, and the lock is free afterwards.
func TestWorkerKilledMidRelease(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "relkill")
	tenant := hs.tenant + "-relkill"
	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "berth-sample:v2", "batchSize": 2}, &rs))
	require.Eventually(t, func() bool { return countAll(hs.containersOf(t, tenant)) > 4 }, 2*time.Minute, 10*time.Millisecond)
	hs.restartWorkerHard(t)
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v2", "v2", "v2", "v2"}, hs.versions(t, apps))
	require.Equal(t, 4, countAll(hs.containersOf(t, tenant)))
	require.Len(t, hs.portsOfTenant(t, tenant), 4)
	svc = hs.app(t, apps, "shop").Services[0]
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	_, run = hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v3", "batchSize": 4})
	require.Equal(t, berth.RunSucceeded, run.Status, "the lock is free after the killed release: %s", run.Error)
}

// Bad release requests are refused before anything starts.
func TestReleaseRefusals(t *testing.T) {
	hs := needHarness(t)
	_, svc := hs.deployForRelease(t, "relno")
	var e struct {
		Error struct{ Code, Message string }
	}
	for _, img := range []string{"", "UPPER:1", "a b", "x;rm -rf /", "../etc:1"} {
		require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID), map[string]any{"image": img}, &e), img)
	}
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", "/api/v1/services/999999/releases", map[string]any{"image": "berth-sample:v2"}, &e))
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/rollback", svc.ID), map[string]any{"releaseId": 999999}, &e))
	// An image no host has and no registry holds fails before any instance changes.
	_, run := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:nope"})
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "no configured registry")
	require.Contains(t, run.Error, "no instance was changed")
	require.Equal(t, 4, countAll(hs.containersOf(t, hs.tenant+"-relno")))
}

// In an environment that approves releases, a release waits for an
// approver before touching anything; approved it rolls out, rejected it
// ends with the approver's reason and no instance changed.
func TestReleaseWaitsForApproval(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-relok"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "stage", "approveReleases": true, "separateDuties": false, "requireComment": true})
	hs.deployOK(t, apps, "shop", releaseCompose)
	svc := hs.app(t, apps, "shop").Services[0]

	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "berth-sample:v2", "batchSize": 2}, &rs))
	a := hs.waitApproval(t, rs.RunID)
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps), "nothing changes before the approval")
	approver := hs.newPerson(t, tenant+"-ann", tenant, "approver")
	code, msg := approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusBadRequest, code, "this environment requires a comment: %s", msg)
	code, msg = approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "CAB-7 ok"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v2", "v2", "v2", "v2"}, hs.versions(t, apps))
	steps := map[string]store.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	require.Equal(t, berth.StepDone, steps["approval"].State)
	require.Positive(t, steps["approval"].WaitingMs, "the wait for people counts as waiting time")

	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "berth-sample:v3", "batchSize": 2}, &rs))
	a = hs.waitApproval(t, rs.RunID)
	code, msg = approver.post(t, decidePath(a.ID), map[string]string{"decision": "reject", "comment": "freeze week"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run = hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "freeze week")
	require.Contains(t, run.Error, "no instance was changed")
	require.Equal(t, []string{"v2", "v2", "v2", "v2"}, hs.versions(t, apps))
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseFailed, rb.Releases[0].Outcome)
	require.Equal(t, rb.Releases[1].ID, rb.LastGoodID)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version-rejected")
}

// A release whose workflow an operator terminated never recorded its end;
// the next request finds the lock's workflow closed, frees it, and runs.
func TestTerminatedReleaseFreesItsLock(t *testing.T) {
	hs := needHarness(t)
	_, svc := hs.deployForRelease(t, "relterm")
	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "berth-sample:v2", "batchSize": 1}, &rs))
	var rb runBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", rs.RunID), nil, &rb))
	require.NoError(t, hs.tc.TerminateWorkflow(context.Background(), rb.Run.WorkflowID, "", "operator stopped it"))
	var out struct{ RunID uint }
	require.Eventually(t, func() bool {
		return hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
			map[string]any{"image": "berth-sample:v3", "batchSize": 4}, &out) == http.StatusAccepted
	}, time.Minute, 200*time.Millisecond)
	run := hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", rs.RunID), nil, &rb))
	require.Equal(t, berth.RunFailed, rb.Run.Status)
	require.Contains(t, rb.Run.Error, "closed without recording")
}

// A delete in an environment that approves releases waits for an approver
// too (else delete and deploy again would step round the approval):
// rejected, every instance stays and the application is running again;
// approved, it goes.
func TestDeleteWaitsForApproval(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-delok"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "stage", "approveReleases": true, "separateDuties": false, "requireComment": false})
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	approver := hs.newPerson(t, tenant+"-ann", tenant, "approver")

	var del runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/shop", nil, &del))
	a := hs.waitApproval(t, del.RunID)
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)), "nothing stops before the approval")
	code, msg := approver.post(t, decidePath(a.ID), map[string]string{"decision": "reject", "comment": "still in use"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "still in use")
	require.Contains(t, run.Error, "nothing was deleted")
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)))
	require.Equal(t, berth.StateRunning, hs.app(t, apps, "shop").Application.State)

	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/shop", nil, &del))
	a = hs.waitApproval(t, del.RunID)
	code, msg = approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run = hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Zero(t, countAll(hs.containersOf(t, tenant)))
}

// A clone into an environment that approves releases waits for an approver:
// rejected, nothing is deployed there; approved, the clone runs.
func TestCloneIntoAnApprovingEnvironmentWaits(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-clok"
	apps := hs.newEnvOn(t, tenant)
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments",
		map[string]any{"name": "stage", "approveReleases": true, "separateDuties": false, "requireComment": false}, nil))
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments/stage/hosts",
		map[string][]string{"hosts": hs.hostNames()}, nil))
	stage := "/api/v1/tenants/" + tenant + "/environments/stage/applications"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	approver := hs.newPerson(t, tenant+"-ann", tenant, "approver")
	clone := func() uint {
		t.Helper()
		var out runStartedBody
		require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/clone", svc.ID),
			map[string]any{"name": "shop-try", "environment": "stage", "image": "berth-sample:v2"}, &out))
		return out.RunID
	}

	runID := clone()
	a := hs.waitApproval(t, runID)
	require.Equal(t, 1, countAll(hs.containersOf(t, tenant)), "nothing starts before the approval")
	code, msg := approver.post(t, decidePath(a.ID), map[string]string{"decision": "reject", "comment": "not in stage"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "nothing was deployed")
	require.Equal(t, 1, countAll(hs.containersOf(t, tenant)))
	require.Equal(t, berth.StateDeleted, hs.app(t, stage, "shop-try").Application.State)

	runID = clone()
	a = hs.waitApproval(t, runID)
	code, msg = approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run = hs.waitRun(t, runID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Len(t, hs.app(t, stage, "shop-try").Services[0].Instances, 1)
}
