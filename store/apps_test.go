package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func requireExistingApp(t *testing.T, err error) *store.Application {
	t.Helper()
	ce := requireConflict(t, err)
	app, ok := ce.Existing.(*store.Application)
	require.True(t, ok, "Existing is %T", ce.Existing)
	return app
}

func TestBeginDeploy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		key := appKey(env.ID, "shop")

		run := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-1", TenantID: env.TenantID, EnvironmentID: env.ID, Subject: "acme/dev/shop", StartedBy: "alice"}
		app, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {web: {image: nginx}}", "hash-1", run, key)
		require.NoError(t, err)
		require.NotZero(t, app.ID)
		require.Equal(t, berth.StateDeploying, app.State)
		require.Equal(t, run.ID, app.LastRunID)
		require.Equal(t, app.ID, run.ApplicationID)

		stored, err := st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateDeploying, stored.State)
		require.Equal(t, run.ID, stored.LastRunID)
		require.Equal(t, "hash-1", stored.SpecHash)
		require.Equal(t, "services: {web: {image: nginx}}", stored.Compose)
		require.Nil(t, stored.DeletedAt)

		r, err := st.Run(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunPending, r.Status)
		require.Equal(t, app.ID, r.ApplicationID)
		require.NotNil(t, r.ActiveKey)
		require.Equal(t, key, *r.ActiveKey)

		byName, err := st.ApplicationByName(ctx, env.ID, "shop")
		require.NoError(t, err)
		require.Equal(t, app.ID, byName.ID)
		_, err = st.ApplicationByName(ctx, env.ID, "cart")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = st.Application(ctx, 987654)
		require.ErrorIs(t, err, store.ErrNotFound)

		// A live application refuses a second deploy, whatever its state of liveness.
		for _, state := range []berth.State{berth.StateDeploying, berth.StateRunning} {
			require.NoError(t, st.SetApplicationState(ctx, app.ID, state))
			again := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-x", EnvironmentID: env.ID, StartedBy: "bob"}
			_, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {}", "hash-x", again, key)
			existing := requireExistingApp(t, err)
			require.Equal(t, app.ID, existing.ID)
			require.Equal(t, state, existing.State)
			require.Equal(t, run.ID, existing.LastRunID)
		}
		require.EqualValues(t, 1, countRows(t, st, &store.Run{}, ""), "a refused deploy opens no run")
		stored, err = st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, "hash-1", stored.SpecHash, "a refused deploy changes nothing")

		// After a failure the same row is revived, keeping its id (and its history).
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateFailed))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "pull failed"))
		run2 := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-2", EnvironmentID: env.ID, StartedBy: "bob"}
		revived, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {web: {image: nginx:2}}", "hash-2", run2, key)
		require.NoError(t, err)
		require.Equal(t, app.ID, revived.ID)
		require.Equal(t, berth.StateDeploying, revived.State)
		stored, err = st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, run2.ID, stored.LastRunID)
		require.Equal(t, "hash-2", stored.SpecHash)
		require.Equal(t, berth.StateDeploying, stored.State)

		// And after a delete, with DeletedAt cleared.
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateDeleted))
		stored, err = st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.NotNil(t, stored.DeletedAt)
		require.NoError(t, st.FinishRun(ctx, run2.ID, berth.RunSucceeded, ""))
		run3 := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-3", EnvironmentID: env.ID, StartedBy: "carol"}
		revived, err = st.BeginDeploy(ctx, env.ID, "shop", "services: {}", "hash-3", run3, key)
		require.NoError(t, err)
		require.Equal(t, app.ID, revived.ID)
		stored, err = st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateDeploying, stored.State)
		require.Nil(t, stored.DeletedAt)
		require.Equal(t, run3.ID, stored.LastRunID)

		apps, err := st.Applications(ctx, env.ID)
		require.NoError(t, err)
		require.Len(t, apps, 1, "reviving must not create a second row")
	})
}

