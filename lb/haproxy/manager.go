package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/lb"
)

const (
	startTimeout  = 20 * time.Second
	reloadTimeout = 30 * time.Second
	stopGrace     = 5 * time.Second
	// unixPathMax is sun_path minus its NUL. HAProxy binds a unix socket
	// under a temporary name "<path>.<pid>.tmp" and renames it, so that
	// suffix must fit too.
	unixPathMax   = 107
	tmpSuffixRoom = len(".4194304.tmp")
	logTailBytes  = 4096
	maxLogBytes   = 8 << 20
)

// ErrRejected marks a configuration HAProxy refused; the previous
// configuration keeps serving.
const ErrRejected Error = "haproxy: configuration rejected"

// Config places one HAProxy instance.
type Config struct {
	// Binary is the haproxy executable; empty means "haproxy" from PATH,
	// else /usr/sbin/haproxy.
	Binary string
	// Dir holds the configuration, both sockets, the pidfile and the log.
	// One Dir is one instance: a Manager stops any HAProxy it finds still
	// running on this Dir's configuration.
	Dir string
	// StatsAddr, when set, is the ip:port of a read-only HTTP stats page,
	// with Prometheus metrics at /metrics.
	StatsAddr string
	// External, when set, is an HAProxy that berth did not start and never
	// starts or stops (external.go). Dir then holds nothing.
	External *External
}

func (c Config) cfgPath() string {
	if c.External != nil {
		return c.External.ConfigPath
	}
	return filepath.Join(c.Dir, "haproxy.cfg")
}

func (c Config) adminSock() string {
	if c.External != nil {
		return c.External.AdminSocket
	}
	return filepath.Join(c.Dir, "admin.sock")
}

func (c Config) masterSock() string { return filepath.Join(c.Dir, "master.sock") }
func (c Config) pidFile() string    { return filepath.Join(c.Dir, "haproxy.pid") }
func (c Config) logFile() string    { return filepath.Join(c.Dir, "haproxy.log") }

// FindBinary resolves the haproxy executable the way NewManager does.
func FindBinary(binary string) (string, error) {
	if binary != "" {
		return exec.LookPath(binary)
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	// /usr/sbin is often missing from a non-root PATH.
	return exec.LookPath("/usr/sbin/haproxy")
}

// checkDir keeps Dir to characters that need no quoting in the
// configuration file or in "-S <path>[,options]" (a comma would start an
// option there).
func checkDir(dir string) error {
	for i := 0; i < len(dir); i++ {
		c := dir[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._+~-", c) >= 0) {
			return invalid("state dir %q may contain only [a-zA-Z0-9/._+~-]", dir)
		}
	}
	if n := len(Config{Dir: dir}.masterSock()) + tmpSuffixRoom; n > unixPathMax {
		return invalid("state dir %q is too long for unix socket paths (%d > %d bytes)", dir, n, unixPathMax)
	}
	return nil
}

// Manager runs and controls one local HAProxy in master-worker mode and owns
// the desired state that every start and reload reproduces. It is safe for
// concurrent use; operations are serialised, which also keeps a runtime
// change from racing a reload.
type Manager struct {
	cfg Config

	mu      sync.Mutex
	desired map[string]lb.Backend
	// started is true between Start (or EnsureRunning) and Stop: while set,
	// a crashed process is restarted by the next driver call.
	started bool
	proc    *process
	// extPid is the worker of an External HAProxy that berth last loaded
	// its configuration into and applied its state to.
	extPid int
}

// process is one master started by this Manager; done is closed once it
// has been reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NewManager checks cfg; it starts nothing.
func NewManager(cfg Config) (*Manager, error) {
	bin, err := FindBinary(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("haproxy: binary: %w", err)
	}
	cfg.Binary = bin
	if cfg.Dir == "" {
		return nil, invalid("state dir is required")
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("haproxy: state dir: %w", err)
	}
	if err := checkDir(cfg.Dir); err != nil {
		return nil, err
	}
	if err := cfg.External.check(); err != nil {
		return nil, err
	}
	if cfg.StatsAddr != "" {
		ap, err := parseAddr("stats", cfg.StatsAddr)
		if err != nil {
			return nil, err
		}
		cfg.StatsAddr = ap.String()
	}
	return &Manager{cfg: cfg, desired: map[string]lb.Backend{}}, nil
}

// Load replaces the whole desired state, typically with berth's database at
// startup before Start. It does not touch a running process: follow it with
// Reload for that.
func (m *Manager) Load(backends []lb.Backend) error {
	next := make(map[string]lb.Backend, len(backends))
	for _, b := range backends {
		nb, err := normBackend(b)
		if err != nil {
			return err
		}
		if _, dup := next[nb.Name]; dup {
			return invalid("backend %s listed twice", nb.Name)
		}
		next[nb.Name] = nb
	}
	if err := checkListeners(next, m.cfg.StatsAddr); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.desired = next
	return nil
}

// Backends returns a copy of the desired state, sorted by name.
func (m *Manager) Backends() []lb.Backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]lb.Backend, 0, len(m.desired))
	for _, n := range sortedNames(m.desired) {
		b := m.desired[n]
		b.Servers = append([]lb.Server(nil), b.Servers...)
		b.Routes = cloneRoutes(b.Routes)
		out = append(out, b)
	}
	return out
}

