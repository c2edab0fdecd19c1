package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workflows"
)

type reconcileBody struct {
	Hosts    int             `json:"hosts"`
	Findings []berth.Finding `json:"findings"`
}

func (hs *harness) reconcile(t testing.TB) reconcileBody {
	t.Helper()
	var out reconcileBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/reconcile?grace=0s", nil, &out))
	return out
}

func findingsAbout(rb reconcileBody, prefix string) map[string]berth.FindingKind {
	out := map[string]berth.FindingKind{}
	for _, f := range rb.Findings {
		if strings.HasPrefix(f.Target, prefix) {
			out[f.Target] = f.Kind
		}
	}
	return out
}

// A deploy terminated by an operator mid-start leaves containers, planned
// records, ports and a held lock; a container of a run that never recorded
// it is an orphan. The reconciler closes the run, removes what the dead run
// made and releases its ports, removes the orphan, leaves the healthy
// application alone, audits each finding, and finds nothing more on a
// second pass. Its Temporal Schedule exists.
func TestReconcilerRepairsWhatADeadRunLeft(t *testing.T) {
	hs := needHarness(t)
	ctx := context.Background()
	apps := hs.newEnv(t, "recon")
	tenant := hs.tenant + "-recon"
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))

	code, started := hs.deploy(t, apps, "slow", webCompose("web", 2, `READY_AFTER: "10m"`))
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return countAll(hs.containersOf(t, tenant)) == 4 }, 2*time.Minute, 20*time.Millisecond)
	var rb runBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", started.RunID), nil, &rb))
	require.NoError(t, hs.tc.TerminateWorkflow(ctx, rb.Run.WorkflowID, "", "operator stopped it"))

	ghost := tenant + "-dev-ghost-web-1"
	eng := hs.hosts[0].Engine
	_, err := eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: ghost, Config: &container.Config{Image: sampleImage,
		Labels: map[string]string{"berth.uid": "ghost-" + randHex(4), "berth.tenant": tenant, "berth.run": "999999999"}}})
	require.NoError(t, err)

	pass := hs.reconcile(t)
	require.Positive(t, pass.Hosts)
	require.Equal(t, map[string]berth.FindingKind{
		tenant + "-dev-slow-web-1": berth.FindingAbandoned, tenant + "-dev-slow-web-2": berth.FindingAbandoned,
		ghost: berth.FindingOrphan}, findingsAbout(pass, tenant+"-"))
	require.Equal(t, berth.FindingRunClosed, findingsAbout(pass, fmt.Sprintf("run %d", started.RunID))[fmt.Sprintf("run %d", started.RunID)])
	for _, f := range pass.Findings {
		if strings.HasPrefix(f.Target, tenant+"-") {
			require.Empty(t, f.Error, f.Target)
		}
	}

	left := hs.containersOf(t, tenant)
	require.Equal(t, 2, countAll(left))
	for _, names := range left {
		for _, n := range names {
			require.Contains(t, n, "-shop-web-", "only the healthy application stays")
		}
	}
	require.Len(t, hs.portsOfTenant(t, tenant), 2)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "closed without recording")
	require.Equal(t, berth.StateFailed, hs.app(t, apps, "slow").Application.State)
	// The lock is free: the application deploys again.
	hs.deployOK(t, apps, "slow", webCompose("web", 1, ""))

	var audit struct {
		Events []struct{ Actor, Target, Outcome string }
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?actor=reconciler&limit=200", nil, &audit))
	audited := map[string]string{}
	for _, e := range audit.Events {
		audited[e.Target] = e.Outcome
	}
	require.Equal(t, string(berth.FindingOrphan), audited[hs.hosts[0].Name+"/"+ghost])

	require.Empty(t, findingsAbout(hs.reconcile(t), tenant+"-"), "a second pass finds nothing more")
	_, err = hs.tc.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID).Describe(ctx)
	require.NoError(t, err, "the reconciler runs on a Temporal Schedule")
}
