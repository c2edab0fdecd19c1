package haproxy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/lb"
)

// operatorHAProxy starts an HAProxy the way an operator's fleet runs one:
// master-worker, their own global section and a frontend of their own,
// with berth's file as one more -f. It returns berth's view of it and the
// address of the operator's frontend.
func operatorHAProxy(t *testing.T) (*External, string) {
	t.Helper()
	bin := requireBinary(t)
	dir := t.TempDir()
	ops := freeAddr(t)
	main := filepath.Join(dir, "haproxy.cfg")
	admin := filepath.Join(dir, "ops-admin.sock")
	require.NoError(t, os.WriteFile(main, []byte(fmt.Sprintf(`global
    master-worker
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend ops
    bind %s
    http-request return status 200 content-type text/plain string ops
`, admin, ops)), 0o600))
	berthFile := filepath.Join(dir, "conf.d", "berth.cfg")
	require.NoError(t, os.MkdirAll(filepath.Dir(berthFile), 0o755))
	require.NoError(t, os.WriteFile(berthFile, []byte("# berth's part, written by berth\n"), 0o600))
	cmd := exec.Command(bin, "-W", "-S", filepath.Join(dir, "ops-master.sock"), "-f", main, "-f", berthFile)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	require.Eventually(t, func() bool {
		out, err := sockCommand(testCtx(t), admin, "show info")
		return err == nil && parseInfoPid(out) > 0
	}, 10*time.Second, 20*time.Millisecond, "the operator's HAProxy never answered")
	kill, err := exec.LookPath("kill")
	require.NoError(t, err)
	return &External{ConfigPath: berthFile, AdminSocket: admin,
		Reload: []string{kill, "-USR2", strconv.Itoa(cmd.Process.Pid)}}, ops
}

// berth drives an HAProxy it did not start: its frontends come and go with
// the operator's reload command, the operator's own frontend keeps
// serving, a reload by the operator behind berth's back is noticed and the
// runtime state put back, and stopping berth leaves that HAProxy running.
func TestExistingHAProxy(t *testing.T) {
	ext, ops := operatorHAProxy(t)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	web, api := freeAddr(t), freeAddr(t)
	m, err := NewManager(Config{Dir: t.TempDir(), External: ext})
	require.NoError(t, err)
	require.NoError(t, m.Load([]lb.Backend{{Name: "web", ListenAddr: web, Servers: []lb.Server{a.server(1), b.server(1)}}}))
	ctx := testCtx(t)
	require.NoError(t, m.Start(ctx))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	h := &harness{t: t, ctx: ctx, m: m, d: New(m), client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}

	cfg, err := os.ReadFile(ext.ConfigPath)
	require.NoError(t, err)
	require.NotContains(t, string(cfg), "\nglobal", "the global section is the operator's")
	require.Contains(t, string(cfg), "frontend fe_web")
	hits := h.hits(web, 200)
	require.Positive(t, hits["a"])
	require.Positive(t, hits["b"])
	requireOps := func() {
		t.Helper()
		body, err := h.get(ops)
		require.NoError(t, err)
		require.Equal(t, "ops", body, "the operator's own frontend serves as before")
	}
	requireOps()

	// Runtime state, then a reload by the operator behind berth's back.
	require.NoError(t, h.d.SetState(ctx, "web", "a", lb.StateDrain))
	require.NoError(t, h.d.SetWeight(ctx, "web", "b", 3))
	before := h.extWorker()
	out, err := exec.Command(ext.Reload[0], ext.Reload[1:]...).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Eventually(t, func() bool { w := h.extWorker(); return w != 0 && w != before }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		require.NoError(t, m.EnsureRunning(ctx))
		st := h.stats("web")
		return st["a"].State == lb.StateDrain && st["a"].Weight == 1 && st["b"].Weight == 3
	}, 10*time.Second, 100*time.Millisecond, "berth puts its runtime state back after the operator's reload")
	require.Zero(t, h.hits(web, 100)["a"], "a drained server takes no new requests")

	// A new listener is a reload through the operator's command.
	require.NoError(t, h.d.EnsureBackend(ctx, lb.Backend{Name: "api", ListenAddr: api, Servers: []lb.Server{a.server(1)}}))
	h.requireServes(api)
	require.Equal(t, lb.StateDrain, h.stats("web")["a"].State, "the reload kept web's runtime state")
	requireOps()
	require.NoError(t, h.d.RemoveBackend(ctx, "api"))
	_, err = h.get(api)
	require.Error(t, err, "a removed backend's listener is gone")

	require.NoError(t, m.Stop())
	require.NotZero(t, h.extWorker(), "berth never stops an HAProxy it did not start")
	requireOps()
}

func (h *harness) extWorker() int {
	out, err := sockCommand(h.ctx, h.m.cfg.adminSock(), "show info")
	if err != nil {
		return 0
	}
	return parseInfoPid(out)
}

func TestExistingHAProxyConfigRefused(t *testing.T) {
	for name, ext := range map[string]*External{
		"relative file":   {ConfigPath: "berth.cfg", AdminSocket: "/run/haproxy/admin.sock", Reload: []string{"systemctl", "reload", "haproxy"}},
		"relative socket": {ConfigPath: "/etc/haproxy/conf.d/berth.cfg", AdminSocket: "admin.sock", Reload: []string{"systemctl", "reload", "haproxy"}},
		"no reload":       {ConfigPath: "/etc/haproxy/conf.d/berth.cfg", AdminSocket: "/run/haproxy/admin.sock"},
	} {
		_, err := NewManager(Config{Dir: t.TempDir(), External: ext})
		require.Error(t, err, name)
		require.True(t, strings.Contains(err.Error(), "existing HAProxy"), "%s: %v", name, err)
	}
}

// An HAProxy that does not answer fails the start with its socket named.
func TestExistingHAProxyNotAnswering(t *testing.T) {
	requireBinary(t)
	ext := &External{ConfigPath: filepath.Join(t.TempDir(), "berth.cfg"), AdminSocket: filepath.Join(t.TempDir(), "admin.sock"),
		Reload: []string{"true"}}
	m, err := NewManager(Config{Dir: t.TempDir(), External: ext})
	require.NoError(t, err)
	err = m.Start(testCtx(t))
	require.ErrorContains(t, err, "does not answer on "+ext.AdminSocket)
}
