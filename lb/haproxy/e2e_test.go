package haproxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/lb"
)

func TestWeightsSplitWithoutReload(t *testing.T) {
	listen := freeAddr(t)
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen}))
	a, b := startBackend(t, "a"), startBackend(t, "b")
	require.NoError(t, h.d.AddServer(h.ctx, "web", a.server(1)))
	require.NoError(t, h.d.AddServer(h.ctx, "web", b.server(3)))
	worker := h.workerPID()
	before, err := h.m.showProc(h.ctx)
	require.NoError(t, err)

	c := h.hits(listen, 400)
	t.Logf("weights a=1 b=3: a %.1f%%, b %.1f%%", percent(c["a"], 400), percent(c["b"], 400))
	require.Equal(t, 400, c["a"]+c["b"])
	require.InDelta(t, 25, percent(c["a"], 400), 8)

	require.NoError(t, h.d.SetWeight(h.ctx, "web", "a", 3))
	require.NoError(t, h.d.SetWeight(h.ctx, "web", "b", 1))
	c = h.hits(listen, 400)
	t.Logf("weights a=3 b=1: a %.1f%%, b %.1f%%", percent(c["a"], 400), percent(c["b"], 400))
	require.InDelta(t, 75, percent(c["a"], 400), 8)

	require.Equal(t, worker, h.workerPID(), "a weight change must not replace the worker")
	after, err := h.m.showProc(h.ctx)
	require.NoError(t, err)
	require.Equal(t, before.Reloads, after.Reloads, "a weight change must not reload")
	st := h.stats("web")
	require.Equal(t, 3, st["a"].Weight)
	require.Equal(t, 1, st["b"].Weight)
}

func TestDrainStopsNewTraffic(t *testing.T) {
	listen := freeAddr(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen,
		Servers: []lb.Server{a.server(1), b.server(1)}}))
	h.requireServes(listen)
	require.NotZero(t, h.hits(listen, 20)["a"])

	require.NoError(t, h.d.SetState(h.ctx, "web", "a", lb.StateDrain))
	st0 := h.stats("web")
	c := h.hits(listen, 100)
	require.Zero(t, c["a"], "a drained server got new requests")
	require.Equal(t, 100, c["b"])
	st := h.stats("web")
	require.Equal(t, lb.StateDrain, st["a"].State)
	require.Equal(t, 1, st["a"].Weight, "draining keeps the weight for later")
	require.Equal(t, lb.StateReady, st["b"].State)
	require.Equal(t, st0["a"].Responses2xx, st["a"].Responses2xx)
	require.Equal(t, int64(100), st["b"].Responses2xx-st0["b"].Responses2xx, "hrsp_2xx counts every response")
}

// TestReloadKeepsRuntimeState is the GitLab-incident guard: a reload must
// never bring a drained server back or undo a weight change.
func TestReloadKeepsRuntimeState(t *testing.T) {
	listen := freeAddr(t)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen,
		Servers: []lb.Server{a.server(1), b.server(1), c.server(1)}}))
	require.NoError(t, h.d.SetState(h.ctx, "web", "a", lb.StateDrain))
	require.NoError(t, h.d.SetWeight(h.ctx, "web", "b", 5))
	worker := h.workerPID()

	require.NoError(t, h.m.Reload(h.ctx))
	require.NotEqual(t, worker, h.workerPID(), "Reload must load a new worker")

	st := h.stats("web")
	require.Equal(t, lb.StateDrain, st["a"].State)
	require.Equal(t, 1, st["a"].Weight)
	require.Equal(t, lb.StateReady, st["b"].State)
	require.Equal(t, 5, st["b"].Weight)
	require.Equal(t, 1, st["c"].Weight)

	hits := h.hits(listen, 600)
	t.Logf("after reload, a drained, b=5 c=1: a %d, b %.1f%%, c %.1f%%", hits["a"], percent(hits["b"], 600), percent(hits["c"], 600))
	require.Zero(t, hits["a"])
	require.InDelta(t, 100*5.0/6, percent(hits["b"], 600), 8)
}

