package e2e

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

// A host port in the platform's range that a process outside berth
// listens on does not fail the deploy: the instance is placed on the next
// free port, the held port is recorded as held so no plan picks it again,
// and the load balancer sends traffic to the port the instance runs on.
func TestPortHeldOutsideBerthIsSkipped(t *testing.T) {
	hs := needHarness(t)
	th := hs.hosts[0]
	tenant := hs.tenant + "-held"
	apps := hs.newEnvOn(t, tenant, th.Name)
	var host store.Host
	require.NoError(t, hs.store.DB().Where("name = ?", th.Name).First(&host).Error)
	used := map[int]bool{}
	var all []store.PortAllocation
	require.NoError(t, hs.store.DB().Where("host_id = ?", host.ID).Find(&all).Error)
	for _, pa := range all {
		used[pa.Port] = true
	}
	next := hs.portMin
	for used[next] {
		next++
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", th.IP, next))
	require.NoError(t, err)
	defer ln.Close()

	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 1)
	var ports []store.PortAllocation
	require.NoError(t, hs.store.DB().Where("host_id = ? AND port = ?", host.ID, next).Find(&ports).Error)
	require.Len(t, ports, 1)
	require.Equal(t, store.HeldOutside, ports[0].InstanceName, "the held port stays out of every later plan")
	mine := hs.portsOfTenant(t, tenant)
	require.Len(t, mine, 1)
	require.NotEqual(t, next, mine[0].Port)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	code, _ := httpGet(t, "http://"+hs.pool(t, svc.ID).Backend.ListenAddr+"/version")
	require.Equal(t, http.StatusOK, code)
}
