package haproxy

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/lb"
)

var canaryHeader = withHeader("X-Canary", "always")

func canaryRoute(servers ...string) lb.Route {
	return lb.Route{Header: "X-Canary", Value: "always", Servers: servers}
}

func TestRoutesReachWeightZeroCanary(t *testing.T) {
	listen := freeAddr(t)
	stable, canary := startBackend(t, "a"), startBackend(t, "b")
	h := newHarness(t)
	web := lb.Backend{Name: "web", ListenAddr: listen,
		Servers: []lb.Server{stable.server(100), canary.server(0)},
		Routes:  []lb.Route{canaryRoute("b"), {Cookie: "canary", Value: "always", Servers: []string{"b"}}}}
	require.NoError(t, h.d.EnsureBackend(h.ctx, web))
	h.requireServes(listen)

	require.Equal(t, map[string]int{"a": 50}, h.hits(listen, 50))
	require.Equal(t, map[string]int{"b": 50}, h.hits(listen, 50, canaryHeader))
	require.Equal(t, map[string]int{"b": 20}, h.hits(listen, 20, withHeader("x-canary", "always")), "header names are case-insensitive")
	require.Equal(t, map[string]int{"b": 50}, h.hits(listen, 50, withCookie("canary", "always")))
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20, withHeader("X-Canary", "Always")), "values are case-sensitive")
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20, withHeader("X-Canary", "never")))
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20, withCookie("other", "always")))

	// Routes ignore weights but not maintenance: a route whose servers are
	// all out is balanced as usual. A drained server, like a sticky one in
	// HAProxy, still takes routed requests.
	require.NoError(t, h.d.SetState(h.ctx, "web", "b", lb.StateMaint))
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20, canaryHeader))
	require.NoError(t, h.d.SetState(h.ctx, "web", "b", lb.StateDrain))
	require.Equal(t, map[string]int{"b": 20}, h.hits(listen, 20, canaryHeader))
	require.NoError(t, h.d.SetState(h.ctx, "web", "b", lb.StateReady))

	worker := h.workerPID()
	web.Servers = []lb.Server{stable.server(50), canary.server(0)}
	require.NoError(t, h.d.EnsureBackend(h.ctx, web))
	require.Equal(t, worker, h.workerPID(), "same routes: a weight change must not reload")

	web.Routes = web.Routes[:1]
	require.NoError(t, h.d.EnsureBackend(h.ctx, web))
	require.NotEqual(t, worker, h.workerPID(), "a change of routes reloads")
	h.requireRouted(listen, "a", withCookie("canary", "always"))
	require.Equal(t, map[string]int{"b": 20}, h.hits(listen, 20, canaryHeader))
	st := h.stats("web")
	require.Equal(t, 50, st["a"].Weight)
	require.Equal(t, 0, st["b"].Weight)
	require.Equal(t, []lb.Route{canaryRoute("b")}, h.m.Backends()[0].Routes)
}

func TestSetRoutes(t *testing.T) {
	listen := freeAddr(t)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1), b.server(0)}})
	h.requireServes(listen)
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20, canaryHeader))

	worker := h.workerPID()
	require.NoError(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{canaryRoute("b")}))
	require.NotEqual(t, worker, h.workerPID(), "routes are configuration: a change reloads")
	h.requireRouted(listen, "b", canaryHeader)
	require.Equal(t, map[string]int{"b": 50}, h.hits(listen, 50, canaryHeader))
	require.Equal(t, map[string]int{"a": 50}, h.hits(listen, 50))

	worker, reloads := h.workerPID(), h.reloads()
	require.NoError(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{canaryRoute("b")}))
	require.Equal(t, worker, h.workerPID(), "unchanged routes must not reload")
	require.Equal(t, reloads, h.reloads())

	// A server added at runtime is not in the running configuration, which
	// use-server needs; the reload of SetRoutes puts it there. A route's
	// servers are tried in order.
	require.NoError(t, h.d.AddServer(h.ctx, "web", c.server(0)))
	require.NoError(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{canaryRoute("c", "b")}))
	h.requireRouted(listen, "c", canaryHeader)

	// Why RemoveServer reloads for a routed server:
	out, err := h.m.runtime(h.ctx, "del server be_web/c")
	require.NoError(t, err)
	require.Contains(t, out, "cannot be removed at runtime")
	require.NoError(t, h.d.RemoveServer(h.ctx, "web", "c"))
	require.Equal(t, []lb.Route{canaryRoute("b")}, h.m.Backends()[0].Routes, "the server left its route")
	require.NotContains(t, h.stats("web"), "c")
	h.requireRouted(listen, "b", canaryHeader)

	require.NoError(t, h.d.SetRoutes(h.ctx, "web", nil))
	require.Nil(t, h.m.Backends()[0].Routes)
	h.requireRouted(listen, "a", canaryHeader)
	require.Equal(t, map[string]int{"a": 50}, h.hits(listen, 50, canaryHeader))
	worker = h.workerPID()
	require.NoError(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{}), "empty is no routes, as nil")
	require.Equal(t, worker, h.workerPID())

	require.NoError(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{canaryRoute("b")}))
	h.requireRouted(listen, "b", canaryHeader)
	require.NoError(t, h.d.RemoveServer(h.ctx, "web", "b"))
	require.Nil(t, h.m.Backends()[0].Routes, "a route left without servers goes")
	h.requireRouted(listen, "a", canaryHeader)
}

