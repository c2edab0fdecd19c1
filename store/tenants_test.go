package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func hostNames(hs []store.Host) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestTenants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		globex, err := st.CreateTenant(ctx, "globex")
		require.NoError(t, err)
		require.NotZero(t, globex.ID)
		acme, err := st.CreateTenant(ctx, "acme")
		require.NoError(t, err)
		require.NotEqual(t, globex.ID, acme.ID)

		_, err = st.CreateTenant(ctx, "acme")
		requireConflict(t, err)

		got, err := st.TenantByName(ctx, "acme")
		require.NoError(t, err)
		require.Equal(t, acme.ID, got.ID)
		_, err = st.TenantByName(ctx, "initech")
		require.ErrorIs(t, err, store.ErrNotFound)

		ts, err := st.Tenants(ctx)
		require.NoError(t, err)
		require.Len(t, ts, 2)
		require.Equal(t, "acme", ts[0].Name)
		require.Equal(t, "globex", ts[1].Name)
	})
}

func TestEnvironments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		acme, err := st.CreateTenant(ctx, "acme")
		require.NoError(t, err)
		globex, err := st.CreateTenant(ctx, "globex")
		require.NoError(t, err)

		dev, err := st.CreateEnvironment(ctx, acme.ID, "dev")
		require.NoError(t, err)
		require.Equal(t, acme.ID, dev.TenantID)
		_, err = st.CreateEnvironment(ctx, acme.ID, "dev")
		requireConflict(t, err)
		// Names are unique per tenant only.
		gdev, err := st.CreateEnvironment(ctx, globex.ID, "dev")
		require.NoError(t, err)
		require.NotEqual(t, dev.ID, gdev.ID)
		_, err = st.CreateEnvironment(ctx, acme.ID, "prod")
		require.NoError(t, err)

		e, err := st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, dev.ID, e.ID)
		require.NotNil(t, e.Tenant)
		require.Equal(t, "acme", e.Tenant.Name)
		require.Equal(t, acme.ID, e.Tenant.ID)
		require.Empty(t, e.Hosts)

		_, err = st.Environment(ctx, "acme", "staging")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = st.Environment(ctx, "initech", "dev")
		require.ErrorIs(t, err, store.ErrNotFound)

		es, err := st.Environments(ctx, acme.ID)
		require.NoError(t, err)
		require.Len(t, es, 2)
		require.Equal(t, "dev", es[0].Name)
		require.Equal(t, "prod", es[1].Name)
	})
}

func TestAuthoriseHosts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		// Created in the reverse of name order so that id order and name order differ.
		zeta := newHost(t, st, "zeta", "10.0.0.3", true)
		mid := newHost(t, st, "mid", "10.0.0.2", false)
		alpha := newHost(t, st, "alpha", "10.0.0.1", true)
		spare := newHost(t, st, "spare", "10.0.0.4", true)
		env := newEnv(t, st, "acme", "dev")
		other := newEnv(t, st, "acme", "prod")

		require.NoError(t, st.AuthoriseHosts(ctx, env.ID, []uint{zeta.ID, alpha.ID, mid.ID}))
		e, err := st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, []string{"alpha", "mid", "zeta"}, hostNames(e.Hosts))
		// Hosts are preloaded whole, not just their ids.
		require.Equal(t, alpha.Ref(), e.Hosts[0].Ref())
		require.Equal(t, berth.HostReady, e.Hosts[0].State)

		// One unknown id refuses the whole request: a typo must not half-apply.
		err = st.AuthoriseHosts(ctx, env.ID, []uint{spare.ID, 987654})
		require.ErrorIs(t, err, store.ErrNotFound)
		e, err = st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, []string{"alpha", "mid", "zeta"}, hostNames(e.Hosts))

		// Authorising again is how operators converge; it must neither fail
		// nor duplicate the link.
		require.NoError(t, st.AuthoriseHosts(ctx, env.ID, []uint{alpha.ID}))
		require.NoError(t, st.AuthoriseHosts(ctx, env.ID, []uint{alpha.ID, zeta.ID}))
		e, err = st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, []string{"alpha", "mid", "zeta"}, hostNames(e.Hosts))
		var links int64
		require.NoError(t, st.DB().Table("environment_hosts").Where("environment_id = ?", env.ID).Count(&links).Error)
		require.EqualValues(t, 3, links)

		// The API turns each host name into an id, so naming a host twice in
		// one request reaches the store as a repeated id.
		require.NoError(t, st.AuthoriseHosts(ctx, other.ID, []uint{spare.ID, spare.ID}))
		o, err := st.Environment(ctx, "acme", "prod")
		require.NoError(t, err)
		require.Equal(t, []string{"spare"}, hostNames(o.Hosts))

		// Authorising for one environment leaves the others alone.
		e, err = st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, []string{"alpha", "mid", "zeta"}, hostNames(e.Hosts))

		err = st.AuthoriseHosts(ctx, 987654, []uint{alpha.ID})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestEnvironmentLimitsChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		l := berth.Limits{DefaultMemoryBytes: 256 << 20, DefaultNanoCPUs: 500_000_000, DefaultPids: 100, MaxMemoryBytes: 1 << 30, MaxNanoCPUs: 2e9, MaxPids: 1000}
		require.NoError(t, st.SetEnvironmentLimits(ctx, env.ID, l))
		got, err := st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, l, got.Limits)
		require.NoError(t, st.SetEnvironmentLimits(ctx, env.ID, berth.Limits{}), "zero lifts every limit")
		got, err = st.Environment(ctx, "acme", "dev")
		require.NoError(t, err)
		require.Equal(t, berth.Limits{}, got.Limits)
		require.ErrorIs(t, st.SetEnvironmentLimits(ctx, 98765, l), store.ErrNotFound)
	})
}
