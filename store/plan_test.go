package store_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

const (
	portMin = 30000
	portMax = 30099
)

// planWorld is an environment with two ready hosts, the usual place to plan into.
type planWorld struct {
	st    *store.Store
	env   *store.Environment
	hostA *store.Host
	hostB *store.Host
}

func newPlanWorld(t *testing.T, st *store.Store) *planWorld {
	t.Helper()
	a := newHost(t, st, "host-a", "127.0.0.1", true)
	b := newHost(t, st, "host-b", "127.0.0.2", true)
	return &planWorld{st: st, env: newEnv(t, st, "acme", "dev", a, b), hostA: a, hostB: b}
}

func (w *planWorld) request(app *store.Application, run *store.Run, svcs ...berth.ServiceRequest) berth.PlanRequest {
	return berth.PlanRequest{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: w.env.ID,
		NamePrefix: "acme-dev-" + app.Name, Services: svcs, PortMin: portMin, PortMax: portMax}
}

func svc(name string, replicas int, ports ...berth.PortRequest) berth.ServiceRequest {
	return berth.ServiceRequest{Name: name, Image: "registry.local/" + name + ":1", Replicas: replicas, Ports: ports, Spec: `{"image":"` + name + `"}`}
}

func tcp(p int) berth.PortRequest { return berth.PortRequest{ContainerPort: p, Protocol: "tcp"} }
func udp(p int) berth.PortRequest { return berth.PortRequest{ContainerPort: p, Protocol: "udp"} }

type hostPort struct {
	host uint
	port int
}

// requireUniquePorts checks no host port is handed out twice and returns
// the (host, port) → instance name the plans claim.
func requireUniquePorts(t *testing.T, plans ...*berth.Plan) map[hostPort]string {
	t.Helper()
	seen := map[hostPort]string{}
	for _, p := range plans {
		for _, in := range p.Instances {
			for _, m := range in.Ports {
				k := hostPort{in.Host.ID, m.HostPort}
				prev, dup := seen[k]
				require.False(t, dup, "host %d port %d given to both %s and %s", k.host, k.port, prev, in.Name)
				seen[k] = in.Name
			}
		}
	}
	return seen
}

// requireAllocationsMatch checks the port_allocations table holds exactly
// the ports the plans claim, so that nothing leaked and nothing is missing.
func requireAllocationsMatch(t *testing.T, st *store.Store, plans ...*berth.Plan) {
	t.Helper()
	want := requireUniquePorts(t, plans...)
	pas, err := st.PortAllocations(context.Background(), 0)
	require.NoError(t, err)
	got := map[hostPort]string{}
	for _, pa := range pas {
		k := hostPort{pa.HostID, pa.Port}
		_, dup := got[k]
		require.False(t, dup, "allocation table repeats host %d port %d", k.host, k.port)
		got[k] = pa.InstanceName
	}
	require.Equal(t, want, got)
}

func instanceNames(p *berth.Plan) []string {
	out := make([]string, 0, len(p.Instances))
	for _, in := range p.Instances {
		out = append(out, in.Name)
	}
	return out
}

var uidRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestPlanDeploy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		req := w.request(app, run, svc("api", 2, tcp(8080)), svc("web", 3, tcp(8080), udp(9090)))

		plan, err := st.PlanDeploy(ctx, req)
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-1", "acme-dev-shop-api-2", "acme-dev-shop-web-1", "acme-dev-shop-web-2", "acme-dev-shop-web-3"},
			instanceNames(plan))

		refs := map[uint]berth.HostRef{w.hostA.ID: w.hostA.Ref(), w.hostB.ID: w.hostB.Ref()}
		perService := map[string]map[uint]int{"api": {}, "web": {}}
		uids := map[string]bool{}
		ids := map[uint]bool{}
		for i, in := range plan.Instances {
			wantOrdinal := i + 1
			if in.Service == "web" {
				wantOrdinal = i - 1
			}
			require.Equal(t, wantOrdinal, in.Ordinal, in.Name)
			require.Regexp(t, uidRE, in.UID, in.Name)
			require.False(t, uids[in.UID], "UID %s repeated", in.UID)
			uids[in.UID] = true
			require.NotZero(t, in.InstanceID)
			require.False(t, ids[in.InstanceID])
			ids[in.InstanceID] = true

			ref, ok := refs[in.Host.ID]
			require.True(t, ok, "%s placed on unknown host %d", in.Name, in.Host.ID)
			require.Equal(t, ref, in.Host, "the plan carries the whole host ref for the worker")
			perService[in.Service][in.Host.ID]++

			want := []berth.PortRequest{tcp(8080)}
			if in.Service == "web" {
				want = []berth.PortRequest{tcp(8080), udp(9090)}
			}
			require.Len(t, in.Ports, len(want), in.Name)
			for j, m := range in.Ports {
				require.Equal(t, want[j].ContainerPort, m.ContainerPort)
				require.Equal(t, want[j].Protocol, m.Protocol)
				require.Equal(t, ref.IP, m.HostIP)
				require.GreaterOrEqual(t, m.HostPort, portMin)
				require.LessOrEqual(t, m.HostPort, portMax)
			}
		}
		require.Equal(t, map[uint]int{w.hostA.ID: 1, w.hostB.ID: 1}, perService["api"])
		require.Len(t, perService["web"], 2, "web is spread over both hosts")
		require.ElementsMatch(t, []int{2, 1}, []int{perService["web"][w.hostA.ID], perService["web"][w.hostB.ID]})
		requireAllocationsMatch(t, st, plan)

		var insts []store.Instance
		require.NoError(t, st.DB().Order("id").Find(&insts).Error)
		require.Len(t, insts, 5)
		for i, in := range insts {
			require.Equal(t, plan.Instances[i].Name, in.Name)
			require.Equal(t, berth.StatePlanned, in.State)
			require.Equal(t, run.ID, in.RunID)
			require.Equal(t, "registry.local/"+in.Service+":1", in.Version)
			require.Nil(t, in.RemovedAt)
		}
		var svcs []store.Service
		require.NoError(t, st.DB().Order("id").Find(&svcs).Error)
		require.Len(t, svcs, 2)
		require.Equal(t, "api", svcs[0].Name)
		require.Equal(t, 2, svcs[0].Replicas)
		require.Equal(t, 2, svcs[0].NextOrdinal)
		require.Equal(t, "web", svcs[1].Name)
		require.Equal(t, 3, svcs[1].NextOrdinal)
		require.Equal(t, berth.StateDeploying, svcs[1].State)

		live, err := st.LiveInstances(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, plan.Instances, live)

		// A retried activity asks again: it must get the same plan, not a second one.
		again, err := st.PlanDeploy(ctx, req)
		require.NoError(t, err)
		require.Equal(t, plan, again)
		require.EqualValues(t, 5, countRows(t, st, &store.Instance{}, ""))
		require.EqualValues(t, 8, countRows(t, st, &store.PortAllocation{}, ""))
		require.EqualValues(t, 2, countRows(t, st, &store.Service{}, ""))
	})
}

func TestPlanDeployHostChoice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		ready := newHost(t, st, "b-ready", "10.0.0.1", true)
		// Sorted before the ready host, so the planner would reach for them first.
		pending := newHost(t, st, "a-pending", "10.0.0.2", false)
		down := newHost(t, st, "a-down", "10.0.0.3", true)
		require.NoError(t, st.SetHostFacts(ctx, down.ID, berth.HostFacts{State: berth.HostDown, Reason: "unreachable"}))
		draining := newHost(t, st, "a-draining", "10.0.0.4", true)
		require.NoError(t, st.SetHostFacts(ctx, draining.ID, berth.HostFacts{State: berth.HostDraining}))
		stranger := newHost(t, st, "a-stranger", "10.0.0.5", true)

		env := newEnv(t, st, "acme", "dev", ready, pending, down, draining)
		_ = newEnv(t, st, "globex", "dev", stranger)
		w := &planWorld{st: st, env: env}
		app, run := beginDeploy(t, st, env, "shop")

		plan, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 4, tcp(80)), svc("worker", 2)))
		require.NoError(t, err)
		require.Len(t, plan.Instances, 6)
		for _, in := range plan.Instances {
			require.Equal(t, ready.ID, in.Host.ID, "%s must land on the only ready authorised host", in.Name)
		}
		// A service without ports gets an instance but no allocation.
		require.Empty(t, plan.Instances[5].Ports)
		requireAllocationsMatch(t, st, plan)
	})
}