// TestPlainReloadForgetsRuntimeState documents the HAProxy behaviour the
// guard exists for, and the configuration's own line of defence: a reload
// that bypasses Manager.Reload resets the drained server to "ready", but
// the rendered weight 0 still keeps it out of rotation.
func TestPlainReloadForgetsRuntimeState(t *testing.T) {
	listen := freeAddr(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1), b.server(1)}})
	require.NoError(t, h.d.SetState(h.ctx, "web", "a", lb.StateDrain))
	worker := h.workerPID()

	_, _ = h.m.master(h.ctx, "reload")
	require.Eventually(t, func() bool {
		pid, err := h.m.WorkerPID(h.ctx)
		if err != nil || pid == worker {
			return false
		}
		out, err := h.m.runtime(h.ctx, "show info")
		return err == nil && parseInfoPid(out) == pid
	}, 10*time.Second, 20*time.Millisecond)

	st := h.stats("web")
	require.Equal(t, lb.StateReady, st["a"].State, "HAProxy forgets runtime states on reload")
	require.Equal(t, 0, st["a"].Weight, "the configuration keeps drained servers at weight 0")
	require.Zero(t, h.hits(listen, 50)["a"])

	require.NoError(t, h.m.Reload(h.ctx))
	st = h.stats("web")
	require.Equal(t, lb.StateDrain, st["a"].State)
	require.Equal(t, 1, st["a"].Weight)
}

func TestRestartAfterKill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		killMaster bool
		// recover brings HAProxy back: EnsureRunning, or simply the next
		// driver call.
		recover func(h *harness) error
	}{
		{"MasterAndWorker", true, func(h *harness) error { return h.m.EnsureRunning(h.ctx) }},
		{"WorkerOnly", false, func(h *harness) error { return h.d.SetWeight(h.ctx, "web", "b", 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := freeAddr(t)
			a, b, c, d := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c"), startBackend(t, "d")
			h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen,
				Servers: []lb.Server{a.server(1), b.server(1), c.server(2), d.server(1)}})
			require.NoError(t, h.d.SetWeight(h.ctx, "web", "b", 3))
			require.NoError(t, h.d.SetState(h.ctx, "web", "c", lb.StateDrain))
			require.NoError(t, h.d.SetState(h.ctx, "web", "d", lb.StateMaint))
			master, worker := h.m.MasterPID(), h.workerPID()

			require.NoError(t, syscall.Kill(worker, syscall.SIGKILL))
			if tc.killMaster {
				// The master may already be gone: it exits when its worker dies.
				if err := syscall.Kill(master, syscall.SIGKILL); !errors.Is(err, syscall.ESRCH) {
					require.NoError(t, err)
				}
			}
			// HAProxy's master exits when its worker dies (exit-on-failure),
			// the worker when its master dies.
			require.Eventually(t, func() bool { return !h.m.Running() }, 10*time.Second, 20*time.Millisecond)

			require.NoError(t, tc.recover(h))
			require.NotEqual(t, master, h.m.MasterPID())
			require.False(t, procAlive(worker))

			st := h.stats("web")
			require.Equal(t, lb.ServerStats{Name: "a", State: lb.StateReady, Weight: 1}, trimCounters(st["a"]))
			require.Equal(t, lb.ServerStats{Name: "b", State: lb.StateReady, Weight: 3}, trimCounters(st["b"]))
			require.Equal(t, lb.ServerStats{Name: "c", State: lb.StateDrain, Weight: 2}, trimCounters(st["c"]))
			require.Equal(t, lb.ServerStats{Name: "d", State: lb.StateMaint, Weight: 1}, trimCounters(st["d"]))

			hits := h.hits(listen, 400)
			t.Logf("after restart: a %.1f%%, b %.1f%%, c %d, d %d", percent(hits["a"], 400), percent(hits["b"], 400), hits["c"], hits["d"])
			require.Zero(t, hits["c"])
			require.Zero(t, hits["d"])
			require.InDelta(t, 25, percent(hits["a"], 400), 8)

			// d was rendered "disabled"; it must still be able to come back.
			require.NoError(t, h.d.SetState(h.ctx, "web", "d", lb.StateReady))
			require.NotZero(t, h.hits(listen, 50)["d"])
		})
	}
}