// cloneRoutes is a deep copy: a caller changing a returned route's servers
// must not change the desired state.
func cloneRoutes(routes []lb.Route) []lb.Route {
	if routes == nil {
		return nil
	}
	out := make([]lb.Route, len(routes))
	for i, r := range routes {
		r.Servers = slices.Clone(r.Servers)
		out[i] = r
	}
	return out
}

// Start renders the desired state, stops any HAProxy left running on Dir by
// an earlier run, starts a new master-worker HAProxy and returns once the
// worker runs every server at its desired weight and state. On failure
// nothing is left running.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return fmt.Errorf("haproxy: already running (pid %d)", m.proc.cmd.Process.Pid)
	}
	if err := m.startLocked(ctx); err != nil {
		return err
	}
	m.started = true
	return nil
}

// Stop ends HAProxy (workers close their connections at once) and the
// Manager stays stopped: driver calls return ErrNotRunning until Start or
// EnsureRunning.
func (m *Manager) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = false
	return m.stopLocked()
}

// Reload re-renders the configuration and loads it without dropping
// connections (master CLI "reload"), then re-applies and verifies every
// server's weight and state. If HAProxy is not running it is started.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.reloadLocked(ctx)
	if err == nil {
		m.started = true
	}
	return err
}

// EnsureRunning checks that the master is alive and the worker answers;
// otherwise it cleans up and starts HAProxy again with the full desired
// state. Call it after a crash, or periodically.
func (m *Manager) EnsureRunning(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.healthyLocked(ctx) {
		if err := m.startLocked(ctx); err != nil {
			return err
		}
	}
	m.started = true
	return nil
}

// Running tells whether the master process started by this Manager is
// alive. It does not talk to HAProxy.
func (m *Manager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.External != nil {
		return m.extPid != 0
	}
	return m.proc != nil && !m.proc.exited()
}

// MasterPID is the pid of the running master, 0 if none.
func (m *Manager) MasterPID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// WorkerPID asks the master CLI ("show proc") for the current worker.
func (m *Manager) WorkerPID(ctx context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.showProc(ctx)
	if err != nil {
		return 0, err
	}
	if len(p.Workers) == 0 {
		return 0, fmt.Errorf("haproxy: master %d has no worker", p.Master)
	}
	return p.Workers[0], nil
}

// Dir is the state directory (absolute).
func (m *Manager) Dir() string { return m.cfg.Dir }

// readyLocked is the cheap liveness check before a driver call: it restarts
// a crashed process but leaves a stopped Manager stopped.
func (m *Manager) readyLocked(ctx context.Context) error {
	if !m.started {
		return ErrNotRunning
	}
	if m.cfg.External != nil {
		return nil // not ours to start; a call to a dead one fails and is retried
	}
	if m.proc == nil || m.proc.exited() {
		return m.startLocked(ctx)
	}
	return nil
}