func TestPlanDeployNoCapacity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		pending := newHost(t, st, "pending", "10.0.0.1", false)
		stranger := newHost(t, st, "stranger", "10.0.0.2", true)
		_ = newEnv(t, st, "globex", "dev", stranger)

		for _, c := range []struct {
			env   string
			hosts []*store.Host
		}{
			{"only-pending", []*store.Host{pending}},
			{"no-hosts", nil},
		} {
			env := newEnv(t, st, "acme", c.env, c.hosts...)
			w := &planWorld{st: st, env: env}
			app, run := beginDeploy(t, st, env, "shop")
			_, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 1, tcp(80))))
			require.ErrorIs(t, err, store.ErrNoCapacity, c.env)
		}
		require.Zero(t, countRows(t, st, &store.Instance{}, ""))
		require.Zero(t, countRows(t, st, &store.PortAllocation{}, ""))
		require.Zero(t, countRows(t, st, &store.Service{}, ""))

		_, err := st.PlanDeploy(ctx, berth.PlanRequest{RunID: 1, ApplicationID: 1, EnvironmentID: 987654, NamePrefix: "x",
			Services: []berth.ServiceRequest{svc("api", 1)}, PortMin: portMin, PortMax: portMax})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestPlanDeployPortRangeValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		for _, r := range [][2]int{{0, 100}, {-5, 100}, {30010, 30000}, {60000, 65536}} {
			req := w.request(app, run, svc("api", 1, tcp(80)))
			req.PortMin, req.PortMax = r[0], r[1]
			_, err := st.PlanDeploy(ctx, req)
			require.Error(t, err, "range %v", r)
			require.NotErrorIs(t, err, store.ErrNoCapacity, "a bad range is a bad request, not a full cluster")
		}
		require.Zero(t, countRows(t, st, &store.Instance{}, ""))

		// A range of exactly one port is valid.
		req := w.request(app, run, svc("api", 2, tcp(80)))
		req.PortMin, req.PortMax = 65535, 65535
		plan, err := st.PlanDeploy(ctx, req)
		require.NoError(t, err)
		for _, in := range plan.Instances {
			require.Equal(t, 65535, in.Ports[0].HostPort)
		}
	})
}

func TestPlanDeployRangeTooSmallWritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)

		// Another application already holds ports; a failed plan must leave them be.
		other, otherRun := beginDeploy(t, st, w.env, "cart")
		otherReq := w.request(other, otherRun, svc("api", 2, tcp(80)))
		otherReq.PortMin, otherReq.PortMax = 30000, 30000
		otherPlan, err := st.PlanDeploy(ctx, otherReq)
		require.NoError(t, err)
		instsBefore := countRows(t, st, &store.Instance{}, "")
		svcsBefore := countRows(t, st, &store.Service{}, "")

		app, run := beginDeploy(t, st, w.env, "shop")
		// Six free ports (30001-30003 on each host) for the seven asked for,
		// so the last replica fails after the others were already written.
		req := w.request(app, run, svc("api", 1, tcp(8080)), svc("web", 3, tcp(80), tcp(443)))
		req.PortMin, req.PortMax = 30000, 30003
		_, err = st.PlanDeploy(ctx, req)
		require.ErrorIs(t, err, store.ErrNoCapacity)

		require.Equal(t, instsBefore, countRows(t, st, &store.Instance{}, ""), "no instance of the failed plan may remain")
		require.Equal(t, svcsBefore, countRows(t, st, &store.Service{}, ""), "no service of the failed plan may remain")
		require.Zero(t, countRows(t, st, &store.Instance{}, "run_id = ?", run.ID))
		requireAllocationsMatch(t, st, otherPlan)

		// With room, the same run plans from scratch: ordinals were not
		// consumed by the rolled-back attempt.
		req.PortMax = portMax
		plan, err := st.PlanDeploy(ctx, req)
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-1", "acme-dev-shop-web-1", "acme-dev-shop-web-2", "acme-dev-shop-web-3"}, instanceNames(plan))
		requireAllocationsMatch(t, st, otherPlan, plan)
	})
}

func TestPlanDeployConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		const n = 8
		w := newPlanWorld(t, st)
		reqs := make([]berth.PlanRequest, n)
		for i := range reqs {
			app, run := beginDeploy(t, st, w.env, fmt.Sprintf("app%d", i))
			reqs[i] = w.request(app, run, svc("svc", 3, tcp(80), tcp(443)))
			reqs[i].PortMax = 30999
		}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		plans := make([]*berth.Plan, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Released together so the plans really overlap and pick the same ports.
				<-start
				plans[i], errs[i] = st.PlanDeploy(ctx, reqs[i])
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "plan %d", i)
		}
		for i, p := range plans {
			require.Len(t, p.Instances, 3, "plan %d", i)
			for _, in := range p.Instances {
				require.Len(t, in.Ports, 2)
			}
		}
		requireAllocationsMatch(t, st, plans...)
		require.EqualValues(t, n*3, countRows(t, st, &store.Instance{}, ""))
		require.EqualValues(t, n*3*2, countRows(t, st, &store.PortAllocation{}, ""))
	})
}

func TestNextOrdinalNeverReusesNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run1 := beginDeploy(t, st, w.env, "shop")

		p1, err := st.PlanDeploy(ctx, w.request(app, run1, svc("api", 2, tcp(80))))
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-1", "acme-dev-shop-api-2"}, instanceNames(p1))
		require.NoError(t, st.ReleaseInstances(ctx, instanceNames(p1)))

		run2 := redeploy(t, st, w.env, app)
		p2, err := st.PlanDeploy(ctx, w.request(app, run2, svc("api", 2, tcp(80))))
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-3", "acme-dev-shop-api-4"}, instanceNames(p2))
		require.Equal(t, 3, p2.Instances[0].Ordinal)
		// Released ports are free again; only the new instances hold any.
		requireAllocationsMatch(t, st, p2)

		// Deleting the application and deploying it again keeps counting too:
		// a container named -1 may still be lingering on a host.
		require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateDeleted))
		var deleted []store.Service
		require.NoError(t, st.DB().Where("application_id = ?", app.ID).Find(&deleted).Error)
		require.Len(t, deleted, 1)
		require.Equal(t, berth.StateDeleted, deleted[0].State)
		require.NotNil(t, deleted[0].DeletedAt)
		require.NoError(t, st.ReleaseInstances(ctx, instanceNames(p2)))

		require.NoError(t, st.FinishRun(ctx, run2.ID, berth.RunSucceeded, ""))
		again, run3 := beginDeploy(t, st, w.env, "shop")
		require.Equal(t, app.ID, again.ID)
		p3, err := st.PlanDeploy(ctx, w.request(app, run3, svc("api", 1, tcp(80)), svc("db", 1)))
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-5", "acme-dev-shop-db-1"}, instanceNames(p3))
		var revived store.Service
		require.NoError(t, st.DB().Where("application_id = ? AND name = ?", app.ID, "api").First(&revived).Error)
		require.Equal(t, deleted[0].ID, revived.ID, "the service row is reused")
		require.Equal(t, berth.StateDeploying, revived.State)
		require.Nil(t, revived.DeletedAt)
		require.Equal(t, 1, revived.Replicas)
		require.Equal(t, 5, revived.NextOrdinal)
	})
}

func TestReleaseInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		plan, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 3, tcp(80), tcp(81))))
		require.NoError(t, err)
		names := instanceNames(plan)

		// Empty input must not turn into "release everything".
		require.NoError(t, st.ReleaseInstances(ctx, nil))
		require.NoError(t, st.ReleaseInstances(ctx, []string{}))
		requireAllocationsMatch(t, st, plan)

		before := time.Now().Add(-time.Second)
		require.NoError(t, st.ReleaseInstances(ctx, names[:2]))

		kept := &berth.Plan{Instances: plan.Instances[2:]}
		requireAllocationsMatch(t, st, kept)

		var rows []store.Instance
		require.NoError(t, st.DB().Order("id").Find(&rows).Error)
		require.Len(t, rows, 3, "released instances keep their rows as history")
		removedAt := map[string]time.Time{}
		for _, r := range rows[:2] {
			require.Equal(t, berth.StateRemoved, r.State)
			require.NotNil(t, r.RemovedAt)
			require.True(t, r.RemovedAt.After(before))
			removedAt[r.Name] = *r.RemovedAt
		}
		require.Equal(t, berth.StatePlanned, rows[2].State)
		require.Nil(t, rows[2].RemovedAt)

		live, err := st.LiveInstances(ctx, app.ID)
		require.NoError(t, err)
		require.Equal(t, kept.Instances, live)

		// Releasing again (a retried activity) is harmless and keeps the first RemovedAt.
		require.NoError(t, st.ReleaseInstances(ctx, append(names[:2:2], "acme-dev-shop-api-99")))
		require.NoError(t, st.DB().Order("id").Find(&rows).Error)
		for _, r := range rows[:2] {
			requireSameTime(t, removedAt[r.Name], r.RemovedAt)
			require.Equal(t, berth.StateRemoved, r.State)
		}
		requireAllocationsMatch(t, st, kept)

		require.NoError(t, st.ReleaseInstances(ctx, names[2:]))
		live, err = st.LiveInstances(ctx, app.ID)
		require.NoError(t, err)
		require.Empty(t, live)
		require.Zero(t, countRows(t, st, &store.PortAllocation{}, ""))
	})
}

