package store_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func newRun(kind berth.RunKind, subject string) *store.Run {
	return &store.Run{Kind: kind, WorkflowID: string(kind) + "-" + subject, Subject: subject, StartedBy: "alice"}
}

func TestCreateRunActiveKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const key = "app:1/shop"

		first := newRun("deploy", "acme/dev/shop")
		require.NoError(t, st.CreateRun(ctx, first, key))
		require.NotZero(t, first.ID)
		require.Equal(t, berth.RunPending, first.Status)

		got, err := st.Run(ctx, first.ID)
		require.NoError(t, err)
		require.NotNil(t, got.ActiveKey)
		require.Equal(t, key, *got.ActiveKey)
		require.Nil(t, got.FinishedAt)

		second := newRun("delete", "acme/dev/shop")
		second.StartedBy = "bob"
		ce := requireConflict(t, st.CreateRun(ctx, second, key))
		existing, ok := ce.Existing.(*store.Run)
		require.True(t, ok, "Existing is %T", ce.Existing)
		require.Equal(t, first.ID, existing.ID)
		require.Equal(t, berth.KindDeploy, existing.Kind)
		require.Equal(t, "alice", existing.StartedBy)
		require.Contains(t, ce.Error(), "alice")
		require.EqualValues(t, 1, countRows(t, st, &store.Run{}, ""))

		active, err := st.ActiveRun(ctx, key)
		require.NoError(t, err)
		require.Equal(t, first.ID, active.ID)

		// Runs without a key never collide: NULL is not a value the unique index compares.
		require.NoError(t, st.CreateRun(ctx, newRun("provision", "h1"), ""))
		require.NoError(t, st.CreateRun(ctx, newRun("provision", "h1"), ""))

		require.NoError(t, st.FinishRun(ctx, first.ID, berth.RunSucceeded, ""))
		got, err = st.Run(ctx, first.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunSucceeded, got.Status)
		require.Nil(t, got.ActiveKey)
		require.NotNil(t, got.FinishedAt)
		finishedAt := *got.FinishedAt
		_, err = st.ActiveRun(ctx, key)
		require.ErrorIs(t, err, store.ErrNotFound)

		// A late duplicate of Finish (a retried activity) must not rewrite history.
		require.NoError(t, st.FinishRun(ctx, first.ID, berth.RunFailed, "boom"))
		got, err = st.Run(ctx, first.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunSucceeded, got.Status)
		require.Empty(t, got.Error)
		requireSameTime(t, finishedAt, got.FinishedAt)

		third := newRun("deploy", "acme/dev/shop")
		require.NoError(t, st.CreateRun(ctx, third, key))
		active, err = st.ActiveRun(ctx, key)
		require.NoError(t, err)
		require.Equal(t, third.ID, active.ID)

		require.NoError(t, st.FinishRun(ctx, third.ID, berth.RunFailed, "image not found"))
		got, err = st.Run(ctx, third.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunFailed, got.Status)
		require.Equal(t, "image not found", got.Error)

		_, err = st.Run(ctx, 987654)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestSetRunStarted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		r := newRun("deploy", "shop")
		require.NoError(t, st.CreateRun(ctx, r, ""))

		require.NoError(t, st.SetRunStarted(ctx, r.ID, "temporal-1"))
		got, err := st.Run(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunRunning, got.Status)
		require.Equal(t, "temporal-1", got.TemporalRunID)

		// Only the first start counts; a second report must not move the run.
		require.NoError(t, st.SetRunStarted(ctx, r.ID, "temporal-2"))
		got, err = st.Run(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunRunning, got.Status)
		require.Equal(t, "temporal-1", got.TemporalRunID)

		// A start reported after the run already ended must not resurrect it.
		done := newRun("deploy", "cart")
		require.NoError(t, st.CreateRun(ctx, done, ""))
		require.NoError(t, st.FinishRun(ctx, done.ID, berth.RunCancelled, "cancelled by alice"))
		require.NoError(t, st.SetRunStarted(ctx, done.ID, "temporal-late"))
		got, err = st.Run(ctx, done.ID)
		require.NoError(t, err)
		require.Equal(t, berth.RunCancelled, got.Status)
		require.Empty(t, got.TemporalRunID)
	})
}

