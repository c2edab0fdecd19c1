package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/lb/haproxy"
)

// startAPIReplica starts a second `berth server` on the same database and
// Temporal, as a second replica behind a load balancer would be, and
// returns its base URL and process.
func (hs *harness) startAPIReplica(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	return hs.startServer(t, "server-replica", "http", http.DefaultClient)
}

// startServer starts one more `berth server` like the suite's, listening
// elsewhere with extra settings, and waits until client gets its /healthz
// over scheme.
func (hs *harness) startServer(t *testing.T, name, scheme string, client *http.Client, env ...string) (string, *exec.Cmd) {
	t.Helper()
	port, err := freePort()
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(hs.bin, "server")
	// The last value of a key wins.
	cmd.Env = append(append(append(os.Environ(), hs.env...), "BERTH_LISTEN="+addr), env...)
	hs.spawnFor(t, name, cmd)
	base := scheme + "://" + addr
	require.Eventually(t, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "%s never answered; see %s/%s.log", name, hs.logDir, name)
	return base, cmd
}

// at sends a request to one replica as the person's browser would, with
// that replica's origin (one address behind a load balancer in
// production) and the CSRF token of the page it got from any replica.
func (p *person) at(t *testing.T, base, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", base)
	req.Header.Set("X-CSRF-Token", p.csrf)
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// signInAt posts the sign-in form to one replica and returns the status.
func signInAt(t *testing.T, base, name, password string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"name": {name}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// firstEvents reads a run's event stream from one replica until it ends,
// and returns the events' names and the id of its "run" event.
func (p *person) firstEvents(t *testing.T, base string, runID uint, lastID string) ([]string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/events", base, runID), nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var names []string
	var id string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			names = append(names, strings.TrimPrefix(line, "event: "))
			if line == "event: end" {
				return names, id
			}
		}
	}
	return names, id
}

// Two API replicas on one database and one Temporal hold nothing a
// request needs in their own memory: a session and its CSRF token made on
// one are good on the other, failed sign-ins count across both, and an
// event stream resumes on the other with Last-Event-ID. A replica
// SIGKILLed while an approver has its page open loses nothing: the
// approval lands through the other. In front of both, an HAProxy spreads
// one person's requests over the two and, once b is gone, sends them all
// to a.
func TestAPIReplicasShareSessionsLimitsAndStreams(t *testing.T) {
	hs := needHarness(t)
	a := hs.apiURL
	b, replica := hs.startAPIReplica(t)
	front, lbd := apiFront(t, map[string]string{"a": a, "b": b})
	apps := hs.newEnv(t, "repl")
	tenant := hs.tenant + "-repl"
	dev := hs.newPerson(t, tenant+"-dev", tenant, berth.RoleDeveloper) // signed in on a

	// The session and the CSRF token of a's page work on b, for a change too.
	resp, body := dev.at(t, b, "GET", "/inbox", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `<meta name="csrf-token" content="`+dev.csrf+`"`, "the same session on the other replica")
	resp, body = dev.at(t, b, "POST", "/api/v1/tokens", map[string]any{"name": "from-b", "ttlHours": 1})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", body)
	stale := *dev
	stale.csrf = "not-the-token"
	resp, _ = stale.at(t, b, "POST", "/api/v1/tokens", map[string]any{"name": "forged", "ttlHours": 1})
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a wrong CSRF token is refused there too")

	// Failed sign-ins count across replicas: five spread over both hold
	// the name back on both, even with the right password.
	victim := hs.newPerson(t, tenant+"-victim", tenant, berth.RoleDeveloper)
	for i, base := range []string{a, b, a, b, a} {
		require.Equal(t, http.StatusUnauthorized, signInAt(t, base, victim.name, "wrong-"+randHex(4)), "failure %d", i+1)
	}
	require.Equal(t, http.StatusTooManyRequests, signInAt(t, b, victim.name, victim.password))
	require.Equal(t, http.StatusTooManyRequests, signInAt(t, a, victim.name, victim.password))

	// An event stream read to its end on a resumes on b from its id: the
	// state it has is not sent again, only the end.
	run := hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	names, id := dev.firstEvents(t, a, run.ID, "")
	require.Equal(t, []string{"run", "end"}, names)
	require.NotEmpty(t, id)
	names, _ = dev.firstEvents(t, b, run.ID, id)
	require.Equal(t, []string{"end"}, names, "b knows the state a sent: the same id")
	names, _ = dev.firstEvents(t, b, run.ID, "stale")
	require.Equal(t, []string{"run", "end"}, names)

	// A gate started through b waits for an approver, who opens the inbox
	// on b; b is SIGKILLed; the approval goes through a.
	gates := hs.approvalTenant(t, "replap")
	starter := hs.newPerson(t, gates+"-dev", gates, berth.RoleDeveloper)
	approver := hs.newPerson(t, gates+"-approver", gates, berth.RoleApprover)
	resp, body = starter.at(t, b, "POST", "/api/v1/tenants/"+gates+"/environments/prod/gates", map[string]any{"name": "web", "summary": "web 1.0 → 1.1"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	var started runStartedBody
	require.NoError(t, json.Unmarshal(body, &started))
	ap := hs.waitApproval(t, started.RunID)
	resp, body = approver.at(t, b, "GET", "/inbox", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "web 1.0 → 1.1", "the approval is in b's inbox page")
	served := func() map[string]int64 {
		st, err := lbd.Stats(t.Context(), "api")
		require.NoError(t, err)
		out := map[string]int64{}
		for _, s := range st {
			out[s.Name] = s.Requests
		}
		return out
	}
	for range 6 {
		resp, _ = approver.at(t, front, "GET", "/inbox", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "one session whichever replica the front picks")
	}
	before := served()
	require.Positive(t, before["a"], "the front sent requests to a")
	require.Positive(t, before["b"], "and to b")
	require.NoError(t, replica.Process.Signal(syscall.SIGKILL))
	_, _ = replica.Process.Wait()
	for i := range 6 {
		resp, _ = approver.at(t, front, "GET", "/inbox", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d through the front after b died", i+1)
	}
	resp, body = approver.at(t, front, "POST", decidePath(ap.ID), map[string]string{"decision": "approve", "comment": "b is gone"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	done := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, done.Status, done.Error)
}

// apiFront puts an HAProxy, run by berth's own driver, in front of API
// replicas, as production has: round robin request by request, each
// replica health-checked on /healthz. It returns the front's base URL and
// the driver, to read how many requests each replica served.
func apiFront(t *testing.T, replicas map[string]string) (string, *haproxy.Driver) {
	t.Helper()
	m, err := haproxy.NewManager(haproxy.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	listen := freeAddr(t)
	be := lb.Backend{Name: "api", ListenAddr: listen, Mode: "http", HealthPath: "/healthz"}
	for name, base := range replicas {
		be.Servers = append(be.Servers, lb.Server{Name: name, Addr: strings.TrimPrefix(base, "http://"), Weight: 1, State: lb.StateReady})
	}
	require.NoError(t, m.Load([]lb.Backend{be}))
	require.NoError(t, m.Start(t.Context()))
	t.Cleanup(func() { _ = m.Stop() })
	return "http://" + listen, haproxy.New(m)
}

// spawnFor starts a process for one test, its output in the log folder as
// name.log, and stops it when the test ends.
func (hs *harness) spawnFor(t testing.TB, name string, cmd *exec.Cmd) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(hs.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		_ = f.Close()
	})
}
