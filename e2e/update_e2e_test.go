package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// updateCompose is shop with web at an APP_VERSION the sample app answers
// /version with, plus the given extra services' YAML.
func updateCompose(version string, webEnv, extra string) []byte {
	return []byte(fmt.Sprintf(`services:
  web:
    image: %s
    deploy: {replicas: 4}
    ports: ["8080"]
    environment: {LISTEN: ":8080", APP_VERSION: %q%s}
    x-berth: {health: {http: /healthz}}
%s`, sampleImage, version, webEnv, extra))
}

// sidecar is a one-instance service of the sample app, optionally
// depending on web.
func sidecar(name string, dependsOnWeb bool) string {
	dep := ""
	if dependsOnWeb {
		dep = "\n    depends_on: [web]"
	}
	return fmt.Sprintf(`  %s:
    image: %s
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}%s
`, name, sampleImage, dep)
}

type updatePlanBody struct {
	RunID       uint                    `json:"runId"`
	DryRun      bool                    `json:"dryRun"`
	FromVersion int                     `json:"fromVersion"`
	Version     int                     `json:"version"`
	Changes     []compose.ServiceChange `json:"changes"`
	Diff        string                  `json:"diff"`
	Message     string                  `json:"message"`
}

func (hs *harness) update(t testing.TB, apps, app string, body []byte, query string, wantCode int) updatePlanBody {
	t.Helper()
	var out updatePlanBody
	code := hs.api(t, "PUT", apps+"/"+app+"?batchSize=2"+query, "application/yaml", body, &out)
	require.Equal(t, wantCode, code, "%+v", out)
	return out
}

func changeKinds(p updatePlanBody) map[string]compose.ChangeKind {
	out := map[string]compose.ChangeKind{}
	for _, c := range p.Changes {
		out[c.Service] = c.Kind
	}
	return out
}