func runIDs(rs []store.Run) []uint {
	out := make([]uint, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestRuns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
		// Creation times deliberately out of id order, so sorting by
		// created and by id give different answers.
		specs := []struct {
			kind             berth.RunKind
			status           berth.RunStatus
			by               string
			tenant, env, app uint
			at               time.Duration
		}{
			{"deploy", berth.RunSucceeded, "alice", 1, 1, 1, 2 * time.Hour},
			{"deploy", berth.RunFailed, "bob", 1, 1, 2, 0},
			{"delete", berth.RunSucceeded, "alice", 1, 2, 3, 5 * time.Hour},
			{"provision", berth.RunRunning, "carol", 0, 0, 0, 1 * time.Hour},
			{"deploy", berth.RunRunning, "alice", 2, 3, 4, 3 * time.Hour},
			{"delete", berth.RunPending, "bob", 2, 3, 4, 4*time.Hour + 500*time.Millisecond},
		}
		ids := make([]uint, len(specs))
		for i, s := range specs {
			r := &store.Run{Kind: s.kind, Status: s.status, StartedBy: s.by, TenantID: s.tenant, EnvironmentID: s.env,
				ApplicationID: s.app, WorkflowID: fmt.Sprintf("wf-%d", i), Subject: fmt.Sprintf("subject-%d", i), CreatedAt: base.Add(s.at)}
			require.NoError(t, st.CreateRun(ctx, r, ""))
			require.Equal(t, s.status, r.Status, "a preset status is kept")
			ids[i] = r.ID
		}
		id := func(n ...int) []uint {
			out := make([]uint, 0, len(n))
			for _, i := range n {
				out = append(out, ids[i])
			}
			return out
		}
		ptr := func(d time.Duration) *time.Time { v := base.Add(d); return &v }

		filters := []struct {
			name string
			f    store.RunFilter
			want []uint // default order: newest first
		}{
			{"all", store.RunFilter{}, id(5, 4, 3, 2, 1, 0)},
			{"kind", store.RunFilter{Kind: "deploy"}, id(4, 1, 0)},
			{"status", store.RunFilter{Status: berth.RunSucceeded}, id(2, 0)},
			{"tenant", store.RunFilter{TenantID: 2}, id(5, 4)},
			{"env", store.RunFilter{EnvironmentID: 1}, id(1, 0)},
			{"app", store.RunFilter{ApplicationID: 4}, id(5, 4)},
			{"startedBy", store.RunFilter{StartedBy: "alice"}, id(4, 2, 0)},
			{"since inclusive", store.RunFilter{Since: ptr(3 * time.Hour)}, id(5, 4, 2)},
			{"until exclusive", store.RunFilter{Until: ptr(2 * time.Hour)}, id(3, 1)},
			{"window", store.RunFilter{Since: ptr(time.Hour), Until: ptr(4*time.Hour + 500*time.Millisecond)}, id(4, 3, 0)},
			{"sub-second since", store.RunFilter{Since: ptr(4*time.Hour + 250*time.Millisecond)}, id(5, 2)},
			{"combined", store.RunFilter{Kind: "delete", StartedBy: "bob", TenantID: 2}, id(5)},
			{"no match", store.RunFilter{Kind: "deploy", Status: berth.RunPending}, []uint{}},
		}
		for _, c := range filters {
			rs, total, err := st.Runs(ctx, c.f)
			require.NoError(t, err, c.name)
			require.Equal(t, c.want, runIDs(rs), c.name)
			require.EqualValues(t, len(c.want), total, c.name)
		}

		sorts := map[string][]uint{
			"":         id(5, 4, 3, 2, 1, 0),
			"-id":      id(5, 4, 3, 2, 1, 0),
			"id":       id(0, 1, 2, 3, 4, 5),
			"-created": id(2, 5, 4, 0, 3, 1),
			"created":  id(1, 3, 0, 4, 5, 2),
			// status asc, then newest first within a status
			"status": id(1, 5, 4, 3, 2, 0),
			"kind":   id(5, 2, 4, 1, 0, 3),
		}
		for key := range store.RunSorts {
			_, ok := sorts[key]
			require.True(t, ok, "sort %q has no expectation in this test", key)
		}
		for key, want := range sorts {
			rs, total, err := st.Runs(ctx, store.RunFilter{Sort: key})
			require.NoError(t, err, key)
			require.Equal(t, want, runIDs(rs), "sort %q", key)
			require.EqualValues(t, 6, total)
		}

		for _, bad := range []string{"created_at", "id; DROP TABLE runs", "-status", "ID"} {
			_, _, err := st.Runs(ctx, store.RunFilter{Sort: bad})
			require.Error(t, err, "sort %q", bad)
		}
		// The unknown sort was refused, not run.
		require.EqualValues(t, 6, countRows(t, st, &store.Run{}, ""))

		var paged []uint
		for off := 0; off < 8; off += 2 {
			rs, total, err := st.Runs(ctx, store.RunFilter{Limit: 2, Offset: off})
			require.NoError(t, err)
			require.EqualValues(t, 6, total, "total ignores paging")
			require.LessOrEqual(t, len(rs), 2)
			paged = append(paged, runIDs(rs)...)
		}
		require.Equal(t, id(5, 4, 3, 2, 1, 0), paged)

		rs, total, err := st.Runs(ctx, store.RunFilter{Kind: "deploy", Sort: "id", Limit: 1, Offset: 1})
		require.NoError(t, err)
		require.EqualValues(t, 3, total)
		require.Equal(t, id(1), runIDs(rs))

		rs, total, err = st.Runs(ctx, store.RunFilter{Offset: 100})
		require.NoError(t, err)
		require.EqualValues(t, 6, total)
		require.Empty(t, rs)
	})
}

