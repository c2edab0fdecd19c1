package haproxy

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
)

func TestDriverImplementsInterface(t *testing.T) {
	var _ lb.Driver = New(nil)
}

func TestParseShowStat(t *testing.T) {
	raw, err := os.ReadFile("testdata/show_stat_2.6.csv")
	require.NoError(t, err)
	rows, err := parseShowStat(string(raw))
	require.NoError(t, err)
	require.Len(t, rows, 3, "the BACKEND aggregate row is not a server")

	require.Equal(t, "s1", rows[0].Server)
	require.Equal(t, "be_a", rows[0].Proxy)
	require.Equal(t, "127.0.0.1:18081", rows[0].Addr)
	require.Equal(t, 3, rows[0].Weight)
	require.Equal(t, lb.StateReady, rows[0].stats().State)

	require.Equal(t, lb.StateDrain, rows[1].stats().State)
	// s2 is drained and was configured with weight 0.
	require.Equal(t, 0, rows[1].Weight)

	// In maintenance the effective "weight" column says 2 here but HAProxy
	// may report 1; uweight is what was set.
	require.Equal(t, lb.StateMaint, rows[2].stats().State)
	require.Equal(t, 2, rows[2].Weight)

	_, err = parseShowStat("No such proxy.\n")
	require.Error(t, err)
}

func TestStatusState(t *testing.T) {
	for status, want := range map[string]string{
		"UP":                 lb.StateReady,
		"UP 1/3":             lb.StateReady,
		"no check":           lb.StateReady,
		"DRAIN":              lb.StateDrain,
		"DRAIN (agent)":      lb.StateDrain,
		"NOLB":               lb.StateDrain,
		"MAINT":              lb.StateMaint,
		"MAINT (via)":        lb.StateMaint,
		"MAINT (resolution)": lb.StateMaint,
		"DOWN":               StateDown,
		"DOWN 1/2":           StateDown,
		"something new":      StateDown,
	} {
		require.Equal(t, want, statusState(status), status)
	}
}

func TestParseServersState(t *testing.T) {
	raw, err := os.ReadFile("testdata/show_servers_state_2.6.txt")
	require.NoError(t, err)
	list, err := parseServersState(string(raw))
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, serverAdmin{Backend: "be_a", Server: "s1", Admin: 0, Weight: 3}, list[0])
	require.Equal(t, lb.StateReady, list[0].state())
	require.Equal(t, lb.StateDrain, list[1].state())
	require.Equal(t, lb.StateMaint, list[2].state(), "disabled in the config: FMAINT|CMAINT")
	require.Equal(t, lb.StateReady, serverAdmin{Admin: 0x04}.state(), "CMAINT alone stays after enable server")

	_, err = parseServersState("Can't find backend.\n")
	require.Error(t, err)
}

func TestParseShowProc(t *testing.T) {
	raw, err := os.ReadFile("testdata/show_proc_2.6.txt")
	require.NoError(t, err)
	p, err := parseShowProc(string(raw))
	require.NoError(t, err)
	require.Equal(t, procList{Master: 19437, Reloads: 2, Failed: 1, Workers: []int{22210}}, p)

	_, err = parseShowProc("")
	require.Error(t, err, "empty while the master re-executes")
}

