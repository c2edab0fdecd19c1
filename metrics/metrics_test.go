package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/metrics"
)

func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func TestRegistryCounts(t *testing.T) {
	r := metrics.New("server")
	r.RunStarted("deploy")
	r.RunEnded("deploy", "succeeded", 3*time.Second)
	r.HTTPRequest("GET", "/api/v1/runs/:id", 200, 2*time.Millisecond)
	r.HTTPRequest("GET", "", 404, time.Millisecond)
	r.SSEClient(1)
	r.SSEClient(1)
	r.SSEClient(-1)
	r.LockConflict("/api/v1/services/:id/scale")
	out := scrape(t, r)
	for _, want := range []string{
		`berth_runs_started_total{component="server",kind="deploy"} 1`,
		`berth_runs_ended_total{component="server",kind="deploy",outcome="succeeded"} 1`,
		`berth_run_duration_seconds_bucket{component="server",kind="deploy",outcome="succeeded",le="5"} 1`,
		`berth_run_duration_seconds_bucket{component="server",kind="deploy",outcome="succeeded",le="2.5"} 0`,
		`berth_http_requests_total{component="server",method="GET",route="/api/v1/runs/:id",status="200"} 1`,
		`berth_http_requests_total{component="server",method="GET",route="unmatched",status="404"} 1`,
		`berth_sse_clients{component="server"} 1`,
		`berth_lock_conflicts_total{component="server",route="/api/v1/services/:id/scale"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		require.Contains(t, out, want)
	}

	var none *metrics.Registry
	none.RunStarted("deploy") // a nil Registry counts nothing and never panics
	none.SSEClient(1)
	rec := httptest.NewRecorder()
	none.Handler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 404, rec.Code)
}

// The SDK's metrics arrive under its names with its tags as labels; a
// later use of a name with other tags keeps the first label set, and a
// name used as two kinds is dropped rather than panic in a worker.
func TestTemporalHandler(t *testing.T) {
	r := metrics.New("worker")
	h := r.Temporal().WithTags(map[string]string{"namespace": "default", "task-queue": "berth"})
	h.Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.Timer("temporal_activity_execution_latency").Record(30 * time.Millisecond)
	h.Gauge("temporal_worker_task_slots_available").Update(7)
	h.Gauge("temporal_request").Update(1)
	out := scrape(t, r)
	require.Contains(t, out, `temporal_request{namespace="default",task_queue="berth"} 3`)
	require.Contains(t, out, `temporal_activity_execution_latency_bucket{namespace="default",task_queue="berth",le="0.05"} 1`)
	require.Contains(t, out, `temporal_worker_task_slots_available{namespace="default",task_queue="berth"} 7`)
	require.Equal(t, 1, strings.Count(out, "# TYPE temporal_request "), "one family per name")
}
