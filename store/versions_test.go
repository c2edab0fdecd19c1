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
