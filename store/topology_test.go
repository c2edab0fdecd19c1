package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// The map's data: the tree of the tenants asked for, live instances
// counted by host and state, only expanded services listed one by one.
func TestTopology(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		_, _, plan, _ := w.startedAPI(t, "shop", 3)
		require.NoError(t, st.SetInstanceState(ctx, plan.Instances[0].Name, berth.StateStopped))

		topo, err := st.Topology(ctx, nil, nil)
		require.NoError(t, err)
		require.Len(t, topo.Tenants, 1)
		require.Len(t, topo.Environments, 1)
		require.Len(t, topo.Applications, 1)
		require.Len(t, topo.Services, 1)
		sv := topo.Services[0]
		require.Equal(t, 3, sv.Live())
		require.Equal(t, 1, sv.ByState[berth.StateStopped])
		require.Len(t, sv.ByHost, 2, "spread over both hosts")
		require.Len(t, topo.Hosts, 2)
		require.Empty(t, topo.Instances, "nothing expanded")

		topo, err = st.Topology(ctx, nil, []uint{sv.ID, 99999})
		require.NoError(t, err)
		require.Len(t, topo.Instances, 3)

		other, err := st.Topology(ctx, []uint{999}, nil)
		require.NoError(t, err)
		require.Empty(t, other.Tenants, "another tenant's caller sees nothing")
	})
}
