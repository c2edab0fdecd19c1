package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func ciBodies(t *testing.T, recs []berth.CMDBRecord) map[string]berth.CIBody {
	t.Helper()
	out := map[string]berth.CIBody{}
	for _, r := range recs {
		var b berth.CIBody
		require.NoError(t, json.Unmarshal([]byte(r.Payload), &b), r.CIID)
		require.Equal(t, berth.CIManagedBy, b.Attributes["managedBy"], r.CIID)
		out[r.CIID] = b
	}
	return out
}

// The CMDB's items come from the records: the whole tree with relations,
// actors from the runs; a step queues only what changed.
func TestDesiredCIsAndQueueOnlyChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run, plan, _ := w.startedAPI(t, "shop", 2)
		svc, err := st.ServiceNamed(ctx, app.ID, "api")
		require.NoError(t, err)
		require.NoError(t, st.MarkServicesChanged(ctx, []uint{svc.ID}, run.ID))

		all, err := st.DesiredCIs(ctx, berth.CIScope{})
		require.NoError(t, err)
		got := ciBodies(t, all)
		require.Contains(t, got, "tenant:acme")
		require.Equal(t, []berth.CIRelation{{Type: berth.RelPartOf, Target: "tenant:acme"}}, got["environment:acme/dev"].Relations)
		require.Equal(t, []berth.CIRelation{{Type: berth.RelPartOf, Target: "environment:acme/dev"}}, got["application:acme/dev/shop"].Relations)
		require.Equal(t, "alice", got["application:acme/dev/shop"].Attributes["createdBy"])
		s := got["service:acme/dev/shop/api"]
		require.Equal(t, []berth.CIRelation{{Type: berth.RelPartOf, Target: "application:acme/dev/shop"}}, s.Relations)
		require.Equal(t, "alice", s.Attributes["createdBy"])
		require.Equal(t, "alice", s.Attributes["updatedBy"])
		require.Equal(t, "2", s.Attributes["instances"])
		require.Equal(t, "internal", s.Attributes["type"], "no pool yet")
		for _, in := range plan.Instances {
			b := got["instance:"+in.Name]
			require.ElementsMatch(t, []berth.CIRelation{{Type: berth.RelMemberOf, Target: "service:acme/dev/shop/api"},
				{Type: berth.RelRunsOn, Target: "host:" + in.Host.Name}}, b.Relations)
			require.Contains(t, got, "host:"+in.Host.Name)
		}
		require.Equal(t, berth.CITenant, all[0].Kind, "parents come first")

		// One application's tree, with an instance leaving.
		gone := plan.Instances[0].Name
		scoped, err := st.DesiredCIs(ctx, berth.CIScope{ApplicationID: app.ID, Without: []string{gone}})
		require.NoError(t, err)
		sg := ciBodies(t, scoped)
		require.NotContains(t, sg, "instance:"+gone)
		require.Equal(t, "1", sg["service:acme/dev/shop/api"].Attributes["instances"])

		// Queued once; in step, nothing more is queued; a change queues one.
		ids, err := st.QueueCMDB(ctx, all)
		require.NoError(t, err)
		require.Len(t, ids, len(all))
		require.NoError(t, st.RecordCMDBSynced(ctx, all))
		again, err := st.DesiredCIs(ctx, berth.CIScope{})
		require.NoError(t, err)
		ids, err = st.QueueCMDB(ctx, again)
		require.NoError(t, err)
		require.Empty(t, ids, "nothing changed")
		ids, err = st.QueueCMDB(ctx, scoped)
		require.NoError(t, err)
		require.Equal(t, []string{"service:acme/dev/shop/api"}, ids)
		tomb := berth.CITombstone("instance:"+gone, berth.CIInstance, "alice", time.Now())
		never := berth.CITombstone("instance:never-pushed", berth.CIInstance, "alice", time.Now())
		ids, err = st.QueueCMDB(ctx, []berth.CMDBRecord{tomb, never})
		require.NoError(t, err)
		require.Equal(t, []string{"instance:" + gone}, ids, "an item berth never recorded has nothing to delete")
		pending, err := st.CMDBRecords(ctx, berth.SyncPending, nil)
		require.NoError(t, err)
		require.Len(t, pending, 2)

		require.NoError(t, st.RecordCMDBResync(ctx, berth.CMDBDrift{Checked: 3, MissingCount: 1, Missing: []string{"x"}}))
		evs, err := st.AuditEvents(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, "repaired", evs[0].Outcome)
	})
}