func TestInvalidRoutesLeaveTheRunningConfigAlone(t *testing.T) {
	listen, rawListen := freeAddr(t), freeAddr(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	web := lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1), b.server(0)},
		Routes: []lb.Route{canaryRoute("b")}}
	raw := lb.Backend{Name: "raw", ListenAddr: rawListen, Mode: "tcp", Servers: []lb.Server{a.server(1)}}
	h := newHarness(t, web, raw)
	h.requireRouted(listen, "b", canaryHeader)
	cfgPath := h.m.cfg.cfgPath()
	cfgBefore, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	worker, backends := h.workerPID(), h.m.Backends()

	nine := make([]lb.Route, 9)
	for i := range nine {
		nine[i] = lb.Route{Header: "X-Canary", Value: fmt.Sprint("v", i), Servers: []string{"b"}}
	}
	bad := map[string][]lb.Route{
		"header with a space":   {{Header: "X Canary", Value: "always", Servers: []string{"b"}}},
		"header with a newline": {{Header: "X-Canary\n    use-server a if TRUE", Value: "always", Servers: []string{"b"}}},
		"header with a paren":   {{Header: "X-Canary)", Value: "always", Servers: []string{"b"}}},
		"header too long":       {{Header: strings.Repeat("x", 65), Value: "always", Servers: []string{"b"}}},
		"cookie with =":         {{Cookie: "a=b", Value: "always", Servers: []string{"b"}}},
		"value with a brace":    {{Header: "X-Canary", Value: "always }", Servers: []string{"b"}}},
		"value with a newline":  {{Header: "X-Canary", Value: "x\nuse-server a if TRUE", Servers: []string{"b"}}},
		"empty value":           {{Header: "X-Canary", Servers: []string{"b"}}},
		"header and cookie":     {{Header: "X-Canary", Cookie: "canary", Value: "always", Servers: []string{"b"}}},
		"neither":               {{Value: "always", Servers: []string{"b"}}},
		"no server":             {{Header: "X-Canary", Value: "always"}},
		"unknown server":        {canaryRoute("zz")},
		"bad server name":       {canaryRoute("b c")},
		"server twice":          {canaryRoute("b", "b")},
		"route twice":           {canaryRoute("b"), {Header: "x-canary", Value: "always", Servers: []string{"a"}}},
		"nine routes":           nine,
	}
	for name, routes := range bad {
		err := h.d.SetRoutes(h.ctx, "web", routes)
		require.ErrorIs(t, err, ErrInvalid, name)
		t.Logf("%s: %v", name, err)
		nb := web
		nb.Routes = routes
		require.ErrorIs(t, h.d.EnsureBackend(h.ctx, nb), ErrInvalid, name)
	}
	require.ErrorIs(t, h.d.SetRoutes(h.ctx, "web", []lb.Route{canaryRoute("zz")}), ErrUnknownServer)

	err = h.d.SetRoutes(h.ctx, "raw", []lb.Route{canaryRoute("a")})
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "routes need mode http")
	raw.Routes = []lb.Route{canaryRoute("a")}
	require.ErrorIs(t, h.d.EnsureBackend(h.ctx, raw), ErrInvalid)
	require.ErrorIs(t, h.d.SetRoutes(h.ctx, "nope", []lb.Route{canaryRoute("a")}), ErrUnknownBackend)

	cfgAfter, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.Equal(t, string(cfgBefore), string(cfgAfter))
	require.Equal(t, worker, h.workerPID())
	require.Equal(t, backends, h.m.Backends())
	require.Equal(t, map[string]int{"b": 20}, h.hits(listen, 20, canaryHeader))
}

func TestResponseCounters(t *testing.T) {
	listen := freeAddr(t)
	a := startBackend(t, "a")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1)}})
	h.requireServes(listen)
	st0 := h.stats("web")["a"]

	for path, n := range map[string]int{"/": 5, "/status/302": 1, "/status/404": 3, "/status/500": 2} {
		for range n {
			code, _, err := h.do(listen, path)
			require.NoError(t, err)
			if path != "/" {
				require.Equal(t, strings.TrimPrefix(path, "/status/"), fmt.Sprint(code))
			}
		}
	}
	st := h.stats("web")["a"]
	require.Equal(t, int64(11), st.Requests-st0.Requests)
	require.Equal(t, int64(5), st.Responses2xx-st0.Responses2xx)
	require.Equal(t, int64(3), st.Responses4xx-st0.Responses4xx)
	require.Equal(t, int64(2), st.Responses5xx-st0.Responses5xx)
	require.Equal(t, int64(11), st.TotalSessions-st0.TotalSessions, "http-server-close: one server session per request")
}

// TestRoutesSurviveRestart: a worker restart loads the desired state from
// berth's records and starts over an HAProxy left running.
func TestRoutesSurviveRestart(t *testing.T) {
	listen := freeAddr(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	h := newHarness(t, lb.Backend{Name: "web", ListenAddr: listen, Servers: []lb.Server{a.server(1), b.server(0)},
		Routes: []lb.Route{canaryRoute("b")}})
	h.requireRouted(listen, "b", canaryHeader)
	records := h.m.Backends()

	m2, err := NewManager(Config{Dir: h.m.Dir()})
	require.NoError(t, err)
	require.NoError(t, m2.Load(records))
	require.NoError(t, m2.Start(h.ctx))
	t.Cleanup(func() { require.NoError(t, m2.Stop()) })
	h.m, h.d = m2, New(m2)

	h.requireRouted(listen, "b", canaryHeader)
	require.Equal(t, map[string]int{"a": 20}, h.hits(listen, 20))
	require.Equal(t, records, m2.Backends())
}