func trimCounters(s lb.ServerStats) lb.ServerStats {
	return lb.ServerStats{Name: s.Name, State: s.State, Weight: s.Weight}
}

// load sends requests through a frontend from one goroutine until stopped,
// bounded in count and time, and counts successes per server and failures.
type load struct {
	stop, done chan struct{}
	ok, failed atomic.Int64
	mu         sync.Mutex
	perServer  map[string]int
	firstErr   error
}

func startLoad(h *harness, listen string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{}), perServer: map[string]int{}}
	go func() {
		defer close(l.done)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 50000 && time.Now().Before(deadline); i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			name, err := h.get(listen)
			l.mu.Lock()
			if err != nil {
				l.failed.Add(1)
				if l.firstErr == nil {
					l.firstErr = err
				}
			} else {
				l.ok.Add(1)
				l.perServer[name]++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *load) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	require.Eventually(t, func() bool { return l.ok.Load() >= target }, 20*time.Second, 5*time.Millisecond)
}

func (l *load) hits(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perServer[name]
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	<-l.done
}

func TestRemoveServerUnderLoad(t *testing.T) {
	listen := freeAddr(t)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1), b.server(1)}})
	h.requireServes(listen)

	l := startLoad(h, listen)
	l.waitMore(t, 100)

	// Drain, then remove.
	require.NoError(t, h.d.SetState(h.ctx, "web", "a", lb.StateDrain))
	require.NoError(t, h.d.RemoveServer(h.ctx, "web", "a"))
	require.NoError(t, h.d.RemoveServer(h.ctx, "web", "a"), "removing twice is fine")
	aHits := l.hits("a")
	l.waitMore(t, 100)
	require.Equal(t, aHits, l.hits("a"), "a removed server still got requests")

	// Remove a server that is still in rotation: maintenance first lets its
	// running requests finish.
	require.NoError(t, h.d.AddServer(h.ctx, "web", c.server(1)))
	cHits := l.hits("c")
	require.Eventually(t, func() bool { return l.hits("c") > cHits }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, h.d.RemoveServer(h.ctx, "web", "b"))
	l.waitMore(t, 100)
	l.finish(t)

	t.Logf("requests: %d ok (a %d, b %d, c %d), %d failed", l.ok.Load(), l.hits("a"), l.hits("b"), l.hits("c"), l.failed.Load())
	require.Zero(t, l.failed.Load(), "first failure: %v", l.firstErr)
	st := h.stats("web")
	require.Len(t, st, 1)
	require.Contains(t, st, "c")
	require.Equal(t, []lb.Server{c.server(1)}, h.m.Backends()[0].Servers)
}

func TestAddServerIsIdempotent(t *testing.T) {
	listen := freeAddr(t)
	a, moved := startBackend(t, "a"), startBackend(t, "moved")
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen}))

	require.NoError(t, h.d.AddServer(h.ctx, "web", a.server(1)))
	require.NoError(t, h.d.AddServer(h.ctx, "web", a.server(1)))
	rows, err := h.m.serverRows(h.ctx, "web")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, 50, h.hits(listen, 50)["a"])

	// Same name again with another address, weight and state: an update.
	require.NoError(t, h.d.AddServer(h.ctx, "web", lb.Server{Name: "a", Addr: moved.addr, Weight: 4, State: lb.StateReady}))
	st := h.stats("web")
	require.Len(t, st, 1)
	require.Equal(t, 4, st["a"].Weight)
	require.Equal(t, 50, h.hits(listen, 50)["moved"], "the server's address was not updated")
	require.Equal(t, []lb.Server{{Name: "a", Addr: moved.addr, Weight: 4, State: lb.StateReady}}, h.m.Backends()[0].Servers)
}