// serviceVersions reads /version from every live instance of one service.
func (hs *harness) serviceVersions(t testing.TB, apps, service string) []string {
	t.Helper()
	var out []string
	for _, svc := range hs.app(t, apps, "shop").Services {
		if svc.Name != service {
			continue
		}
		for _, in := range svc.Instances {
			p := in.Ports[0]
			code, v := httpGet(t, fmt.Sprintf("http://%s:%d/version", p.HostIP, p.HostPort))
			require.Equal(t, http.StatusOK, code)
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func serviceNames(ab appBody) []string {
	var out []string
	for _, s := range ab.Services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// A running application changes in one update while a load generator goes
// through HAProxy: web's environment changes on its 4 instances across both
// hosts (rolling, batches of 2), a service that depends on web is added and
// another is removed. No request fails; each web container runs the new
// environment; the removed service leaves no container, port, pool,
// opening or CMDB item; the application has both versions. A dry run
// before it changed nothing.
func TestUpdateUnderLoad(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "upd")
	tenant := hs.tenant + "-upd"
	v1 := updateCompose("one", "", sidecar("old", false))
	hs.deployOK(t, apps, "shop", v1)
	before := hs.app(t, apps, "shop")
	var web, old uint
	for _, s := range before.Services {
		switch s.Name {
		case "web":
			web = s.ID
		case "old":
			old = s.ID
		}
	}
	require.Equal(t, []string{"one", "one", "one", "one"}, hs.serviceVersions(t, apps, "web"))
	oldPool := hs.pool(t, old)
	require.NotEmpty(t, oldPool.Pool.Servers)

	v2 := updateCompose("two", "", sidecar("worker", true))
	// Deploying another file over a running application is refused, and
	// says how to change it.
	code, _ := hs.deploy(t, apps, "shop", v2)
	require.Equal(t, http.StatusConflict, code)

	dry := hs.update(t, apps, "shop", v2, "&dryRun=true", http.StatusOK)
	require.True(t, dry.DryRun)
	require.Zero(t, dry.RunID)
	require.Equal(t, map[string]compose.ChangeKind{"web": compose.ChangeSpec, "worker": compose.ChangeAdd, "old": compose.ChangeRemove}, changeKinds(dry))
	require.Contains(t, dry.Diff, `+    environment: {LISTEN: ":8080", APP_VERSION: "two"}`)
	require.Equal(t, 5, countAll(hs.containersOf(t, tenant)), "a dry run changes nothing")
	require.Equal(t, []string{"one", "one", "one", "one"}, hs.serviceVersions(t, apps, "web"))

	l := startLoad(t, "http://"+hs.pool(t, web).Backend.ListenAddr+"/version")
	started := hs.update(t, apps, "shop", v2, "", http.StatusAccepted)
	run := hs.waitRun(t, started.RunID)
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during the update: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Greater(t, ok, int64(50))
	require.Equal(t, 1, started.FromVersion)
	require.Equal(t, 2, started.Version)
	// Each service's change is a step, in plan order; the load balancer,
	// firewall and CMDB steps of new instances run inside them.
	var steps []string
	for _, s := range run.Steps {
		require.Equal(t, berth.StepDone, s.State, s.Name)
		if strings.HasPrefix(s.Name, "update ") || strings.HasPrefix(s.Name, "add ") || strings.HasPrefix(s.Name, "remove ") {
			steps = append(steps, s.Name)
		}
	}
	require.Equal(t, []string{"update web", "add worker (1)", "remove old"}, steps)

	after := hs.app(t, apps, "shop")
	require.Equal(t, []string{"web", "worker"}, serviceNames(after))
	require.Equal(t, []string{"two", "two", "two", "two"}, hs.serviceVersions(t, apps, "web"))
	hostsOfWeb := map[string]bool{}
	for _, s := range after.Services {
		if s.Name != "web" {
			continue
		}
		require.Len(t, s.Instances, 4)
		requirePoolMatches(t, hs.pool(t, s.ID), s.Instances)
		for _, in := range s.Instances {
			hostsOfWeb[in.Host] = true
			insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
			require.NoError(t, err)
			require.Contains(t, insp.Container.Config.Env, "APP_VERSION=two", in.Name)
		}
	}
	require.Len(t, hostsOfWeb, 2, "web runs on both hosts")

	// The removed service left nothing behind.
	for _, names := range hs.containersOf(t, tenant) {
		for _, n := range names {
			require.NotContains(t, n, "-shop-old-")
		}
	}
	require.Equal(t, 5, countAll(hs.containersOf(t, tenant)), "4 web and 1 worker")
	require.Len(t, hs.portsOfTenant(t, tenant), 5)
	var opens struct{ Openings []berth.FirewallOpening }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/firewall/openings?state=open", nil, &opens))
	for _, o := range opens.Openings {
		require.NotContains(t, o.InstanceName, tenant+"-dev-shop-old-")
	}
	require.Empty(t, hs.cmdb.IDs("instance:"+tenant+"-dev-shop-old-"))
	require.Empty(t, hs.cmdb.IDs("service:"+tenant+"/dev/shop/old"))
	require.Len(t, hs.cmdb.IDs("service:"+tenant+"/dev/shop/worker"), 1)
	var pb poolBody
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/pool", old), nil, &pb))

	var vs struct {
		Versions []struct {
			Number int `json:"number"`
		} `json:"versions"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", apps+"/shop/versions", nil, &vs))
	require.Len(t, vs.Versions, 2)
	require.Equal(t, 2, vs.Versions[0].Number)

	// The same file again changes nothing and starts no run.
	again := hs.update(t, apps, "shop", v2, "", http.StatusOK)
	require.Zero(t, again.RunID)
	require.NotEmpty(t, again.Message)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "update-application")
}

// An update whose new web never turns healthy in batch 2 goes back to
// version 1: every web instance answers "one" again, the service it added
// is gone, and the application's spec is the one it had.
func TestFailedUpdateRollsBack(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "updbad")
	tenant := hs.tenant + "-updbad"
	hs.deployOK(t, apps, "shop", updateCompose("one", "", ""))
	before := hs.app(t, apps, "shop")

	// Batch 1 makes web-5 and web-6; batch 2's web-7 and web-8 never pass.
	bad := updateCompose("two", `, FAIL_HEALTH_FOR: "-7,-8"`, sidecar("extra", false))
	started := hs.update(t, apps, "shop", bad, "", http.StatusAccepted)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "rolled back to version 1")
	steps := stepStates(run)
	require.Equal(t, berth.StepDone, steps["add extra (1)"])
	require.Equal(t, berth.StepFailed, steps["update web"])
	require.Equal(t, berth.StepDone, steps["roll back to version 1"])

	after := hs.app(t, apps, "shop")
	require.Equal(t, []string{"web"}, serviceNames(after))
	require.Equal(t, before.Application.SpecHash, after.Application.SpecHash)
	require.Equal(t, berth.StateRunning, after.Application.State)
	require.Equal(t, []string{"one", "one", "one", "one"}, hs.serviceVersions(t, apps, "web"))
	requirePoolMatches(t, hs.pool(t, after.Services[0].ID), after.Services[0].Instances)
	require.Equal(t, 4, countAll(hs.containersOf(t, tenant)))
	require.Len(t, hs.portsOfTenant(t, tenant), 4)
	require.Empty(t, hs.cmdb.IDs("instance:"+tenant+"-dev-shop-extra-"))
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "update-application-rolled-back")
}

// An update in an environment that approves releases waits for an
// approver, whose approval shows the plan and the file's diff; nothing
// changes before the decision.
func TestUpdateWaitsForApprovalWithTheDiff(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-updok"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "stage", "approveReleases": true, "separateDuties": false, "requireComment": false})
	hs.deployOK(t, apps, "shop", updateCompose("one", "", ""))
	started := hs.update(t, apps, "shop", updateCompose("two", "", ""), "", http.StatusAccepted)
	a := hs.waitApproval(t, started.RunID)
	var list struct {
		Approvals []struct {
			ID      uint   `json:"id"`
			Summary string `json:"summary"`
		}
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/approvals?state=pending", nil, &list))
	summary := ""
	for _, x := range list.Approvals {
		if x.ID == a.ID {
			summary = x.Summary
		}
	}
	require.Contains(t, summary, "version 1 → 2")
	require.Contains(t, summary, "web: spec (env), 4 instances replaced")
	require.Contains(t, summary, `-    environment: {LISTEN: ":8080", APP_VERSION: "one"}`)
	require.Contains(t, summary, `+    environment: {LISTEN: ":8080", APP_VERSION: "two"}`)
	require.Equal(t, []string{"one", "one", "one", "one"}, hs.serviceVersions(t, apps, "web"), "nothing changes before the approval")

	approver := hs.newPerson(t, tenant+"-ann", tenant, "approver")
	code, msg := approver.post(t, decidePath(a.ID), map[string]string{"decision": "approve"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"two", "two", "two", "two"}, hs.serviceVersions(t, apps, "web"))
}

// Updates refuse what they cannot do, before any change: a hostile file,
// an application that does not exist, an unknown version.
func TestUpdateRefusals(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "updno")
	hs.deployOK(t, apps, "shop", updateCompose("one", "", ""))
	var e struct{ Error struct{ Message string } }
	code := hs.api(t, "PUT", apps+"/shop", "application/yaml", []byte("services:\n  web:\n    image: x\n    privileged: true\n"), &e)
	require.Equal(t, http.StatusBadRequest, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "privileged")
	require.Equal(t, http.StatusNotFound, hs.api(t, "PUT", apps+"/nope", "application/yaml", updateCompose("two", "", ""), &e))
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", apps+"/shop/versions", map[string]int{"version": 9}, &e))
	require.Contains(t, e.Error.Message, "version 9")
}

// An update that changes a service's image is a release of it: the
// service's release history names the image, the run and the outcome, and
// the new release is the current and last-good one (what a later rollback
// starts from).
func TestUpdatedImageIsARelease(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "updimg")
	v1 := webCompose("web", 1, "")
	hs.deployOK(t, apps, "shop", v1)
	svc := hs.app(t, apps, "shop").Services[0]
	before := hs.releases(t, svc.ID)

	v2 := []byte(strings.Replace(string(v1), sampleImage, "berth-sample:v2", 1))
	started := hs.update(t, apps, "shop", v2, "", http.StatusAccepted)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	rb := hs.releases(t, svc.ID)
	require.Len(t, rb.Releases, len(before.Releases)+1)
	rel := rb.Releases[0]
	require.Equal(t, "berth-sample:v2", rel.Image)
	require.Equal(t, "v2", rel.Version)
	require.Equal(t, run.ID, rel.RunID)
	require.Equal(t, berth.ReleaseSucceeded, rel.Outcome)
	require.Equal(t, berth.StrategyRolling, rel.Strategy)
	require.NotNil(t, rel.FinishedAt)
	require.Equal(t, rel.ID, rb.CurrentID)
	require.Equal(t, rel.ID, rb.LastGoodID)
	require.Equal(t, "berth-sample:v2", hs.app(t, apps, "shop").Services[0].Image)
}

// SIGKILL of the worker mid-update: the run completes after the restart
// with nothing lost or doubled, and the lock is free afterwards.
func TestWorkerKilledMidUpdate(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	apps := hs.newEnv(t, "updkill")
	tenant := hs.tenant + "-updkill"
	hs.deployOK(t, apps, "shop", updateCompose("one", "", ""))
	started := hs.update(t, apps, "shop", updateCompose("two", "", sidecar("worker", true)), "", http.StatusAccepted)
	require.Eventually(t, func() bool { return countAll(hs.containersOf(t, tenant)) > 4 }, 2*time.Minute, 10*time.Millisecond)
	hs.restartWorkerHard(t)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"two", "two", "two", "two"}, hs.serviceVersions(t, apps, "web"))
	require.Equal(t, 5, countAll(hs.containersOf(t, tenant)), "4 web and 1 worker, none doubled")
	require.Len(t, hs.portsOfTenant(t, tenant), 5)
	for _, s := range hs.app(t, apps, "shop").Services {
		requirePoolMatches(t, hs.pool(t, s.ID), s.Instances)
	}
	again := hs.update(t, apps, "shop", updateCompose("three", "", sidecar("worker", true)), "", http.StatusAccepted)
	run = hs.waitRun(t, again.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, "the lock is free after the killed update: %s", run.Error)
}
