package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// What a region's firewall should hold: the driver's open openings of
// instances that still exist, by their host's region; ticket and change
// openings are somebody else's, closed ones nobody's, and a requested one
// is only kept from being closed, as are the region's others.
func TestFirewallRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		_, run, plan, _ := w.startedAPI(t, "shop", 4)
		names := make([]string, len(plan.Instances))
		for i, in := range plan.Instances {
			names[i] = in.Name
		}
		open := func(i int, id string, driver string, state berth.OpeningState) berth.FirewallOpening {
			return berth.FirewallOpening{OpeningID: id, InstanceName: names[i], Protocol: "tcp", DestIP: plan.Instances[i].Host.IP,
				DestPort: 20000 + i, Driver: driver, State: state, RunID: run.ID}
		}
		require.NoError(t, st.RecordOpenings(ctx, []berth.FirewallOpening{
			open(0, "a/80-tcp", "", berth.OpeningOpen),
			open(1, "b/80-tcp", "none", berth.OpeningOpen),
			open(2, "c/80-tcp", "ticket", berth.OpeningOpen),
			open(3, "d/80-tcp", "", berth.OpeningRequested),
			open(0, "e/80-tcp", "", berth.OpeningClosed),
		}))
		regions, err := st.FirewallRecords(ctx)
		require.NoError(t, err)
		require.Len(t, regions, 1, "both hosts are in one region")
		var want []string
		for _, o := range regions[0].Want {
			want = append(want, o.OpeningID)
		}
		require.Equal(t, []string{"a/80-tcp", "b/80-tcp"}, want)
		require.Equal(t, plan.Instances[0].Host.IP, regions[0].Want[0].DestIP)
		require.Equal(t, "tcp", regions[0].Want[0].Protocol)
		require.Equal(t, 20000, regions[0].Want[0].DestPort)
		require.Equal(t, []string{"a/80-tcp", "b/80-tcp", "c/80-tcp", "d/80-tcp"}, regions[0].Keep)

		// Marking keeps what the plan recorded.
		require.NoError(t, st.SetOpeningsState(ctx, []string{"d/80-tcp", "e/80-tcp"}, berth.OpeningOpen, run.ID))
		regions, err = st.FirewallRecords(ctx)
		require.NoError(t, err)
		require.Len(t, regions[0].Want, 4)
		d := regions[0].Want[2]
		require.Equal(t, "d/80-tcp", d.OpeningID)
		require.Equal(t, "tcp", d.Protocol)
		require.Equal(t, 20003, d.DestPort)
		require.NotNil(t, d.OpenedAt)
		require.NoError(t, st.SetOpeningsState(ctx, []string{"d/80-tcp", "e/80-tcp"}, berth.OpeningClosed, run.ID))

		require.NoError(t, st.ReleaseInstances(ctx, names[:1]))
		regions, err = st.FirewallRecords(ctx)
		require.NoError(t, err)
		require.Len(t, regions[0].Want, 1, "a removed instance's opening is not wanted")
		require.Equal(t, "b/80-tcp", regions[0].Want[0].OpeningID)
		require.NotContains(t, regions[0].Keep, "a/80-tcp", "nor kept: its rule is closed")
	})
}
