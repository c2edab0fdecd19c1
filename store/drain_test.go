package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
)

func TestBeginEvacuation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run, _, onA := w.startedAPI(t, "shop", 4)
		require.NoError(t, st.DB().Model(app).Update("compose", "services:\n  api:\n    image: registry.local/api:1\n    ports: [\"80\"]\n").Error)
		opts := compose.DefaultOptions()

		_, err := st.BeginEvacuation(ctx, w.hostA.ID, "9/1", "evacuate/host-a/", "ops", opts)
		require.Equal(t, berth.EConflict, berth.ErrorCode(err), "an application that is not running cannot be moved: %v", err)

		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateRunning))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))
		ev, err := st.BeginEvacuation(ctx, w.hostA.ID, "9/1", "evacuate/host-a/", "ops", opts)
		require.NoError(t, err)
		require.False(t, ev.Done)
		require.Empty(t, ev.Busy)
		require.Equal(t, berth.KindEvacuate, ev.Run.Kind)
		require.Equal(t, "evacuate/host-a/acme/dev/shop/api", ev.Run.WorkflowID)
		require.Equal(t, "api", ev.Target.Spec.Name)
		var names []string
		for _, pi := range ev.OnHost {
			names = append(names, pi.Name)
			require.Equal(t, w.hostA.ID, pi.Host.ID)
		}
		require.ElementsMatch(t, onA, names, "only the instances on the host move")
		again, err := st.BeginEvacuation(ctx, w.hostA.ID, "9/1", "evacuate/host-a/", "ops", opts)
		require.NoError(t, err)
		require.Equal(t, ev.Run.ID, again.Run.ID, "a retried call returns the run it opened")
		busy, err := st.BeginEvacuation(ctx, w.hostA.ID, "9/2", "evacuate/host-a/", "ops", opts)
		require.NoError(t, err)
		require.Contains(t, busy.Busy, "evacuate", "the move's own run holds the lock")

		require.NoError(t, st.FinishRun(ctx, ev.Run.ID, berth.RunSucceeded, ""))
		require.NoError(t, st.ReleaseInstances(ctx, onA))
		done, err := st.BeginEvacuation(ctx, w.hostA.ID, "9/2", "evacuate/host-a/", "ops", opts)
		require.NoError(t, err)
		require.True(t, done.Done)
		require.NoError(t, st.SetHostState(ctx, w.hostA.ID, berth.HostDrained))
		h, err := st.Host(ctx, w.hostA.ID)
		require.NoError(t, err)
		require.Equal(t, berth.HostDrained, h.State)
		require.Error(t, st.SetHostState(ctx, w.hostA.ID, "sideways"))
	})
}