func TestBeginDeployWhileRunStillActive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		app, run := beginDeploy(t, st, env, "shop")

		// The app says failed but its workflow has not finished: the active
		// key, not the state, is what stops a second workflow.
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateFailed))
		again := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-again", EnvironmentID: env.ID}
		_, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {}", "hash-new", again, appKey(env.ID, "shop"))
		requireConflict(t, err)

		// The app row was saved before the run insert failed; the
		// transaction must have undone that.
		stored, err := st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateFailed, stored.State)
		require.Equal(t, "hash-shop", stored.SpecHash)
		require.Equal(t, run.ID, stored.LastRunID)
		require.EqualValues(t, 1, countRows(t, st, &store.Run{}, ""))
	})
}

func TestApplicationsPerEnvironment(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		dev := newEnv(t, st, "acme", "dev")
		prod := newEnv(t, st, "acme", "prod")
		shopDev, _ := beginDeploy(t, st, dev, "shop")
		cartDev, _ := beginDeploy(t, st, dev, "cart")
		// The same name in another environment is another application.
		shopProd, _ := beginDeploy(t, st, prod, "shop")
		require.NotEqual(t, shopDev.ID, shopProd.ID)

		apps, err := st.Applications(ctx, dev.ID)
		require.NoError(t, err)
		require.Len(t, apps, 2)
		require.Equal(t, shopDev.ID, apps[0].ID)
		require.Equal(t, cartDev.ID, apps[1].ID)

		all, err := st.Applications(ctx, 0)
		require.NoError(t, err)
		require.Len(t, all, 3)
	})
}

func TestBeginDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		key := appKey(env.ID, "shop")
		app, deployRun := beginDeploy(t, st, env, "shop")

		// The deploy still holds the application's lock.
		del := &store.Run{Kind: "delete", WorkflowID: "delete-shop-1", EnvironmentID: env.ID, StartedBy: "bob"}
		requireConflict(t, st.BeginDelete(ctx, app.ID, del, key))
		stored, err := st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateDeploying, stored.State, "a refused delete changes nothing")
		require.Equal(t, deployRun.ID, stored.LastRunID)
		require.EqualValues(t, 1, countRows(t, st, &store.Run{}, ""))

		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))
		require.NoError(t, st.FinishRun(ctx, deployRun.ID, berth.RunSucceeded, ""))

		del = &store.Run{Kind: "delete", WorkflowID: "delete-shop-2", EnvironmentID: env.ID, StartedBy: "bob"}
		require.NoError(t, st.BeginDelete(ctx, app.ID, del, key))
		require.Equal(t, app.ID, del.ApplicationID)
		stored, err = st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateDeleting, stored.State)
		require.Equal(t, del.ID, stored.LastRunID)
		r, err := st.Run(ctx, del.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunPending, r.Status)
		require.Equal(t, key, *r.ActiveKey)

		// A deploy cannot overtake a delete in progress.
		dep := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-late", EnvironmentID: env.ID}
		_, err = st.BeginDeploy(ctx, env.ID, "shop", "services: {}", "hash-late", dep, key)
		existing := requireExistingApp(t, err)
		require.Equal(t, berth.StateDeleting, existing.State)

		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateDeleted))
		require.NoError(t, st.FinishRun(ctx, del.ID, berth.RunSucceeded, ""))

		again := &store.Run{Kind: "delete", WorkflowID: "delete-shop-3", EnvironmentID: env.ID}
		existing = requireExistingApp(t, st.BeginDelete(ctx, app.ID, again, key))
		require.Equal(t, app.ID, existing.ID)
		require.Equal(t, berth.StateDeleted, existing.State)
		require.Zero(t, again.ID, "no run is opened for an already deleted application")

		err = st.BeginDelete(ctx, 987654, &store.Run{Kind: "delete"}, "app:nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestBeginDeleteOfFailedApp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		app, run := beginDeploy(t, st, env, "shop")
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateFailed))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "boom"))

		del := &store.Run{Kind: "delete", WorkflowID: "delete-shop", EnvironmentID: env.ID}
		require.NoError(t, st.BeginDelete(ctx, app.ID, del, appKey(env.ID, "shop")))
		stored, err := st.Application(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, berth.StateDeleting, stored.State)
	})
}
