package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/firewall/changeapi"
)

// In firewall mode "change", a deploy's openings go to the network team's
// change API as one change; applied after the team's delay, the deploy
// finishes with the opening recorded open. A scale-out whose change the
// team rejects fails and is undone (its instance removed, its port
// released), and the run shows their reason. The delete closes the opening
// through the API.
func TestFirewallChangeAPIAppliesOrRejects(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-netteam"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev", "firewall": "change"})
	var e struct {
		Error struct{ Code, Message string }
	}
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments",
		map[string]any{"name": "bad", "firewall": "maybe"}, &e))

	run := hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	require.Equal(t, berth.StepDone, stepStates(run)["firewall change"])
	svc := hs.app(t, apps, "shop").Services[0]
	inst := svc.Instances[0]
	opening := inst.Name + "/8080-tcp"
	require.True(t, hs.changes.Open(opening), "the network team applied the opening")
	changes := hs.changes.Changes(inst.Name + "/")
	require.Len(t, changes, 1)
	require.Equal(t, changeapi.ActionOpen, changes[0].Action)
	require.Contains(t, changes[0].Reason, fmt.Sprintf("berth run %d", run.ID))
	var ob struct {
		Openings []berth.FirewallOpening `json:"openings"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/firewall/openings?state=open", nil, &ob))
	found := false
	for _, o := range ob.Openings {
		found = found || o.OpeningID == opening
	}
	require.True(t, found, "recorded open once applied")

	reason := "port 8080 may not be opened in zone dmz-2 (CHG-4711)"
	hs.changes.RejectFor(tenant+"-dev-shop-web-2/", reason)
	var started runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 2}, &started))
	failed := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, failed.Status)
	require.Contains(t, failed.Error, "CHG-4711")
	require.Equal(t, berth.StepFailed, stepStates(failed)["firewall change"])
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 1, "the rejected instance is undone")
	require.Equal(t, 1, countAll(hs.containersOf(t, tenant)))
	require.Len(t, hs.portsOfTenant(t, tenant), 1, "its port is released")
	require.False(t, hs.changes.Open(tenant+"-dev-shop-web-2/8080-tcp"))

	hs.deleteOK(t, apps, "shop")
	require.Eventually(t, func() bool { return !hs.changes.Open(opening) }, 30*time.Second, 200*time.Millisecond,
		"the delete closed the opening through the change API")
}