func TestEnsureBackendReloadsOnlyForListenerChanges(t *testing.T) {
	listen, listen2 := freeAddr(t), freeAddr(t)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen,
		Servers: []lb.Server{a.server(1), b.server(1)}}))
	h.requireServes(listen)
	worker := h.workerPID()

	want := lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{
		b.server(2), {Name: "c", Addr: c.addr, Weight: 1, State: lb.StateDrain}}}
	require.NoError(t, h.d.EnsureBackend(h.ctx, want))
	require.NoError(t, h.d.EnsureBackend(h.ctx, want), "EnsureBackend is idempotent")
	require.Equal(t, worker, h.workerPID(), "server changes must not reload")
	st := h.stats("web")
	require.Len(t, st, 2)
	require.Equal(t, lb.StateReady, st["b"].State)
	require.Equal(t, 2, st["b"].Weight)
	require.Equal(t, lb.StateDrain, st["c"].State)
	require.Equal(t, 50, h.hits(listen, 50)["b"])

	want.ListenAddr = listen2
	require.NoError(t, h.d.EnsureBackend(h.ctx, want))
	require.NotEqual(t, worker, h.workerPID(), "a new listener needs a reload")
	h.requireServes(listen2)
	h.client.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	require.Eventually(t, func() bool { _, err := h.get(listen); return err != nil }, 10*time.Second, 20*time.Millisecond,
		"the old listener still serves")
	st = h.stats("web")
	require.Equal(t, lb.StateDrain, st["c"].State, "the reload kept the drain")
	require.Equal(t, 2, st["b"].Weight)

	require.NoError(t, h.d.RemoveBackend(h.ctx, "web"))
	require.NoError(t, h.d.RemoveBackend(h.ctx, "web"), "absent is fine")
	h.client.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	require.Eventually(t, func() bool { _, err := h.get(listen2); return err != nil }, 10*time.Second, 20*time.Millisecond)
	_, err := h.d.Stats(h.ctx, "web")
	require.ErrorIs(t, err, ErrUnknownBackend)
	require.Empty(t, h.m.Backends())
}

func TestEnsureBackendRollsBackARejectedListener(t *testing.T) {
	listen := freeAddr(t)
	a := startBackend(t, "a")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1)}})
	h.requireServes(listen)

	// The address is taken by another (non-reuseport) socket, so the new
	// worker cannot bind it and the master reports a failed reload.
	taken := startBackend(t, "squatter").addr
	err := h.d.EnsureBackend(h.ctx, lb.Backend{Name: "api", ListenAddr: taken})
	require.ErrorIs(t, err, ErrRejected)
	t.Logf("rejected reload: %v", err)
	require.Len(t, h.m.Backends(), 1, "the rejected backend is not remembered")
	h.requireServes(listen)
	require.NoError(t, h.m.Reload(h.ctx), "the configuration on disk was rolled back too")
}

func TestHealthChecks(t *testing.T) {
	listen := freeAddr(t)
	a := startBackend(t, "a")
	sick := startBackendHealth(t, "sick", 503)
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "web", ListenAddr: listen, HealthPath: "/healthz"}))
	require.NoError(t, h.d.AddServer(h.ctx, "web", a.server(1)))
	require.NoError(t, h.d.AddServer(h.ctx, "web", sick.server(1)))

	require.Eventually(t, func() bool {
		st := h.stats("web")
		return st["sick"].State == StateDown && st["a"].State == lb.StateReady
	}, 10*time.Second, 50*time.Millisecond, "dynamic servers must be health-checked (enable health)")
	require.Equal(t, 50, h.hits(listen, 50)["a"])

	// "show stat" says DOWN for a failing server whatever its admin state;
	// the post-reload check must still see ready and drain correctly.
	require.NoError(t, h.m.Reload(h.ctx))
	require.NoError(t, h.d.SetState(h.ctx, "web", "sick", lb.StateDrain))
	require.NoError(t, h.m.Reload(h.ctx))
	adm, err := h.m.serversState(h.ctx)
	require.NoError(t, err)
	require.Equal(t, lb.StateDrain, adm["be_web/sick"].state())
}