func TestRunsLimitBounds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for i := 0; i < 55; i++ {
			require.NoError(t, st.CreateRun(ctx, newRun("deploy", fmt.Sprintf("app-%d", i)), ""))
		}
		// An unbounded or absurd limit falls back to one page of 50.
		for _, limit := range []int{0, -1, 201, 100000} {
			rs, total, err := st.Runs(ctx, store.RunFilter{Limit: limit})
			require.NoError(t, err)
			require.EqualValues(t, 55, total)
			require.Len(t, rs, 50, "limit %d", limit)
		}
		rs, _, err := st.Runs(ctx, store.RunFilter{Limit: 200})
		require.NoError(t, err)
		require.Len(t, rs, 55)
		ids := runIDs(rs)
		require.True(t, sort.SliceIsSorted(ids, func(i, j int) bool { return ids[i] > ids[j] }), "newest first")
	})
}

func TestRecordStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)
		at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
		run := newRun("deploy", "shop")
		require.NoError(t, st.CreateRun(ctx, run, ""))
		record := func(name string, state berth.StepState, ms int) {
			t.Helper()
			require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: name, State: state, At: at(ms)}))
		}

		record("plan", berth.StepRunning, 0)
		record("plan", berth.StepDone, 1500)

		record("approve", berth.StepRunning, 2000)
		record("approve", berth.StepWaiting, 3000)
		record("approve", berth.StepRunning, 8000)
		record("approve", berth.StepDone, 8250)

		// Temporal replays and activity retries deliver the same event again.
		record("place", berth.StepRunning, 9000)
		record("place", berth.StepRunning, 9000)
		record("place", berth.StepDone, 11000)
		record("place", berth.StepDone, 11000)

		// A step reported only when it ended (e.g. skipped) has no open interval.
		record("skip-lb", berth.StepDone, 12000)

		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "start", State: berth.StepRunning, At: at(13000), Detail: "starting 5 instances"}))
		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "start", State: berth.StepFailed, At: at(13400), Error: "port in use"}))

		got, err := st.Run(ctx, run.ID)
		require.NoError(t, err)
		require.Len(t, got.Steps, 5)
		steps := map[string]store.Step{}
		for i, s := range got.Steps {
			require.Equal(t, i+1, s.Seq, "steps come back in creation order")
			steps[s.Name] = s
		}
		require.Equal(t, []string{"plan", "approve", "place", "skip-lb", "start"},
			[]string{got.Steps[0].Name, got.Steps[1].Name, got.Steps[2].Name, got.Steps[3].Name, got.Steps[4].Name})

		plan := steps["plan"]
		require.Equal(t, berth.StepDone, plan.State)
		require.EqualValues(t, 1500, plan.ActiveMs)
		require.Zero(t, plan.WaitingMs)
		requireSameTime(t, at(0), plan.StartedAt)
		requireSameTime(t, at(1500), plan.FinishedAt)

		approve := steps["approve"]
		require.Equal(t, berth.StepDone, approve.State)
		require.EqualValues(t, 1000+250, approve.ActiveMs)
		require.EqualValues(t, 5000, approve.WaitingMs)
		requireSameTime(t, at(2000), approve.StartedAt)
		requireSameTime(t, at(8250), approve.FinishedAt)

		place := steps["place"]
		require.EqualValues(t, 2000, place.ActiveMs)
		require.Zero(t, place.WaitingMs)
		requireSameTime(t, at(11000), place.FinishedAt)

		skip := steps["skip-lb"]
		require.Equal(t, berth.StepDone, skip.State)
		requireSameTime(t, at(12000), skip.StartedAt)
		requireSameTime(t, at(12000), skip.FinishedAt)
		require.Zero(t, skip.ActiveMs)
		require.Zero(t, skip.WaitingMs)

		start := steps["start"]
		require.Equal(t, berth.StepFailed, start.State)
		require.EqualValues(t, 400, start.ActiveMs)
		require.Equal(t, "starting 5 instances", start.Detail, "an event without detail keeps the earlier one")
		require.Equal(t, "port in use", start.Error)

		// Sequence numbers are per run.
		other := newRun("deploy", "cart")
		require.NoError(t, st.CreateRun(ctx, other, ""))
		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: other.ID, Name: "plan", State: berth.StepRunning, At: at(0)}))
		og, err := st.Run(ctx, other.ID)
		require.NoError(t, err)
		require.Len(t, og.Steps, 1)
		require.Equal(t, 1, og.Steps[0].Seq)
		require.Nil(t, og.Steps[0].FinishedAt, "a running step is not finished")
	})
}

func TestRecordStepOutOfOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)
		run := newRun("deploy", "shop")
		require.NoError(t, st.CreateRun(ctx, run, ""))

		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "pull", State: berth.StepRunning, At: t0}))
		// An event stamped before the interval opened (clock skew between
		// workers) must not subtract time.
		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "pull", State: berth.StepDone, At: t0.Add(-time.Second)}))
		got, err := st.Run(ctx, run.ID)
		require.NoError(t, err)
		require.Len(t, got.Steps, 1)
		require.Zero(t, got.Steps[0].ActiveMs)
		require.Equal(t, berth.StepDone, got.Steps[0].State)
	})
}
