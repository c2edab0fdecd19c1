package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// newHostIn is newHost in another region than the tests' usual one.
func newHostIn(t *testing.T, st *store.Store, name, ip, region string) *store.Host {
	t.Helper()
	h := &store.Host{Name: name, Region: region, Endpoint: "unix:///var/run/docker.sock", IP: ip, VolumeRoot: "/srv/berth/" + name}
	require.NoError(t, st.CreateHost(context.Background(), h))
	require.NoError(t, st.SetHostFacts(context.Background(), h.ID, berth.HostFacts{State: berth.HostReady, EngineVersion: "27.1.1",
		APIVersion: "1.46", CPUs: 4, MemoryBytes: 8 << 30}))
	return h
}

func regionsOf(p *berth.Plan) map[string]int {
	out := map[string]int{}
	for _, in := range p.Instances {
		out[in.Host.Region]++
	}
	return out
}

// An environment spanning two regions gets each service in both, even when
// one region has more hosts: losing a region must not take a service whole.
func TestPlanDeploySpreadsOverRegions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		// Two hosts in eu-west, sorted first, and one in eu-2.
		a := newHost(t, st, "a-1", "10.0.0.1", true)
		b := newHost(t, st, "a-2", "10.0.0.2", true)
		c := newHostIn(t, st, "z-1", "10.0.1.1", "eu-2")
		w := &planWorld{st: st, env: newEnv(t, st, "acme", "prod", a, b, c)}
		app, run := beginDeploy(t, st, w.env, "shop")
		first, err := st.PlanDeploy(ctx, w.request(app, run, svc("web", 2, tcp(80))))
		require.NoError(t, err)
		require.Equal(t, map[string]int{"eu-west": 1, "eu-2": 1}, regionsOf(first))

		app2, run2 := beginDeploy(t, st, w.env, "api")
		plan, err := st.PlanDeploy(ctx, w.request(app2, run2, svc("api", 4, tcp(80))))
		require.NoError(t, err)
		require.Equal(t, map[string]int{"eu-west": 2, "eu-2": 2}, regionsOf(plan))
		hosts := map[uint]int{}
		for _, in := range plan.Instances {
			hosts[in.Host.ID]++
		}
		require.Equal(t, map[uint]int{a.ID: 1, b.ID: 1, c.ID: 2}, hosts, "within a region, the hosts share")

		// A release batch replacing one of web's instances places its new
		// one in the leaving instance's region, where the gap is.
		for _, leaving := range first.Instances {
			batch := w.request(app, run, berth.ServiceRequest{Name: "web", Image: "registry.local/web:2", Replicas: 1, Add: true, Spec: "{}",
				Ports: []berth.PortRequest{tcp(80)}})
			batch.Key, batch.Surge, batch.Replaces = "batch-"+leaving.Name, true, []string{leaving.Name}
			next, err := st.PlanDeploy(ctx, batch)
			require.NoError(t, err)
			require.Equal(t, leaving.Host.Region, next.Instances[0].Host.Region, "%s's replacement stays in its region", leaving.Name)
		}
	})
}

// A service has one pool per region. Listen ports are allocated per region
// (each region has its own load balancer), so both pools may take the same
// one; a second ask returns the pool made by the first; removing the
// service's pool removes it in every region.
func TestPoolPerRegion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		_, err := st.PlanDeploy(ctx, w.request(app, run, svc("web", 1, tcp(80))))
		require.NoError(t, err)
		ref, err := st.ServiceRef(ctx, app.ID, "web")
		require.NoError(t, err)
		sid := ref.ID

		_, err = st.ServicePools(ctx, sid)
		require.ErrorIs(t, err, store.ErrNotFound)
		west, err := st.EnsurePool(ctx, berth.LBPool{ServiceID: sid, Region: "eu-west", Backend: "acme-dev-shop-web", Mode: "tcp"}, portMin, portMax)
		require.NoError(t, err)
		two, err := st.EnsurePool(ctx, berth.LBPool{ServiceID: sid, Region: "eu-2", Backend: "acme-dev-shop-web", Mode: "tcp"}, portMin, portMax)
		require.NoError(t, err)
		require.NotEqual(t, west.ID, two.ID)
		require.Equal(t, portMin, west.ListenPort)
		require.Equal(t, portMin, two.ListenPort, "each region's load balancer has its own ports")
		again, err := st.EnsurePool(ctx, berth.LBPool{ServiceID: sid, Region: "eu-2", Backend: "acme-dev-shop-web", Mode: "tcp"}, portMin, portMax)
		require.NoError(t, err)
		require.Equal(t, two.ID, again.ID)

		require.NoError(t, st.SetPoolServers(ctx, west.ID, []berth.LBServer{{InstanceName: "w-1", Addr: "10.0.0.1:30000", Weight: 100, State: "ready"}}))
		require.NoError(t, st.SetPoolServers(ctx, two.ID, []berth.LBServer{{InstanceName: "w-2", Addr: "10.0.1.1:30000", Weight: 100, State: "ready"}}))
		pools, err := st.ServicePools(ctx, sid)
		require.NoError(t, err)
		require.Len(t, pools, 2)
		require.Equal(t, []string{"eu-2", "eu-west"}, []string{pools[0].Region, pools[1].Region})
		require.Equal(t, "w-2", pools[0].Servers[0].InstanceName)
		require.Equal(t, "w-1", pools[1].Servers[0].InstanceName)
		p, err := st.PoolIn(ctx, sid, "eu-west")
		require.NoError(t, err)
		require.Equal(t, west.ID, p.ID)
		_, err = st.PoolIn(ctx, sid, "us-1")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, st.RemovePool(ctx, sid))
		_, err = st.ServicePools(ctx, sid)
		require.ErrorIs(t, err, store.ErrNotFound)
		all, err := st.Pools(ctx, "")
		require.NoError(t, err)
		require.Empty(t, all)
		var servers int64
		require.NoError(t, st.DB().Model(&berth.LBServer{}).Count(&servers).Error)
		require.Zero(t, servers, "the pools' servers went with them")
	})
}

// A database made when a service had one pool keeps working: migrating
// drops the old unique index, so a second region's pool can be made.
func TestMigrateDropsOnePoolPerServiceIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		m := st.DB().Migrator()
		require.NoError(t, st.DB().Exec("CREATE UNIQUE INDEX idx_lb_pools_service_id ON lb_pools (service_id)").Error)
		_, err := st.EnsurePool(ctx, berth.LBPool{ServiceID: 7, Region: "eu-west", Backend: "b"}, portMin, portMax)
		require.NoError(t, err)
		_, err = st.EnsurePool(ctx, berth.LBPool{ServiceID: 7, Region: "eu-2", Backend: "b"}, portMin, portMax)
		require.Error(t, err, "the old index refuses a second pool")

		require.NoError(t, st.Migrate(ctx))
		require.False(t, m.HasIndex(&berth.LBPool{}, "idx_lb_pools_service_id"))
		_, err = st.EnsurePool(ctx, berth.LBPool{ServiceID: 7, Region: "eu-2", Backend: "b"}, portMin, portMax)
		require.NoError(t, err)
		require.NoError(t, st.Migrate(ctx), "migrating again is harmless")
	})
}