func TestValidation(t *testing.T) {
	long := strings.Repeat("a", maxNameLen+1)
	for _, name := range []string{"", "a b", "a;b", "a\nb", "a/b", "a#b", "é", long} {
		require.ErrorIs(t, checkBackendName(name), ErrInvalid, "%q", name)
		require.ErrorIs(t, checkServerName(name), ErrInvalid, "%q", name)
	}
	require.NoError(t, checkBackendName(strings.Repeat("a", maxNameLen)))
	require.NoError(t, checkBackendName("acme-prod_web.api-1"))
	require.ErrorIs(t, checkServerName("BACKEND"), ErrInvalid)

	for _, addr := range []string{"", "127.0.0.1", "localhost:80", "127.0.0.1:0", "127.0.0.1:65536",
		"0.0.0.0:80", "[::]:80", "224.0.0.1:80", "127.0.0.1:80;x", "127.0.0.1:80 x", "[fe80::1%eth0]:80"} {
		_, err := parseServerAddr(addr)
		require.ErrorIs(t, err, ErrInvalid, "%q", addr)
	}
	for addr, canon := range map[string]string{"127.0.0.1:8080": "127.0.0.1:8080", "[::1]:80": "[::1]:80", "[0:0::1]:80": "[::1]:80"} {
		ap, err := parseServerAddr(addr)
		require.NoError(t, err)
		require.Equal(t, canon, ap.String())
	}
	_, err := parseAddr("listen", "0.0.0.0:80")
	require.NoError(t, err, "a frontend may listen on all addresses")

	for _, p := range []string{"x", "/a b", "/a#b", "/a;b", `/a"b`, "/$x", "/" + strings.Repeat("a", berth.MaxHealthPath)} {
		require.ErrorIs(t, checkHealthPath(p), ErrInvalid, "%q", p)
	}
	require.NoError(t, checkHealthPath("/healthz?full=1&x=%20"))

	require.ErrorIs(t, checkWeight(-1), ErrInvalid)
	require.ErrorIs(t, checkWeight(257), ErrInvalid)
	_, err = normState("up")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = normMode("udp")
	require.ErrorIs(t, err, ErrInvalid)

	_, err = normBackend(lb.Backend{Name: "b", ListenAddr: "127.0.0.1:80", Servers: []lb.Server{
		{Name: "s", Addr: "127.0.0.1:81"}, {Name: "s", Addr: "127.0.0.1:82"},
	}})
	require.ErrorIs(t, err, ErrInvalid, "duplicate server")

	require.ErrorIs(t, checkCommand("show stat; del server a/b"), ErrInvalid)
	require.ErrorIs(t, checkCommand("show stat\nshow info"), ErrInvalid)

	require.ErrorIs(t, checkDir("/tmp/a b"), ErrInvalid)
	require.ErrorIs(t, checkDir("/tmp/a,mode,777"), ErrInvalid)
	require.ErrorIs(t, checkDir("/tmp/"+strings.Repeat("d", 90)), ErrInvalid)
}

// countingSocket listens on path and counts connections, standing in for
// HAProxy to prove that refused input never reaches a socket.
func countingSocket(t *testing.T, path string) *atomic.Int64 {
	t.Helper()
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return &n
}