// TestStartReplacesStaleProcess: berth restarted after a crash finds the
// HAProxy of its previous run still holding the ports.
func TestStartReplacesStaleProcess(t *testing.T) {
	listen := freeAddr(t)
	a := startBackend(t, "a")
	backend := lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1)}}
	h := newHarness(t, backend)
	old := h.m.MasterPID()

	m2, err := NewManager(Config{Dir: h.m.Dir()})
	require.NoError(t, err)
	require.NoError(t, m2.Load([]lb.Backend{backend}))
	require.NoError(t, m2.Start(h.ctx))
	t.Cleanup(func() { require.NoError(t, m2.Stop()) })

	require.False(t, isOurHAProxy(old, m2.cfg.cfgPath()), "the previous master still runs")
	require.NotEqual(t, old, m2.MasterPID())
	h.d = New(m2)
	h.requireServes(listen)
	require.Equal(t, 20, h.hits(listen, 20)["a"])
}

// TestStartIgnoresForeignPidfile: a pidfile naming an unrelated live process
// (here the test itself) and leftover socket files must neither block the
// start nor get anything killed.
func TestStartIgnoresForeignPidfile(t *testing.T) {
	requireBinary(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "haproxy.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.sock"), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "master.sock"), nil, 0o600))

	m, err := NewManager(Config{Dir: dir})
	require.NoError(t, err)
	ctx := testCtx(t)
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() { require.NoError(t, m.Stop()) })
	require.NoError(t, m.EnsureRunning(ctx), "a healthy process is left alone")
	pid, err := m.WorkerPID(ctx)
	require.NoError(t, err)
	require.NotZero(t, pid)
}

func TestTCPMode(t *testing.T) {
	listen := freeAddr(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	h := newHarness(t)
	require.NoError(t, h.d.EnsureBackend(h.ctx, lb.Backend{Name: "raw", ListenAddr: listen, Mode: "tcp"}))
	require.NoError(t, h.d.AddServer(h.ctx, "raw", a.server(1)))
	require.NoError(t, h.d.AddServer(h.ctx, "raw", b.server(1)))
	// TCP mode balances connections, not requests.
	h.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

	c := h.hits(listen, 100)
	require.InDelta(t, 50, percent(c["a"], 100), 8)
	require.NoError(t, h.d.SetState(h.ctx, "raw", "a", lb.StateDrain))
	require.Equal(t, 50, h.hits(listen, 50)["b"])
	st := h.stats("raw")
	require.Equal(t, lb.StateDrain, st["a"].State)
	require.Positive(t, st["b"].TotalSessions)
	require.NoError(t, h.d.RemoveServer(h.ctx, "raw", "a"))
	require.NoError(t, h.m.Reload(h.ctx))
	require.Equal(t, 20, h.hits(listen, 20)["b"])
}

func TestStatsPage(t *testing.T) {
	requireBinary(t)
	statsAddr := freeAddr(t)
	m, err := NewManager(Config{Dir: t.TempDir(), StatsAddr: statsAddr})
	require.NoError(t, err)
	ctx := testCtx(t)
	require.NoError(t, m.Load([]lb.Backend{{Name: "web", ListenAddr: freeAddr(t)}}))
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() { require.NoError(t, m.Stop()) })

	resp, err := http.Get("http://" + statsAddr + "/;csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "be_web,BACKEND")

	resp, err = http.Get("http://" + statsAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `haproxy_backend_status{proxy="be_web"`, "HAProxy's Prometheus exporter")
}
