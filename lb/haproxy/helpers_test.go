package haproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/lb"
)

// requireBinary skips when HAProxy is missing, unless BERTH_REQUIRE_E2E=1
// (CI) turns the skip into a failure.
func requireBinary(t testing.TB) string {
	t.Helper()
	bin, err := FindBinary("")
	if err != nil {
		if os.Getenv("BERTH_REQUIRE_E2E") == "1" {
			t.Fatalf("haproxy binary required (BERTH_REQUIRE_E2E=1): %v", err)
		}
		t.Skipf("haproxy binary not found (%v): run deploy/local/deps.sh test, or apt-get install haproxy", err)
	}
	return bin
}

// testCtx bounds every call of a test so a wedged HAProxy fails the test
// instead of hanging it.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// harness is a real HAProxy in the test's temp dir plus a driver and an
// HTTP client for its frontends.
type harness struct {
	t      testing.TB
	ctx    context.Context
	m      *Manager
	d      *Driver
	client *http.Client
}

func newHarness(t testing.TB, backends ...lb.Backend) *harness {
	t.Helper()
	requireBinary(t)
	m, err := NewManager(Config{Dir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, m.Load(backends))
	ctx := testCtx(t)
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() { require.NoError(t, m.Stop()) })
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, ctx: ctx, m: m, d: New(m), client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// backendServer is a small HTTP server on 127.0.0.1 that answers its own
// name, so a response tells which server served it.
type backendServer struct {
	name string
	addr string
}

func startBackend(t testing.TB, name string) backendServer {
	t.Helper()
	return startBackendHealth(t, name, http.StatusOK)
}

// startBackendHealth answers /healthz with health, /status/<code> with
// that code (to feed the per-class counters) and everything else with 200.
func startBackendHealth(t testing.TB, name string, health int) backendServer {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(health)
			return
		}
		if c, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			if code, err := strconv.Atoi(c); err == nil {
				w.WriteHeader(code)
			}
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return backendServer{name: name, addr: strings.TrimPrefix(srv.URL, "http://")}
}

func (s backendServer) server(weight int) lb.Server {
	return lb.Server{Name: s.name, Addr: s.addr, Weight: weight, State: lb.StateReady}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// reqOption changes a request before it is sent.
type reqOption func(*http.Request)

func withHeader(name, value string) reqOption {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func withCookie(name, value string) reqOption {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}

// do sends one request for path through a frontend and returns the status
// and the body, which names the server that answered.
func (h *harness) do(listen, path string, opts ...reqOption) (int, string, error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, "http://"+listen+path, nil)
	if err != nil {
		return 0, "", err
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// get sends one request through a frontend and returns which server answered.
func (h *harness) get(listen string, opts ...reqOption) (string, error) {
	code, body, err := h.do(listen, "/", opts...)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", &statusError{code: code, body: body}
	}
	return body, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return http.StatusText(e.code) + ": " + e.body }

// hits sends n requests and counts them per answering server; every request
// must succeed.
func (h *harness) hits(listen string, n int, opts ...reqOption) map[string]int {
	h.t.Helper()
	counts := map[string]int{}
	for range n {
		name, err := h.get(listen, opts...)
		require.NoError(h.t, err)
		counts[name]++
	}
	return counts
}

// percent is 100*part/total.
func percent(part, total int) float64 { return 100 * float64(part) / float64(total) }

// stats returns the backend's stats by server name.
func (h *harness) stats(backend string) map[string]lb.ServerStats {
	h.t.Helper()
	list, err := h.d.Stats(h.ctx, backend)
	require.NoError(h.t, err)
	res := map[string]lb.ServerStats{}
	for _, s := range list {
		res[s.Name] = s
	}
	return res
}

func (h *harness) workerPID() int {
	h.t.Helper()
	pid, err := h.m.WorkerPID(h.ctx)
	require.NoError(h.t, err)
	return pid
}

// requireServes waits until the frontend answers, since a new listener
// in a reloaded worker is what EnsureBackend promises.
func (h *harness) requireServes(listen string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		_, err := h.get(listen)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "frontend %s does not serve", listen)
}

// reloads is the master's reload counter.
func (h *harness) reloads() int {
	h.t.Helper()
	p, err := h.m.showProc(h.ctx)
	require.NoError(h.t, err)
	return p.Reloads
}

// requireRouted waits until requests carrying opts all reach server. Right
// after a reload, a new connection may still be accepted by the old worker,
// with the old rules, until the master has told it to stop; and an idle
// keep-alive connection would keep leading there.
func (h *harness) requireRouted(listen, server string, opts ...reqOption) {
	h.t.Helper()
	h.client.CloseIdleConnections()
	require.Eventually(h.t, func() bool {
		for range 5 {
			if name, err := h.get(listen, opts...); err != nil || name != server {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "requests do not reach %s", server)
}