func (m *Manager) healthyLocked(ctx context.Context) bool {
	if m.cfg.External != nil {
		return m.externalHealthy(ctx)
	}
	if m.proc == nil || m.proc.exited() || !isOurHAProxy(m.proc.cmd.Process.Pid, m.cfg.cfgPath()) {
		return false
	}
	out, err := m.runtime(ctx, "show info")
	return err == nil && parseInfoPid(out) > 0
}

func (m *Manager) startLocked(ctx context.Context) error {
	if m.cfg.External != nil {
		_, err := m.adoptLocked(ctx)
		return err
	}
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	if err := m.stopLocked(); err != nil {
		return err
	}
	// Stale sockets and pidfile would be replaced by HAProxy anyway; removing
	// them keeps the readiness checks below from talking to a dead socket.
	for _, f := range []string{m.cfg.pidFile(), m.cfg.adminSock(), m.cfg.masterSock()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("haproxy: %w", err)
		}
	}
	if err := m.writeConfig(ctx, true); err != nil {
		return err
	}
	// HAProxy logs every state change to stderr; one rotation per start keeps
	// a long-lived instance from filling the disk.
	if fi, err := os.Stat(m.cfg.logFile()); err == nil && fi.Size() > maxLogBytes {
		_ = os.Rename(m.cfg.logFile(), m.cfg.logFile()+".1")
	}
	logf, err := os.OpenFile(m.cfg.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	off := m.logOffset()
	cmd := exec.Command(m.cfg.Binary, "-W", "-S", m.cfg.masterSock(), "-f", m.cfg.cfgPath(), "-p", m.cfg.pidFile())
	cmd.Dir = m.cfg.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group keeps a Ctrl-C or a signal to berth's group from
	// reaching HAProxy: its lifetime is decided here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("haproxy: start %s: %w", m.cfg.Binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	m.proc = p

	if _, err := m.waitWorker(ctx, startTimeout, 0); err != nil {
		_ = m.stopLocked()
		return fmt.Errorf("haproxy: start: %w\n%s", err, m.logSince(off))
	}
	if err := m.applyAllLocked(ctx); err != nil {
		// A process whose state is not the desired one must not look healthy
		// to EnsureRunning; better none than a wrong one.
		_ = m.stopLocked()
		return fmt.Errorf("haproxy: start: %w", err)
	}
	return nil
}

// stopLocked ends our master (SIGTERM, SIGKILL after grace) and any other
// HAProxy still running on this Dir.
func (m *Manager) stopLocked() error {
	if m.cfg.External != nil {
		// Never stopped by berth, and never mistaken for a stale one of ours.
		m.extPid = 0
		return nil
	}
	if p := m.proc; p != nil {
		m.proc = nil
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(stopGrace):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}
	if err := killStale(context.Background(), m.cfg.cfgPath(), m.cfg.pidFile(), stopGrace); err != nil {
		return fmt.Errorf("haproxy: old process on %s does not exit: %w", m.cfg.cfgPath(), err)
	}
	return nil
}

