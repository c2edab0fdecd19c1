package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestEveryAcceptedComposeIsAVersion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		key := appKey(env.ID, "shop")
		deploy := func(who, compose string) *store.Application {
			t.Helper()
			run := &store.Run{Kind: "deploy", WorkflowID: "deploy-" + who, EnvironmentID: env.ID, StartedBy: who}
			app, err := st.BeginDeploy(ctx, env.ID, "shop", compose, "h-"+who, run, key)
			require.NoError(t, err)
			require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "test"))
			require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateFailed))
			return app
		}
		app := deploy("alice", "v: 1\n")
		deploy("bob", "v: 2\n")
		deploy("carol", "v: 2\n") // the same file again: no new version

		vs, err := st.AppVersions(ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, vs, 2)
		require.Equal(t, 2, vs[0].Number)
		require.Equal(t, "bob", vs[0].CreatedBy)
		require.Equal(t, "v: 2\n", vs[0].Compose)
		require.NotZero(t, vs[0].RunID)
		require.Equal(t, 1, vs[1].Number)
		require.Equal(t, "alice", vs[1].CreatedBy)

		v1, err := st.AppVersion(ctx, app.ID, 1)
		require.NoError(t, err)
		require.Equal(t, "v: 1\n", v1.Compose)
		_, err = st.AppVersion(ctx, app.ID, 9)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// An update opens its run under the application's lock and records its file