func TestInvalidInputIsRefusedBeforeAnythingIsSent(t *testing.T) {
	dir := t.TempDir()
	// The binary is never run here; any executable satisfies NewManager.
	m, err := NewManager(Config{Binary: "/bin/true", Dir: dir})
	require.NoError(t, err)
	good := lb.Backend{Name: "web", ListenAddr: "127.0.0.1:18000", Servers: []lb.Server{{Name: "a", Addr: "127.0.0.1:18001", Weight: 1}}}
	require.NoError(t, m.Load([]lb.Backend{good}))
	admin := countingSocket(t, m.cfg.adminSock())
	master := countingSocket(t, m.cfg.masterSock())
	d := New(m)
	ctx := context.Background()

	badBackends := []lb.Backend{
		{Name: "web;x", ListenAddr: "127.0.0.1:18000"},
		{Name: "web", ListenAddr: "127.0.0.1"},
		{Name: "web", ListenAddr: "127.0.0.1:18000", Mode: "udp"},
		{Name: "web", ListenAddr: "127.0.0.1:18000", HealthPath: "/a b"},
		{Name: "web", ListenAddr: "127.0.0.1:18000", Servers: []lb.Server{{Name: "a\nb", Addr: "127.0.0.1:1"}}},
		{Name: "web", ListenAddr: "127.0.0.1:18000", Servers: []lb.Server{{Name: "a", Addr: "127.0.0.1:1 backup"}}},
	}
	for _, b := range badBackends {
		require.ErrorIs(t, d.EnsureBackend(ctx, b), ErrInvalid, "%+v", b)
		require.ErrorIs(t, m.Load([]lb.Backend{b}), ErrInvalid, "%+v", b)
	}
	require.ErrorIs(t, m.Load([]lb.Backend{good, {Name: "other", ListenAddr: good.ListenAddr}}), ErrInvalid, "shared listener")
	require.ErrorIs(t, d.RemoveBackend(ctx, "web x"), ErrInvalid)
	require.ErrorIs(t, d.AddServer(ctx, "web", lb.Server{Name: "b;del", Addr: "127.0.0.1:1"}), ErrInvalid)
	require.ErrorIs(t, d.AddServer(ctx, "web", lb.Server{Name: "b", Addr: "127.0.0.1:1;x"}), ErrInvalid)
	require.ErrorIs(t, d.AddServer(ctx, "web", lb.Server{Name: "b", Addr: "127.0.0.1:1", Weight: 999}), ErrInvalid)
	require.ErrorIs(t, d.AddServer(ctx, "web", lb.Server{Name: "b", Addr: "127.0.0.1:1", State: "up"}), ErrInvalid)
	require.ErrorIs(t, d.AddServer(ctx, "web/x", lb.Server{Name: "b", Addr: "127.0.0.1:1"}), ErrInvalid)
	require.ErrorIs(t, d.RemoveServer(ctx, "web", "a b"), ErrInvalid)
	require.ErrorIs(t, d.SetWeight(ctx, "web", "a", -1), ErrInvalid)
	require.ErrorIs(t, d.SetWeight(ctx, "web", "a;b", 1), ErrInvalid)
	require.ErrorIs(t, d.SetState(ctx, "web", "a", "down"), ErrInvalid)
	require.ErrorIs(t, d.SetState(ctx, "web", "a", ""), ErrInvalid)
	require.ErrorIs(t, d.SetRoutes(ctx, "web", []lb.Route{{Header: "X-C\nuse-server a if TRUE", Value: "v", Servers: []string{"a"}}}), ErrInvalid)
	require.ErrorIs(t, d.SetRoutes(ctx, "web", []lb.Route{{Header: "X-C", Value: "v }", Servers: []string{"a"}}}), ErrInvalid)
	require.ErrorIs(t, d.SetRoutes(ctx, "web", []lb.Route{{Header: "X-C", Value: "v", Servers: []string{"zz"}}}), ErrInvalid)
	require.ErrorIs(t, d.SetRoutes(ctx, "web;x", nil), ErrInvalid)
	routed := good
	routed.Routes = []lb.Route{{Cookie: "c d", Value: "v", Servers: []string{"a"}}}
	require.ErrorIs(t, d.EnsureBackend(ctx, routed), ErrInvalid)
	require.ErrorIs(t, m.Load([]lb.Backend{routed}), ErrInvalid)
	_, err = d.Stats(ctx, "web\n")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = sockCommand(ctx, m.cfg.adminSock(), "set server be_web/a weight 1; shutdown sessions server be_web/a")
	require.ErrorIs(t, err, ErrInvalid)

	require.Zero(t, admin.Load(), "connections to the admin socket")
	require.Zero(t, master.Load(), "connections to the master socket")
	require.NoFileExists(t, m.cfg.cfgPath())
	require.Equal(t, []lb.Backend{{Name: "web", ListenAddr: "127.0.0.1:18000", Mode: "http",
		Servers: []lb.Server{{Name: "a", Addr: "127.0.0.1:18001", Weight: 1, State: lb.StateReady}}}}, m.Backends(),
		"refused Loads leave the desired state alone")

	// Valid input on a Manager that was never started is not sent either.
	require.ErrorIs(t, d.SetWeight(ctx, "web", "a", 2), ErrNotRunning)
	require.ErrorIs(t, d.SetWeight(ctx, "nope", "a", 2), ErrUnknownBackend)
	require.ErrorIs(t, d.SetWeight(ctx, "web", "zz", 2), ErrUnknownServer)
	require.ErrorIs(t, d.SetRoutes(ctx, "web", []lb.Route{{Header: "X-C", Value: "v", Servers: []string{"a"}}}), ErrNotRunning)
	require.NoError(t, d.SetRoutes(ctx, "web", nil), "unchanged routes need no HAProxy")
	require.ErrorIs(t, d.SetRoutes(ctx, "nope", nil), ErrUnknownBackend)
	require.Zero(t, admin.Load())
}

