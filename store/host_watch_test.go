package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// startedAPI plans an application's service api with n instances over the
// world's two hosts and records each started; onA names those on host A.
func (w *planWorld) startedAPI(t *testing.T, app string, n int) (*store.Application, *store.Run, *berth.Plan, []string) {
	t.Helper()
	ctx := context.Background()
	a, run := beginDeploy(t, w.st, w.env, app)
	plan, err := w.st.PlanDeploy(ctx, w.request(a, run, svc("api", n, tcp(80))))
	require.NoError(t, err)
	var onA []string
	for _, in := range plan.Instances {
		require.NoError(t, w.st.InstanceStarted(ctx, in.Name, "c-"+in.Name, "10.0.0.9"))
		if in.Host.ID == w.hostA.ID {
			onA = append(onA, in.Name)
		}
	}
	require.NotEmpty(t, onA, "placement spreads over both hosts")
	return a, run, plan, onA
}

func hostIDs(hs []berth.HostRef) []uint {
	out := make([]uint, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

// A host is marked down on its third unanswered probe in a row, once; a
// recovery run holds its lock and is given up on after berth.MaxHeals
// failures within the window; lost instances stop being live but keep
// their ports until closed.
func TestHostDownProbesAndLostInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run, plan, onA := w.startedAPI(t, "shop", 4)
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))

		watched, err := st.WatchedHosts(ctx)
		require.NoError(t, err)
		require.Equal(t, []uint{w.hostA.ID, w.hostB.ID}, hostIDs(watched))

		for i := 1; i <= 2; i++ {
			p, err := st.RecordProbe(ctx, w.hostA.ID, false, "connection refused", 3)
			require.NoError(t, err)
			require.Equal(t, berth.HostProbe{State: berth.HostReady, Failures: i, Live: len(onA)}, *p)
		}
		p, err := st.RecordProbe(ctx, w.hostA.ID, false, "connection refused", 3)
		require.NoError(t, err)
		require.Equal(t, berth.HostProbe{State: berth.HostDown, Failures: 3, WentDown: true, Live: len(onA)}, *p)
		h, err := st.Host(ctx, w.hostA.ID)
		require.NoError(t, err)
		require.Contains(t, h.Reason, "did not answer 3 probes in a row")
		require.Contains(t, h.Reason, "connection refused")
		p, err = st.RecordProbe(ctx, w.hostA.ID, false, "connection refused", 3)
		require.NoError(t, err)
		require.False(t, p.WentDown, "marked down once")
		watched, err = st.WatchedHosts(ctx)
		require.NoError(t, err)
		require.Equal(t, []uint{w.hostA.ID, w.hostB.ID}, hostIDs(watched), "a down host is still probed")

		// The recovery holds the host's lock; a retried call returns its run.
		lock := "provision-host/host-a"
		rec, err := st.BeginHostRun(ctx, w.hostA.ID, berth.KindRecoverHost, "recover-host/host-a", lock, "pass-1/recover")
		require.NoError(t, err)
		require.Equal(t, berth.HealOpened, rec.Verdict)
		again, err := st.BeginHostRun(ctx, w.hostA.ID, berth.KindRecoverHost, "recover-host/host-a", lock, "pass-1/recover")
		require.NoError(t, err)
		require.Equal(t, *rec, *again)
		busy, err := st.BeginHostRun(ctx, w.hostA.ID, berth.KindProvisionHost, lock, lock, "pass-2/check")
		require.NoError(t, err)
		require.Equal(t, berth.HealBusy, busy.Verdict)
		r, err := st.Run(ctx, rec.RunID)
		require.NoError(t, err)
		require.Equal(t, store.HealActor, r.StartedBy)
		require.Equal(t, "host/host-a", r.Subject)

		// Lost instances are not live, and keep their ports until closed.
		require.NoError(t, st.LoseInstances(ctx, onA))
		live, err := st.LiveInstances(ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, live, len(plan.Instances)-len(onA))
		lost, err := st.LostInstances(ctx, w.hostA.ID)
		require.NoError(t, err)
		require.Len(t, lost, len(onA))
		require.Equal(t, onA[0], lost[0].Name)
		require.NotEmpty(t, lost[0].Ports, "a lost instance keeps its ports")
		p, err = st.RecordProbe(ctx, w.hostA.ID, true, "", 3)
		require.NoError(t, err)
		require.Equal(t, berth.HostProbe{State: berth.HostDown, Failures: 4, Live: 0}, *p, "a down host stays down, and watched, until a check marks it ready")
		watched, err = st.WatchedHosts(ctx)
		require.NoError(t, err)
		require.Contains(t, hostIDs(watched), w.hostA.ID, "a down host with lost instances is still probed")
		require.NoError(t, st.CloseLost(ctx, onA))
		lost, err = st.LostInstances(ctx, w.hostA.ID)
		require.NoError(t, err)
		require.Empty(t, lost)
		watched, err = st.WatchedHosts(ctx)
		require.NoError(t, err)
		require.Contains(t, hostIDs(watched), w.hostA.ID, "a host self-healing marked down is watched until a check finds it ready")
		require.NoError(t, st.SetHostFacts(ctx, w.hostA.ID, berth.HostFacts{State: berth.HostDown, Reason: "a person's check failed"}))
		watched, err = st.WatchedHosts(ctx)
		require.NoError(t, err)
		require.Contains(t, hostIDs(watched), w.hostA.ID, "a failed check leaves the count")

		// A recovery that keeps failing is given up on, said once.
		require.NoError(t, st.FinishRun(ctx, rec.RunID, berth.RunFailed, "no room"))
		for i := 2; i <= berth.MaxHeals; i++ {
			rec, err := st.BeginHostRun(ctx, w.hostA.ID, berth.KindRecoverHost, "recover-host/host-a", lock, fmt.Sprintf("pass-%d/recover", 10+i))
			require.NoError(t, err)
			require.Equal(t, berth.HealOpened, rec.Verdict)
			require.NoError(t, st.FinishRun(ctx, rec.RunID, berth.RunFailed, "no room"))
		}
		up, err := st.BeginHostRun(ctx, w.hostA.ID, berth.KindRecoverHost, "recover-host/host-a", lock, "pass-20/recover")
		require.NoError(t, err)
		require.Equal(t, berth.HealGaveUp, up.Verdict)
		require.NoError(t, st.RecordFindings(ctx, []berth.Finding{{Kind: berth.FindingHealGaveUp, Host: "host-a", Target: "host", Detail: "x"}}))
		up, err = st.BeginHostRun(ctx, w.hostA.ID, berth.KindRecoverHost, "recover-host/host-a", lock, "pass-21/recover")
		require.NoError(t, err)
		require.Equal(t, berth.HealGivenUp, up.Verdict)

		// A check that finds the host ready resets the count.
		_, err = st.RecordProbe(ctx, w.hostB.ID, false, "timeout", 3)
		require.NoError(t, err)
		require.NoError(t, st.SetHostFacts(ctx, w.hostB.ID, berth.HostFacts{State: berth.HostReady}))
		h, err = st.Host(ctx, w.hostB.ID)
		require.NoError(t, err)
		require.Zero(t, h.ProbeFailures)
	})
}