// as a version in one go; a second update while it runs is refused and
// leaves no version. Finishing moves the application to the version and
// each service to its setting; finishing again changes nothing.
func TestUpdateVersionsAndTheirOutcome(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev", newHost(t, st, "h1", "10.0.0.1", true))
		key := appKey(env.ID, "shop")
		run := &store.Run{Kind: "deploy", WorkflowID: "deploy-1", EnvironmentID: env.ID, StartedBy: "alice"}
		app, err := st.BeginDeploy(ctx, env.ID, "shop", "v: 1\n", "h1", run, key)
		require.NoError(t, err)
		_, err = st.PlanDeploy(ctx, berth.PlanRequest{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: env.ID, NamePrefix: "acme-dev-shop",
			PortMin: 20000, PortMax: 20100, Services: []berth.ServiceRequest{{Name: "web", Image: "img:1", Replicas: 1}, {Name: "old", Image: "old:1", Replicas: 1}}})
		require.NoError(t, err)
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))

		web, err := st.ServiceNamed(ctx, app.ID, "web")
		require.NoError(t, err)
		base, err := st.Baseline(ctx, web, "alice")
		require.NoError(t, err)
		up := &store.Run{Kind: berth.KindUpdate, WorkflowID: "update-1", EnvironmentID: env.ID, StartedBy: "bob"}
		n, err := st.BeginUpdate(ctx, app.ID, "v: 2\n", "h2", up, key,
			[]store.Release{{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "2", Image: "img:2", Strategy: berth.StrategyRolling, PreviousID: base.ID}})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		_, err = st.BeginUpdate(ctx, app.ID, "v: 3\n", "h3", &store.Run{Kind: berth.KindUpdate, WorkflowID: "update-2", EnvironmentID: env.ID}, key, nil)
		var conflict *store.ConflictError
		require.ErrorAs(t, err, &conflict)
		vs, err := st.AppVersions(ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, vs, 2, "a refused update records no version")
		from, err := st.VersionOf(ctx, app.ID, "v: 1\n")
		require.NoError(t, err)
		require.Equal(t, 1, from)

		// An added service's row exists once its instances are planned.
		_, err = st.PlanDeploy(ctx, berth.PlanRequest{RunID: up.ID, Key: "add", ApplicationID: app.ID, EnvironmentID: env.ID, NamePrefix: "acme-dev-shop",
			PortMin: 20000, PortMax: 20100, Services: []berth.ServiceRequest{{Name: "worker", Image: "w:1", Replicas: 1, Add: true}}})
		require.NoError(t, err)
		settings := []berth.ServiceSetting{{Name: "web", Image: "img:2", Replicas: 3}, {Name: "worker", Image: "w:1", Replicas: 1}, {Name: "old", Removed: true}}
		for range 2 {
			require.NoError(t, st.FinishUpdate(ctx, app.ID, n, settings))
		}
		got, err := st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, "v: 2\n", got.Compose)
		require.Equal(t, "h2", got.SpecHash)
		views, err := st.Services(ctx, app.ID)
		require.NoError(t, err)
		byName := map[string]store.ServiceView{}
		for _, v := range views {
			byName[v.Name] = v
		}
		require.Len(t, byName, 2, "a removed service is no longer listed")
		require.Equal(t, "img:2", byName["web"].Image)
		require.Equal(t, 3, byName["web"].Replicas)
		require.Equal(t, berth.StateRunning, byName["worker"].State)

		// The update's image change is a release: running while the run
		// runs, succeeded and current once it ends well.
		rels, sr, err := st.Releases(ctx, web.ID)
		require.NoError(t, err)
		require.Equal(t, berth.ReleaseRunning, rels[0].Outcome)
		require.Equal(t, up.ID, rels[0].RunID)
		require.Equal(t, base.ID, sr.CurrentID)
		require.NoError(t, st.FinishRun(ctx, up.ID, berth.RunSucceeded, ""))
		rels, sr, err = st.Releases(ctx, web.ID)
		require.NoError(t, err)
		require.Equal(t, berth.ReleaseSucceeded, rels[0].Outcome)
		require.Equal(t, rels[0].ID, sr.CurrentID)
		require.Equal(t, rels[0].ID, sr.LastGoodID)

		// A failed update's release fails; the service keeps its image and
		// its last-good release.
		down := &store.Run{Kind: berth.KindUpdate, WorkflowID: "update-3", EnvironmentID: env.ID, StartedBy: "bob"}
		_, err = st.BeginUpdate(ctx, app.ID, "v: 4\n", "h4", down, key,
			[]store.Release{{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "3", Image: "img:3", Strategy: berth.StrategyRolling, PreviousID: sr.CurrentID}})
		require.NoError(t, err)
		require.NoError(t, st.FinishRun(ctx, down.ID, berth.RunFailed, "batch 1 unhealthy"))
		require.NoError(t, st.FinishRun(ctx, down.ID, berth.RunSucceeded, ""), "finishing twice keeps the first outcome")
		rels, sr2, err := st.Releases(ctx, web.ID)
		require.NoError(t, err)
		require.Equal(t, berth.ReleaseFailed, rels[0].Outcome)
		require.Equal(t, "batch 1 unhealthy", rels[0].Reason)
		require.Equal(t, sr.LastGoodID, sr2.LastGoodID)
		after, err := st.ServiceNamed(ctx, app.ID, "web")
		require.NoError(t, err)
		require.Equal(t, "img:2", after.Image)

		// A run whose workflow closed without finishing it (terminated, or
		// timed out) is abandoned by the reconciler: its release fails too.
		dead := &store.Run{Kind: berth.KindUpdate, WorkflowID: "update-4", EnvironmentID: env.ID, StartedBy: "bob"}
		_, err = st.BeginUpdate(ctx, app.ID, "v: 5\n", "h5", dead, key,
			[]store.Release{{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "4", Image: "img:4", Strategy: berth.StrategyRolling, PreviousID: sr2.CurrentID}})
		require.NoError(t, err)
		require.NoError(t, st.AbandonRun(ctx, dead.ID))
		rels, _, err = st.Releases(ctx, web.ID)
		require.NoError(t, err)
		require.Equal(t, dead.ID, rels[0].RunID)
		require.Equal(t, berth.ReleaseFailed, rels[0].Outcome)
		require.NotNil(t, rels[0].FinishedAt)
	})
}
