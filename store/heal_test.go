package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestBeginHeal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		plan, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 2, tcp(80))))
		require.NoError(t, err)
		names := instanceNames(plan)
		for _, n := range names {
			require.NoError(t, st.InstanceStarted(ctx, n, "c-"+n, "10.0.0.9"))
		}
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))
		name := names[0]
		long := "01a24d1c-4cd0-7c0e-a096-82337ae7f275/" // a pass's run id

		hs, err := st.BeginHeal(ctx, name, "h1", "heal/"+name, long+name)
		require.NoError(t, err)
		require.Equal(t, berth.HealOpened, hs.Verdict)
		require.NotZero(t, hs.RunID)
		require.Equal(t, "acme/dev/shop", hs.App)
		require.Equal(t, app.ID, hs.ApplicationID)
		again, err := st.BeginHeal(ctx, name, "h1", "heal/"+name, long+name)
		require.NoError(t, err)
		require.Equal(t, *hs, *again, "a retried call returns the run it opened")

		// The heal run holds the application's lock: the other instance waits.
		busy, err := st.BeginHeal(ctx, names[1], "h1", "heal/"+names[1], "pass-1/"+names[1])
		require.NoError(t, err)
		require.Equal(t, berth.HealBusy, busy.Verdict)

		// Healed up to the bound, then given up on, said once.
		require.NoError(t, st.FinishRun(ctx, hs.RunID, berth.RunSucceeded, ""))
		for i := 2; i <= berth.MaxHeals; i++ {
			h, err := st.BeginHeal(ctx, name, "h1", "heal/"+name, "pass-"+string(rune('0'+i))+"/"+name)
			require.NoError(t, err)
			require.Equal(t, berth.HealOpened, h.Verdict)
			require.Equal(t, i-1, h.Tries)
			require.NoError(t, st.FinishRun(ctx, h.RunID, berth.RunSucceeded, ""))
		}
		up, err := st.BeginHeal(ctx, name, "h1", "heal/"+name, "pass-x/"+name)
		require.NoError(t, err)
		require.Equal(t, berth.HealGaveUp, up.Verdict)
		require.NoError(t, st.RecordFindings(ctx, []berth.Finding{{Kind: berth.FindingHealGaveUp, Host: "h1", Target: name, Detail: "x"}}))
		up, err = st.BeginHeal(ctx, name, "h1", "heal/"+name, "pass-y/"+name)
		require.NoError(t, err)
		require.Equal(t, berth.HealGivenUp, up.Verdict)

		// A stopped or removed instance is not healed.
		require.NoError(t, st.SetInstanceState(ctx, names[1], berth.StateStopped))
		h, err := st.BeginHeal(ctx, names[1], "h1", "heal/"+names[1], "pass-z/"+names[1])
		require.NoError(t, err)
		require.Equal(t, berth.HealBusy, h.Verdict)
		require.NoError(t, st.ReleaseInstances(ctx, names[1:]))
		h, err = st.BeginHeal(ctx, names[1], "h1", "heal/"+names[1], "pass-w/"+names[1])
		require.NoError(t, err)
		require.Equal(t, berth.HealBusy, h.Verdict)
	})
}

// A running service with fewer live instances than its replicas is short;
// its heal run takes the application's lock and the same backoff.
func TestShortServicesAndServiceHeal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run, plan, _ := w.startedAPI(t, "shop", 2)
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))
		require.NoError(t, st.DB().Model(&store.Service{}).Where("application_id = ?", app.ID).Updates(map[string]any{"state": berth.StateRunning, "replicas": 2}).Error)
		short, err := st.ShortServices(ctx)
		require.NoError(t, err)
		require.Empty(t, short)
		require.NoError(t, st.ReleaseInstances(ctx, instanceNames(plan)[:1]))
		short, err = st.ShortServices(ctx)
		require.NoError(t, err)
		require.Len(t, short, 1)
		require.Equal(t, 1, short[0].Live)
		require.Equal(t, 2, short[0].Replicas)

		hs, err := st.BeginServiceHeal(ctx, short[0].ServiceID, "heal-scale/1", "pass-1/top-up/1")
		require.NoError(t, err)
		require.Equal(t, berth.HealOpened, hs.Verdict)
		require.Equal(t, "acme/dev/shop/api", hs.Subject)
		again, err := st.BeginServiceHeal(ctx, short[0].ServiceID, "heal-scale/1", "pass-1/top-up/1")
		require.NoError(t, err)
		require.Equal(t, *hs, *again, "a retried call returns the run it opened")
		busy, err := st.BeginServiceHeal(ctx, short[0].ServiceID, "heal-scale/1", "pass-2/top-up/1")
		require.NoError(t, err)
		require.Equal(t, berth.HealBusy, busy.Verdict, "the first heal run holds the application's lock")
	})
}