func TestInstanceStartedAndServiceViews(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		// web's ports are asked for out of order; the view lists them by container port.
		plan, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 2, tcp(8080)), svc("web", 1, udp(9090), tcp(8080))))
		require.NoError(t, err)
		require.Equal(t, []string{"acme-dev-shop-api-1", "acme-dev-shop-api-2", "acme-dev-shop-web-1"}, instanceNames(plan))

		require.NoError(t, st.InstanceStarted(ctx, "acme-dev-shop-api-1", "c0ffee0123456789", "172.18.0.5"))
		var started store.Instance
		require.NoError(t, st.DB().Where("name = ?", "acme-dev-shop-api-1").First(&started).Error)
		require.Equal(t, "c0ffee0123456789", started.ContainerID)
		require.Equal(t, "172.18.0.5", started.IP)
		require.Equal(t, berth.StateRunning, started.State)
		var other store.Instance
		require.NoError(t, st.DB().Where("name = ?", "acme-dev-shop-api-2").First(&other).Error)
		require.Equal(t, berth.StatePlanned, other.State, "only the named instance changes")
		require.Empty(t, other.ContainerID)

		views, err := st.Services(ctx, app.ID)
		require.NoError(t, err)
		require.Len(t, views, 2)
		api, web := views[0], views[1]
		require.Equal(t, "api", api.Name)
		require.Equal(t, "shop", api.Application)
		require.Equal(t, 2, api.Replicas)
		require.Len(t, api.Instances, 2)

		a1, a2 := api.Instances[0], api.Instances[1]
		require.Equal(t, "acme-dev-shop-api-1", a1.Name)
		require.Equal(t, "host-a", a1.Host)
		require.Equal(t, berth.StateRunning, a1.State)
		require.Equal(t, "c0ffee0123456789", a1.ContainerID)
		require.Equal(t, []string{"127.0.0.1:30000 → 8080/tcp"}, a1.Mappings)
		require.Equal(t, []berth.PortMapping{{HostIP: "127.0.0.1", HostPort: 30000, ContainerPort: 8080, Protocol: "tcp"}}, a1.Ports)
		require.Equal(t, "acme-dev-shop-api-2", a2.Name)
		require.Equal(t, "host-b", a2.Host)
		require.Equal(t, []string{"127.0.0.2:30000 → 8080/tcp"}, a2.Mappings)

		require.Equal(t, "web", web.Name)
		require.Len(t, web.Instances, 1)
		w1 := web.Instances[0]
		require.Equal(t, "host-a", w1.Host)
		require.Equal(t, []string{"127.0.0.1:30002 → 8080/tcp", "127.0.0.1:30001 → 9090/udp"}, w1.Mappings)

		byID, err := st.ServiceByID(ctx, api.ID)
		require.NoError(t, err)
		require.Equal(t, api, *byID)

		require.NoError(t, st.ReleaseInstances(ctx, []string{"acme-dev-shop-api-1"}))
		byID, err = st.ServiceByID(ctx, api.ID)
		require.NoError(t, err)
		require.Len(t, byID.Instances, 1)
		require.Equal(t, "acme-dev-shop-api-2", byID.Instances[0].Name)

		// A service with no live instance lists an empty set, so its JSON
		// says [] rather than null.
		require.NoError(t, st.ReleaseInstances(ctx, []string{"acme-dev-shop-web-1"}))
		byID, err = st.ServiceByID(ctx, web.ID)
		require.NoError(t, err)
		require.NotNil(t, byID.Instances)
		require.Empty(t, byID.Instances)

		_, err = st.ServiceByID(ctx, 987654)
		require.ErrorIs(t, err, store.ErrNotFound)

		none, err := st.Services(ctx, 987654)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

func TestSetInstanceStateAndServingPeers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		plan, err := st.PlanDeploy(ctx, w.request(app, run, svc("api", 3, tcp(80))))
		require.NoError(t, err)
		names := instanceNames(plan)
		for _, n := range names {
			require.NoError(t, st.InstanceStarted(ctx, n, "c-"+n, "10.0.0.9"))
		}
		serviceID := func() uint {
			in, err := st.LiveInstanceByName(ctx, names[0])
			require.NoError(t, err)
			return in.ServiceID
		}()
		peers, err := st.ServingPeers(ctx, serviceID, names[0])
		require.NoError(t, err)
		require.Equal(t, 2, peers)

		require.NoError(t, st.SetInstanceState(ctx, names[1], berth.StateStopped))
		require.NoError(t, st.SetInstanceState(ctx, names[1], berth.StateStopped), "setting it again is harmless")
		peers, err = st.ServingPeers(ctx, serviceID, names[0])
		require.NoError(t, err)
		require.Equal(t, 1, peers, "a stopped instance does not serve")
		in, err := st.LiveInstanceByName(ctx, names[1])
		require.NoError(t, err)
		require.Equal(t, berth.StateStopped, in.State)

		require.Error(t, st.SetInstanceState(ctx, names[1], berth.StateRemoved), "only stopped and running are set by actions")
		require.NoError(t, st.ReleaseInstances(ctx, names[2:]))
		err = st.SetInstanceState(ctx, names[2], berth.StateRunning)
		require.Equal(t, berth.ENotFound, berth.ErrorCode(err), "a removed instance is not brought back")
		peers, err = st.ServingPeers(ctx, serviceID, names[0])
		require.NoError(t, err)
		require.Zero(t, peers)
	})
}
