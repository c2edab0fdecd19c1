package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// forEachBackend runs fn once per database, each time on a fresh, migrated
// store, so that no test depends on rows left by another.
func forEachBackend(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	for _, b := range storetest.Backends(os.Getenv("BERTH_TEST_MYSQL_DSN")) {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, b.Open(t))
		})
	}
}

// newHost creates a host; ready hosts also get their facts recorded, as
// ProvisionHost would, because only ready hosts are placed on.
func newHost(t *testing.T, st *store.Store, name, ip string, ready bool) *store.Host {
	t.Helper()
	ctx := context.Background()
	h := &store.Host{Name: name, Region: "eu-west", Endpoint: "unix:///var/run/docker.sock", IP: ip, VolumeRoot: "/srv/berth/" + name}
	require.NoError(t, st.CreateHost(ctx, h))
	if ready {
		require.NoError(t, st.SetHostFacts(ctx, h.ID, berth.HostFacts{State: berth.HostReady, EngineVersion: "27.1.1", APIVersion: "1.46", CPUs: 4, MemoryBytes: 8 << 30}))
		got, err := st.Host(ctx, h.ID)
		require.NoError(t, err)
		h = got
	}
	return h
}

// newEnv creates tenant/env (the tenant only if missing) and authorises hosts.
func newEnv(t *testing.T, st *store.Store, tenant, env string, hosts ...*store.Host) *store.Environment {
	t.Helper()
	ctx := context.Background()
	tn, err := st.TenantByName(ctx, tenant)
	if err != nil {
		require.ErrorIs(t, err, store.ErrNotFound)
		tn, err = st.CreateTenant(ctx, tenant)
		require.NoError(t, err)
	}
	e, err := st.CreateEnvironment(ctx, tn.ID, env)
	require.NoError(t, err)
	if len(hosts) > 0 {
		ids := make([]uint, 0, len(hosts))
		for _, h := range hosts {
			ids = append(ids, h.ID)
		}
		require.NoError(t, st.AuthoriseHosts(ctx, e.ID, ids))
	}
	got, err := st.Environment(ctx, tenant, env)
	require.NoError(t, err)
	return got
}

func appKey(envID uint, app string) string { return fmt.Sprintf("app:%d/%s", envID, app) }

// beginDeploy opens a deploy of app in env the way the API does.
func beginDeploy(t *testing.T, st *store.Store, env *store.Environment, app string) (*store.Application, *store.Run) {
	t.Helper()
	run := &store.Run{Kind: "deploy", WorkflowID: "deploy-" + app + "-" + storetest.RandHex(4), TenantID: env.TenantID,
		EnvironmentID: env.ID, Subject: app, StartedBy: "alice"}
	a, err := st.BeginDeploy(context.Background(), env.ID, app, "services: {}", "hash-"+app, run, appKey(env.ID, app))
	require.NoError(t, err)
	return a, run
}

// redeploy closes the app's current run as failed and opens a new deploy,
// the path by which a later run of the same application is made.
func redeploy(t *testing.T, st *store.Store, env *store.Environment, app *store.Application) *store.Run {
	t.Helper()
	ctx := context.Background()
	cur, err := st.Application(ctx, app.ID)
	require.NoError(t, err)
	require.NoError(t, st.SetApplicationState(ctx, app.ID, berth.StateFailed))
	require.NoError(t, st.FinishRun(ctx, cur.LastRunID, berth.RunFailed, "superseded"))
	again, run := beginDeploy(t, st, env, app.Name)
	require.Equal(t, app.ID, again.ID)
	return run
}

func requireConflict(t *testing.T, err error) *store.ConflictError {
	t.Helper()
	var ce *store.ConflictError
	require.ErrorAs(t, err, &ce)
	return ce
}

// requireSameTime compares instants, not representations: the databases
// hand times back in different locations.
func requireSameTime(t *testing.T, want time.Time, got *time.Time) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.Equal(*got), "want %s, got %s", want, *got)
}

func countRows(t *testing.T, st *store.Store, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := st.DB().Model(model)
	if where != "" {
		q = q.Where(where, args...)
	}
	require.NoError(t, q.Count(&n).Error)
	return n
}

func TestAudit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
		require.NoError(t, st.Audit(ctx, store.AuditEvent{Actor: "alice", Action: "tenant.create", Target: "acme", Remote: "10.0.0.1", Outcome: "ok"}))
		require.NoError(t, st.Audit(ctx, store.AuditEvent{At: at, Actor: "bob", Action: "app.deploy", Target: "acme/dev/shop", Outcome: "accepted", Detail: "run 7"}))
		require.NoError(t, st.Audit(ctx, store.AuditEvent{Actor: "carol", Action: "app.delete", Target: "acme/dev/shop", Outcome: "denied"}))

		evs, err := st.AuditEvents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, evs, 3)
		// Newest is by insertion, not by At: the explicit At is in the past.
		require.Equal(t, []string{"app.delete", "app.deploy", "tenant.create"},
			[]string{evs[0].Action, evs[1].Action, evs[2].Action})
		require.Greater(t, evs[0].ID, evs[1].ID)
		require.Greater(t, evs[1].ID, evs[2].ID)

		requireSameTime(t, at, &evs[1].At)
		require.Equal(t, "run 7", evs[1].Detail)
		require.Equal(t, "bob", evs[1].Actor)
		// A zero At is stamped by the store.
		require.WithinDuration(t, time.Now(), evs[0].At, time.Minute)
		require.WithinDuration(t, time.Now(), evs[2].At, time.Minute)

		top, err := st.AuditEvents(ctx, 2)
		require.NoError(t, err)
		require.Len(t, top, 2)
		require.Equal(t, evs[:2], top)
	})
}

// The longest route berth has fits the audit log's action column (MariaDB
// refuses what does not fit, and the action would go unrecorded).
func TestAuditLongestAction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		long := "DELETE /api/v1/tenants/:tenant/environments/:env/applications/:app"
		require.NoError(t, st.Audit(ctx, store.AuditEvent{Actor: "dave", Action: long,
			Target: "/api/v1/tenants/acme/environments/dev/applications/shop", Outcome: "202"}))
		evs, err := st.AuditEvents(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, long, evs[0].Action)
	})
}
