package e2e

import (
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/cmdb"
	"github.com/berth-dev/berth/store"
)

// requireCI reads one item from the CMDB receiver and checks it is berth's,
// of the kind its id says, with exactly the relations given.
func (hs *harness) requireCI(t testing.TB, id string, rels ...cmdb.Relation) cmdb.CI {
	t.Helper()
	ci, ok := hs.cmdb.Get(id)
	require.True(t, ok, "the CMDB holds %s; it holds %v", id, hs.cmdb.IDs(""))
	require.Equal(t, berth.CIManagedBy, ci.Attributes["managedBy"], id)
	if len(rels) == 0 {
		require.Empty(t, ci.Relations, id)
	} else {
		require.ElementsMatch(t, rels, ci.Relations, id)
	}
	return ci
}

// After a deploy the CMDB holds the whole tree, tenant to host, with its
// relations and the service's LB pool, type, times and actors; the resync
// puts back an item deleted behind berth's back, an item changed behind
// its back, deletes an item berth does not have, and leaves another
// tool's item alone; after the application's delete none of its items is
// left, each deleted with who deleted it.
func TestCMDBHoldsTheWholeTreeAndResyncRepairsDrift(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-inventory"
	apps := hs.newEnv(t, "inventory")
	run := hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	app := hs.app(t, apps, "shop")
	require.Len(t, app.Services, 1)
	require.Len(t, app.Services[0].Instances, 2)

	envPath, appPath := tenant+"/dev", tenant+"/dev/shop"
	svcID := berth.CIID(berth.CIService, appPath+"/web")
	hs.requireCI(t, berth.CIID(berth.CITenant, tenant))
	env := hs.requireCI(t, berth.CIID(berth.CIEnvironment, envPath), cmdb.Relation{Type: berth.RelPartOf, Target: "tenant:" + tenant})
	require.Equal(t, "false", env.Attributes["production"])
	a := hs.requireCI(t, berth.CIID(berth.CIApplication, appPath), cmdb.Relation{Type: berth.RelPartOf, Target: "environment:" + envPath})
	require.Equal(t, run.StartedBy, a.Attributes["createdBy"])
	svc := hs.requireCI(t, svcID, cmdb.Relation{Type: berth.RelPartOf, Target: "application:" + appPath})
	pool := hs.pool(t, app.Services[0].ID)
	require.Equal(t, pool.Pool.Backend, svc.Attributes["lbPool"])
	require.Equal(t, net.JoinHostPort(pool.Pool.ListenIP, strconv.Itoa(pool.Pool.ListenPort)), svc.Attributes["lbAddress"])
	require.Equal(t, "load-balanced-http", svc.Attributes["type"])
	require.Equal(t, "2", svc.Attributes["replicas"])
	require.Equal(t, run.StartedBy, svc.Attributes["createdBy"])
	require.Equal(t, run.StartedBy, svc.Attributes["updatedBy"])
	require.NotEmpty(t, svc.Attributes["created"])
	require.NotEmpty(t, svc.Attributes["updated"])
	for _, in := range app.Services[0].Instances {
		ci := hs.requireCI(t, berth.CIID(berth.CIInstance, in.Name),
			cmdb.Relation{Type: berth.RelMemberOf, Target: svcID}, cmdb.Relation{Type: berth.RelRunsOn, Target: "host:" + in.Host})
		require.Equal(t, in.Host, ci.Attributes["host"])
		h := hs.requireCI(t, berth.CIID(berth.CIHost, in.Host))
		require.Equal(t, ci.Attributes["hostIP"], h.Attributes["ip"])
	}

	// Drift on purpose, then resync.
	gone := berth.CIID(berth.CIInstance, app.Services[0].Instances[0].Name)
	hs.cmdb.Drop(gone)
	edited := svc
	edited.Attributes = map[string]string{}
	for k, v := range svc.Attributes {
		edited.Attributes[k] = v
	}
	edited.Attributes["replicas"] = "99"
	hs.cmdb.Put(edited)
	ghost := berth.CIID(berth.CIInstance, tenant+"-dev-shop-ghost-9")
	hs.cmdb.Put(cmdb.CI{ID: ghost, Kind: berth.CIInstance, Attributes: map[string]string{"managedBy": berth.CIManagedBy}})
	foreign := "server:legacy-" + tenant
	hs.cmdb.Put(cmdb.CI{ID: foreign, Kind: "server", Attributes: map[string]string{"managedBy": "another-tool"}})

	var drift berth.CMDBDrift
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/cmdb/resync", nil, &drift))
	require.Contains(t, drift.Missing, gone)
	require.Contains(t, drift.Changed, svcID)
	require.Contains(t, drift.Extra, ghost)
	require.NotContains(t, drift.Extra, foreign)
	require.Empty(t, drift.Failed)
	require.GreaterOrEqual(t, drift.Checked, 7)
	hs.requireCI(t, gone, cmdb.Relation{Type: berth.RelMemberOf, Target: svcID},
		cmdb.Relation{Type: berth.RelRunsOn, Target: "host:" + app.Services[0].Instances[0].Host})
	repaired, _ := hs.cmdb.Get(svcID)
	require.Equal(t, svc, repaired)
	_, held := hs.cmdb.Get(ghost)
	require.False(t, held)
	tomb, ok := hs.cmdb.Tombstone(ghost)
	require.True(t, ok)
	require.Equal(t, "cmdb-resync", tomb.DeletedBy)
	_, held = hs.cmdb.Get(foreign)
	require.True(t, held, "an item of another tool stays")

	// The report is in the audit log, and a second resync finds this
	// application's items in step.
	var audit struct {
		Events []store.AuditEvent `json:"events"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?action=cmdb-resync&sort=-at&limit=5", nil, &audit))
	require.NotEmpty(t, audit.Events)
	require.Contains(t, audit.Events[0].Detail, ghost)
	var again berth.CMDBDrift
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/cmdb/resync", nil, &again))
	for _, id := range append(append(again.Missing, again.Changed...), again.Extra...) {
		require.NotContains(t, id, tenant+"/dev/shop", "in step after the repair: %+v", again)
		require.NotContains(t, id, tenant+"-dev-shop", "in step after the repair: %+v", again)
	}

	del := hs.deleteOK(t, apps, "shop")
	require.Empty(t, hs.cmdb.IDs(berth.CIID(berth.CIInstance, tenant+"-")))
	require.Empty(t, hs.cmdb.IDs(berth.CIID(berth.CIService, tenant+"/")))
	require.Empty(t, hs.cmdb.IDs(berth.CIID(berth.CIApplication, tenant+"/")))
	tomb, ok = hs.cmdb.Tombstone(svcID)
	require.True(t, ok)
	require.Equal(t, del.StartedBy, tomb.DeletedBy)
	require.NotEmpty(t, tomb.Deleted)
	hs.requireCI(t, berth.CIID(berth.CITenant, tenant))
}