func TestRouteValidation(t *testing.T) {
	ok := lb.Route{Header: "X-Canary", Value: "always", Servers: []string{"b"}}
	for _, r := range []lb.Route{
		{Header: "X Canary", Value: "v", Servers: []string{"b"}},
		{Header: "X-Canary:", Value: "v", Servers: []string{"b"}},
		{Header: "X_Canary", Value: "v", Servers: []string{"b"}}, // HAProxy would accept it, proxies often drop it
		{Header: strings.Repeat("h", maxRouteHeader+1), Value: "v", Servers: []string{"b"}},
		{Cookie: "c,d", Value: "v", Servers: []string{"b"}},
		{Cookie: "c)", Value: "v", Servers: []string{"b"}},
		{Header: "X-C", Value: "a b", Servers: []string{"b"}},
		{Header: "X-C", Value: "a#b", Servers: []string{"b"}},
		{Header: "X-C", Value: `a"b`, Servers: []string{"b"}},
		{Header: "X-C", Value: "$x", Servers: []string{"b"}},
		{Header: "X-C", Value: strings.Repeat("v", maxRouteValue+1), Servers: []string{"b"}},
		{Header: "X-C", Value: "v", Servers: []string{"b;x"}},
		{Header: "X-C", Value: "v", Servers: []string{"BACKEND"}},
		{Header: "X-C", Cookie: "c", Value: "v", Servers: []string{"b"}},
		{Value: "v", Servers: []string{"b"}},
		{Header: "X-C", Value: "v"},
	} {
		_, err := normRoutes([]lb.Route{r})
		require.ErrorIs(t, err, ErrInvalid, "%+v", r)
	}
	_, err := normRoutes([]lb.Route{ok, {Header: "x-canary", Value: "always", Servers: []string{"a"}}})
	require.ErrorIs(t, err, ErrInvalid, "the same header and value twice")
	_, err = normRoutes(make([]lb.Route, maxRoutes+1))
	require.ErrorIs(t, err, ErrInvalid)

	got, err := normRoutes([]lb.Route{})
	require.NoError(t, err)
	require.Nil(t, got, "no routes has one form")
	in := []lb.Route{ok, {Cookie: "canary_id.v2", Value: "-i:1.x_y", Servers: []string{"b", "a"}}}
	got, err = normRoutes(in)
	require.NoError(t, err)
	require.Equal(t, in, got)
	got[0].Servers[0] = "changed"
	require.Equal(t, "b", in[0].Servers[0], "a deep copy")

	web := lb.Backend{Name: "web", Mode: modeHTTP, Servers: []lb.Server{{Name: "a"}, {Name: "b"}}, Routes: in}
	require.NoError(t, checkRouteTargets(web))
	web.Routes = []lb.Route{{Header: "X-C", Value: "v", Servers: []string{"c"}}}
	require.ErrorIs(t, checkRouteTargets(web), ErrUnknownServer)
	web.Mode, web.Routes = modeTCP, in
	require.ErrorIs(t, checkRouteTargets(web), ErrInvalid)

	require.True(t, routesEqual(nil, nil))
	require.False(t, routesEqual(in, []lb.Route{in[1], in[0]}), "order is priority")
	require.False(t, routesEqual(in, []lb.Route{ok, {Cookie: "canary_id.v2", Value: "-i:1.x_y", Servers: []string{"a", "b"}}}))
}

func TestWithoutServerDropsItFromRoutes(t *testing.T) {
	b := lb.Backend{Name: "web", Servers: []lb.Server{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Routes: []lb.Route{
		{Header: "X-C", Value: "1", Servers: []string{"b"}},
		{Header: "X-C", Value: "2", Servers: []string{"c", "b"}},
		{Cookie: "k", Value: "3", Servers: []string{"a"}},
	}}
	got := withoutServer(b, "b")
	require.Equal(t, []lb.Server{{Name: "a"}, {Name: "c"}}, got.Servers)
	require.Equal(t, []lb.Route{
		{Header: "X-C", Value: "2", Servers: []string{"c"}},
		{Cookie: "k", Value: "3", Servers: []string{"a"}},
	}, got.Routes)
	require.Equal(t, []string{"c", "b"}, b.Routes[1].Servers, "the desired state's slices are not changed")
	require.Equal(t, []lb.Route{{Header: "X-C", Value: "2", Servers: []string{"c"}}}, withoutServer(got, "a").Routes)
	require.Nil(t, withoutServer(withoutServer(got, "a"), "c").Routes)
	require.True(t, routesEqual(b.Routes, withoutServer(b, "zz").Routes))
}

func TestStatsCountsEveryResponseClass(t *testing.T) {
	rows, err := parseShowStat("# pxname,svname,status,weight,scur,stot,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,rtime,uweight\n" +
		"be_web,a,UP,1,2,30,1,20,3,4,5,6,7,1\n")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, lb.ServerStats{Name: "a", State: lb.StateReady, Weight: 1, CurrentSessions: 2, TotalSessions: 30,
		Requests: 39, Responses2xx: 20, Responses4xx: 4, Responses5xx: 5, AvgResponseMs: 7}, rows[0].stats())
}

func TestRenderConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, StatsAddr: "127.0.0.1:18404"}
	backends := map[string]lb.Backend{
		"web": {Name: "web", ListenAddr: "127.0.0.1:18400", Mode: "http", HealthPath: "/healthz", Servers: []lb.Server{
			{Name: "a", Addr: "127.0.0.1:18401", Weight: 3, State: lb.StateReady},
			{Name: "b", Addr: "[::1]:18402", Weight: 5, State: lb.StateDrain},
			{Name: "c", Addr: "127.0.0.1:18403", Weight: 2, State: lb.StateMaint},
		}},
		"db": {Name: "db", ListenAddr: "127.0.0.1:18410", Mode: "tcp", Servers: []lb.Server{
			{Name: "p", Addr: "127.0.0.1:18411", Weight: 1, State: lb.StateReady},
		}},
	}
	out := string(renderConfig(cfg, backends))
	for _, want := range []string{
		"stats socket " + filepath.Join(dir, "admin.sock") + " mode 600 level admin expose-fd listeners",
		"frontend fe_web\n    mode http\n    bind 127.0.0.1:18400\n    option http-server-close\n    default_backend be_web\n",
		"backend be_web\n    mode http\n    balance roundrobin\n",
		"option httpchk GET /healthz",
		"server a 127.0.0.1:18401 weight 3 check inter 500ms\n",
		"server b [::1]:18402 weight 0 check inter 500ms\n", // drained: no new traffic before the runtime state is back
		"server c 127.0.0.1:18403 weight 2 check inter 500ms disabled\n",
		"frontend fe_db\n    mode tcp\n    bind 127.0.0.1:18410\n    default_backend be_db\n",
		"server p 127.0.0.1:18411 weight 1\n",
		"option redispatch", "retries 2", "timeout connect 2s", "timeout client 30s", "timeout server 30s",
		"bind 127.0.0.1:18404",
	} {
		require.Contains(t, out, want)
	}
	require.Less(t, strings.Index(out, "fe_db"), strings.Index(out, "fe_web"), "sorted, so reloads see stable files")
	require.NotContains(t, out, "use-server", "no routes, no rules")

	bin, err := FindBinary("")
	if err != nil {
		t.Log("haproxy not installed: rendered config not checked by haproxy -c")
		return
	}
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	res, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
	require.NoError(t, err, string(res))
}

func TestRenderRoutes(t *testing.T) {
	dir := t.TempDir()
	web, err := normBackend(lb.Backend{Name: "web", ListenAddr: "127.0.0.1:18420", Servers: []lb.Server{
		{Name: "a", Addr: "127.0.0.1:18421", Weight: 100},
		{Name: "b", Addr: "127.0.0.1:18422", Weight: 0},
	}, Routes: []lb.Route{
		{Header: "X-Canary", Value: "always", Servers: []string{"b"}},
		{Cookie: "canary_id", Value: "-i", Servers: []string{"b", "a"}},
	}})
	require.NoError(t, err)
	out := string(renderConfig(Config{Dir: dir}, map[string]lb.Backend{"web": web}))
	require.Contains(t, out, "    option http-server-close\n"+
		"    use-server b if { req.hdr(X-Canary) -m str -- always }\n"+
		"    use-server b if { req.cook(canary_id) -m str -- -i }\n"+
		"    use-server a if { req.cook(canary_id) -m str -- -i }\n"+
		"    server a 127.0.0.1:18421 weight 100\n"+
		"    server b 127.0.0.1:18422 weight 0\n")

	bin, err := FindBinary("")
	if err != nil {
		t.Log("haproxy not installed: rendered config not checked by haproxy -c")
		return
	}
	path := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(out), 0o600))
	res, err := exec.Command(bin, "-c", "-f", path).CombinedOutput()
	require.NoError(t, err, string(res))
	require.NotContains(t, string(res), "WARNING", "a use-server rule HAProxy warns about")
}
