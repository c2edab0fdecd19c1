package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// newLiveApp opens a deploy of an application, as BeginDeploy does, and
// returns it with a function that plans n more instances of one service.
func newLiveApp(t *testing.T, st *store.Store, env *store.Environment, name string) func(key, svc string, n int, r berth.Resources, surge bool) error {
	t.Helper()
	ctx := context.Background()
	run := &store.Run{Kind: berth.KindDeploy, WorkflowID: "deploy-" + name, EnvironmentID: env.ID}
	app, err := st.BeginDeploy(ctx, env.ID, name, "services: {}\n", "h-"+name, run, appKey(env.ID, name))
	require.NoError(t, err)
	return func(key, svc string, n int, r berth.Resources, surge bool) error {
		_, err := st.PlanDeploy(ctx, berth.PlanRequest{RunID: run.ID, Key: key, ApplicationID: app.ID, EnvironmentID: env.ID,
			NamePrefix: "acme-" + env.Name + "-" + name, PortMin: 20000, PortMax: 29999, Surge: surge,
			Services: []berth.ServiceRequest{{Name: svc, Image: "img:1", Replicas: n, Add: true, Resources: r}}})
		return err
	}
}

// Quotas bound the sum of limits and the number of instances, per
// environment and per tenant, and say what is short; a surge (a release
// batch) is not counted. Hosts promise reservations up to their CPUs and
// memory less a reserve.
func TestQuotasAndHostCapacity(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := newHost(t, st, "h1", "10.0.0.1", true) // 4 CPUs, 8 GiB
		env := newEnv(t, st, "acme", "dev", h)
		require.NoError(t, st.SetEnvironmentQuota(ctx, env.ID, berth.Quota{MaxMemoryBytes: 1 << 30}))
		plan := newLiveApp(t, st, env, "shop")
		half := berth.Resources{MemoryBytes: 512 << 20, NanoCPUs: 1e9}

		require.NoError(t, plan("a", "web", 2, half, false))
		err := plan("b", "web", 1, half, false)
		require.ErrorIs(t, err, store.ErrQuota)
		require.Contains(t, err.Error(), "environment dev's quota: memory: 512MiB asked, 1GiB of 1GiB in use")
		require.Error(t, st.CheckQuota(ctx, env.ID, berth.Usage{}.Add(half, 1)), "the early check agrees")
		require.NoError(t, plan("c", "web", 1, half, true), "a surge replaces: not counted")

		tn, err := st.TenantByName(ctx, "acme")
		require.NoError(t, err)
		require.NoError(t, st.SetEnvironmentQuota(ctx, env.ID, berth.Quota{}))
		require.NoError(t, st.SetTenantQuota(ctx, tn.ID, berth.Quota{MaxInstances: 4}))
		err = plan("d", "web", 2, half, false)
		require.ErrorIs(t, err, store.ErrQuota)
		require.Contains(t, err.Error(), "tenant acme's quota: instances: 2 asked, 3 of 4 in use")
		require.NoError(t, st.SetTenantQuota(ctx, tn.ID, berth.Quota{}))

		// 8 GiB less 819 MiB of reserve: one 5 GiB reservation fits, two do not.
		big := berth.Resources{MemoryReserved: 5 << 30}
		require.NoError(t, plan("e", "db", 1, big, false))
		err = plan("f", "db", 1, big, false)
		require.ErrorIs(t, err, store.ErrNoCapacity)
		require.Contains(t, err.Error(), "no host of environment dev has room for another db instance reserving 5GiB memory")

		capa, err := st.Capacity(ctx, nil, true)
		require.NoError(t, err)
		require.Len(t, capa.Hosts, 1)
		require.Equal(t, 4, capa.Hosts[0].Used.Instances)
		require.Equal(t, int64(5<<30), capa.Hosts[0].Used.MemoryReserved)
		require.Equal(t, int64(8<<30-(8<<30)/10), capa.Hosts[0].Allocatable.MemoryBytes)
		require.Equal(t, int64(3_600_000_000), capa.Hosts[0].Allocatable.NanoCPUs)
		require.Equal(t, []store.EnvironmentCapacity{{Tenant: "acme", Environment: "dev", Used: capa.Environments[0].Used}}, capa.Environments)
		require.Equal(t, int64(3*512<<20), capa.Environments[0].Used.MemoryBytes)
		none, err := st.Capacity(ctx, []uint{}, false)
		require.NoError(t, err)
		require.Empty(t, none.Tenants, "no tenant, nothing to read")
		require.Empty(t, none.Hosts)
	})
}

// Two deploys racing for the last free quota cannot both get it.
func TestRacingPlansShareNoQuota(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := newHost(t, st, "h1", "10.0.0.1", true)
		env := newEnv(t, st, "acme", "dev", h)
		require.NoError(t, st.SetEnvironmentQuota(ctx, env.ID, berth.Quota{MaxMemoryBytes: 1 << 30}))
		half := berth.Resources{MemoryBytes: 512 << 20}
		require.NoError(t, newLiveApp(t, st, env, "base")("a", "web", 1, half, false))
		plans := []func(string, string, int, berth.Resources, bool) error{newLiveApp(t, st, env, "one"), newLiveApp(t, st, env, "two")}
		errs := make([]error, len(plans))
		var wg sync.WaitGroup
		for i, p := range plans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = p(fmt.Sprintf("k%d", i), "web", 1, half, false)
			}()
		}
		wg.Wait()
		var won, refused int
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrQuota):
				refused++
			default:
				require.NoError(t, err)
			}
		}
		require.Equal(t, [2]int{1, 1}, [2]int{won, refused}, fmt.Sprint(errs))
	})
}
