package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/store"
)

// /metrics counts requests by route pattern, reads the approvals waiting
// from the database, and asks for its token when one is set.
func TestMetricsEndpoint(t *testing.T) {
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "berth.db"))
	require.NoError(t, err)
	require.NoError(t, st.Migrate(context.Background()))
	t.Cleanup(func() { _ = st.Close() })
	s := New(Config{Metrics: metrics.New("server"), MetricsToken: "scrape-me"}, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := s.Handler()
	get := func(path, token string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, _ := get("/healthz", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/no/such/route", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get("/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get("/metrics", "wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := get("/metrics", "scrape-me")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `berth_http_requests_total{component="server",method="GET",route="/healthz",status="200"} 1`)
	require.Contains(t, body, `berth_http_requests_total{component="server",method="GET",route="unmatched",status="404"} 1`)
	require.Contains(t, body, `berth_http_requests_total{component="server",method="GET",route="/metrics",status="401"} 2`)
	require.Contains(t, body, "berth_approvals_waiting 0")
	require.Contains(t, body, "berth_approval_oldest_wait_seconds 0")
}