// reloadLocked reports whether the new configuration is loaded (even when
// the state check after it failed), so callers know whether to roll their
// desired state back.
func (m *Manager) reloadLocked(ctx context.Context) (loaded bool, err error) {
	if m.cfg.External != nil {
		return m.adoptLocked(ctx)
	}
	if m.proc == nil || m.proc.exited() {
		// Nothing to reload; a start loads the same state.
		if err := m.startLocked(ctx); err != nil {
			return false, err
		}
		return true, nil
	}
	before, err := m.showProc(ctx)
	if err != nil {
		return false, err
	}
	if err := m.writeConfig(ctx, true); err != nil {
		return false, err
	}
	off := m.logOffset()
	// The master does not answer "reload": it closes the connection and
	// re-executes itself, so success can only be read from "show proc".
	_, _ = m.master(ctx, "reload")
	var after procList
	err = poll(ctx, reloadTimeout, func(ctx context.Context) error {
		if m.proc.exited() {
			return permanent(errors.New("master exited during reload"))
		}
		out, err := m.master(ctx, "show proc")
		if err != nil {
			return err
		}
		p, err := parseShowProc(out)
		if err != nil {
			return err // empty while the master re-executes
		}
		if p.Reloads <= before.Reloads {
			return errors.New("reload not acknowledged yet")
		}
		after = p
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("haproxy: reload: %w\n%s", err, m.logSince(off))
	}
	if after.Failed > before.Failed {
		return false, fmt.Errorf("%w: reload failed, the previous configuration keeps serving:\n%s", ErrRejected, m.logSince(off))
	}
	if len(after.Workers) == 0 {
		return false, fmt.Errorf("haproxy: reload: no worker after reload\n%s", m.logSince(off))
	}
	if _, err := m.waitWorker(ctx, reloadTimeout, after.Workers[0]); err != nil {
		return true, fmt.Errorf("haproxy: reload: %w\n%s", err, m.logSince(off))
	}
	return true, m.applyAllLocked(ctx)
}

// waitWorker waits until the admin socket is served by a current worker
// (want, or any if want is 0): after a reload the socket path may still
// lead to the old worker for a moment, and a state applied there would be
// lost with it.
func (m *Manager) waitWorker(ctx context.Context, limit time.Duration, want int) (int, error) {
	var got int
	err := poll(ctx, limit, func(ctx context.Context) error {
		if m.proc == nil || m.proc.exited() {
			return permanent(errors.New("haproxy exited"))
		}
		if want == 0 {
			p, err := m.showProc(ctx)
			if err != nil {
				return err
			}
			if len(p.Workers) == 0 {
				return errors.New("no worker yet")
			}
			want = p.Workers[0]
		}
		out, err := m.runtime(ctx, "show info")
		if err != nil {
			return err
		}
		if pid := parseInfoPid(out); pid != want {
			return fmt.Errorf("admin socket served by pid %d, want worker %d", pid, want)
		}
		got = want
		return nil
	})
	return got, err
}

// applyAllLocked is the guard against the reload amnesia described in the
// package documentation: it sets every server's weight and state and then
// reads them back.
func (m *Manager) applyAllLocked(ctx context.Context) error {
	for _, name := range sortedNames(m.desired) {
		for _, s := range m.desired[name].Servers {
			if err := m.setServer(ctx, backendName(name), s); err != nil {
				return err
			}
		}
	}
	return m.verifyLocked(ctx)
}

// setServer orders the two changes so that no intermediate combination
// attracts traffic the final one would not: a server leaving rotation
// changes state first, a server entering it gets its weight first.
func (m *Manager) setServer(ctx context.Context, be string, s lb.Server) error {
	ref := be + "/" + s.Name
	weight := func() error {
		return m.expect(ctx, fmt.Sprintf("set server %s weight %d", ref, s.Weight), replyEmpty)
	}
	state := func() error {
		return m.expect(ctx, fmt.Sprintf("set server %s state %s", ref, s.State), replyEmpty)
	}
	if s.State == lb.StateReady {
		if err := weight(); err != nil {
			return err
		}
		return state()
	}
	if err := state(); err != nil {
		return err
	}
	return weight()
}

// verifyLocked compares "show stat" with the desired state. Where a failing
// health check makes the status DOWN, the administrative state comes from
// "show servers state" instead.
func (m *Manager) verifyLocked(ctx context.Context) error {
	out, err := m.runtime(ctx, "show stat -1 4 -1")
	if err != nil {
		return err
	}
	rows, err := parseShowStat(out)
	if err != nil {
		return err
	}
	got := make(map[string]statRow, len(rows))
	for _, r := range rows {
		got[r.Proxy+"/"+r.Server] = r
	}
	var admin map[string]serverAdmin
	var diffs []string
	for _, name := range sortedNames(m.desired) {
		be := backendName(name)
		for _, s := range m.desired[name].Servers {
			key := be + "/" + s.Name
			r, ok := got[key]
			if !ok {
				diffs = append(diffs, key+" is missing")
				continue
			}
			if r.Weight != s.Weight {
				diffs = append(diffs, fmt.Sprintf("%s has weight %d, want %d", key, r.Weight, s.Weight))
			}
			st := statusState(r.Status)
			if st == StateDown {
				if admin == nil {
					if admin, err = m.serversState(ctx); err != nil {
						return err
					}
				}
				st = admin[key].state()
			}
			if st != s.State {
				diffs = append(diffs, fmt.Sprintf("%s is %s (%s), want %s", key, st, r.Status, s.State))
			}
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("haproxy: running state differs from desired state: %s", strings.Join(diffs, "; "))
	}
	return nil
}

func (m *Manager) serversState(ctx context.Context) (map[string]serverAdmin, error) {
	out, err := m.runtime(ctx, "show servers state")
	if err != nil {
		return nil, err
	}
	list, err := parseServersState(out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]serverAdmin, len(list))
	for _, a := range list {
		res[a.Backend+"/"+a.Server] = a
	}
	return res, nil
}

// serverRows reads the servers HAProxy currently has in one backend.
func (m *Manager) serverRows(ctx context.Context, backend string) (map[string]statRow, error) {
	cmd := "show stat " + backendName(backend) + " 4 -1"
	out, err := m.runtime(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(out, "# pxname,") {
		return nil, &CommandError{Command: cmd, Reply: out}
	}
	rows, err := parseShowStat(out)
	if err != nil {
		return nil, err
	}
	res := make(map[string]statRow, len(rows))
	for _, r := range rows {
		res[r.Server] = r
	}
	return res, nil
}

func (m *Manager) showProc(ctx context.Context) (procList, error) {
	out, err := m.master(ctx, "show proc")
	if err != nil {
		return procList{}, err
	}
	return parseShowProc(out)
}

func (m *Manager) runtime(ctx context.Context, cmd string) (string, error) {
	return sockCommand(ctx, m.cfg.adminSock(), cmd)
}

func (m *Manager) master(ctx context.Context, cmd string) (string, error) {
	return sockCommand(ctx, m.cfg.masterSock(), cmd)
}

// expect runs cmd and turns a reply ok does not accept into a CommandError.
func (m *Manager) expect(ctx context.Context, cmd string, ok func(string) bool) error {
	out, err := m.runtime(ctx, cmd)
	if err != nil {
		return err
	}
	if !ok(out) {
		return &CommandError{Command: cmd, Reply: out}
	}
	return nil
}

// writeConfig renders the desired state and replaces the configuration file
// atomically, so a crash never leaves half a file for the next start. With
// check, HAProxy itself validates it first ("haproxy -c").
func (m *Manager) writeConfig(ctx context.Context, check bool) error {
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	if m.cfg.External != nil {
		if err := os.MkdirAll(filepath.Dir(m.cfg.cfgPath()), 0o755); err != nil {
			return fmt.Errorf("haproxy: %w", err)
		}
	}
	tmp := m.cfg.cfgPath() + ".new"
	if err := os.WriteFile(tmp, renderConfig(m.cfg, m.desired), 0o600); err != nil {
		return fmt.Errorf("haproxy: write config: %w", err)
	}
	if check {
		out, err := exec.CommandContext(ctx, m.cfg.Binary, "-c", "-f", tmp).CombinedOutput()
		if err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("%w: haproxy -c: %v\n%s", ErrRejected, err, out)
		}
	}
	if err := os.Rename(tmp, m.cfg.cfgPath()); err != nil {
		return fmt.Errorf("haproxy: write config: %w", err)
	}
	return nil
}

func (m *Manager) logOffset() int64 {
	fi, err := os.Stat(m.cfg.logFile())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what HAProxy logged since off (its last logTailBytes):
// HAProxy explains failed starts and reloads only there.
func (m *Manager) logSince(off int64) string {
	f, err := os.Open(m.cfg.logFile())
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-off > logTailBytes {
		off = fi.Size() - logTailBytes
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// permanentError stops poll early.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// poll calls try every 20ms until it succeeds, fails permanently, ctx ends
// or limit passes; a timeout reports the last error, which says what was
// still missing.
func poll(ctx context.Context, limit time.Duration, try func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		var pe permanentError
		if errors.As(err, &pe) {
			return pe.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
