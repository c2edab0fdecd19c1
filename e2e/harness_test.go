package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/cmdb/cmdbtest"
	"github.com/berth-dev/berth/codec"
	"github.com/berth-dev/berth/firewall/changeapi/changeapitest"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
	"github.com/berth-dev/berth/tickets/ticketstest"
)

// The integration harness: one real Temporal dev server, real dockerd hosts,
// a real database (MariaDB when BERTH_TEST_MYSQL_DSN is set, else SQLite),
// and berth's server and worker as separate processes, so a test can SIGKILL
// the worker. It is shared by every test of this package.
type harness struct {
	root     string
	bin      string
	temporal string
	dbDriver string
	dbDSN    string
	apiURL   string
	token    string
	tenant   string // every tenant a test makes starts with this prefix
	portMin  int
	portMax  int
	hosts    []testHost
	store    *store.Store
	// payloads opens what the berth processes sealed with the test key.
	payloads *codec.AESGCM
	tc       sdkclient.Client
	// dev is the Temporal dev server, started with devOpts.
	dev     *testsuite.DevServer
	devOpts testsuite.DevServerOptions
	// temporalAddr is the Temporal frontend, for the Temporal CLI; namespace
	// is berth's namespace there.
	temporalAddr string
	namespace    string
	// temporalTLS is the folder of the CA and client certificate that the
	// production server of make test-prod requires (mutual TLS); "" none.
	temporalTLS string
	mu          sync.Mutex
	server      *exec.Cmd
	worker      *exec.Cmd
	logDir      string
	env         []string
	cmdb        *cmdbtest.Receiver
	// tickets is the ticket system incidents are delivered to.
	tickets *ticketstest.Receiver
	// alertmanagerToken is the bearer token the Alertmanager hook takes.
	alertmanagerToken string
	// logArchive is where the log collector archives shipped lines.
	logArchive string
	// changes is the network team's change API (firewall mode "change").
	changes *changeapitest.Receiver
	// workerMetrics and haproxyStats are where the worker serves /metrics
	// and where its HAProxy serves its stats and /metrics.
	workerMetrics, haproxyStats string
	// fwTable is the nftables table the worker guards the port window
	// with (the firewall of region local), "" when the tests cannot use
	// nftables (not root).
	fwTable string
	// registry is the loopback registry (BERTH_TEST_REGISTRY), "" without one.
	registry string
	// registryUser and registryPass are its credentials (the workers').
	registryUser, registryPass string
	stopFuncs                  []func()
}

type testHost struct {
	Name     string
	Endpoint string
	IP       string
	Engine   *client.Client
}

var h *harness

// sampleImage is built FROM scratch on every test host, since no registry can be reached.
const sampleImage = "berth-sample:v1"

// sampleImages are the versions releases move between; v3bad fails its
// health check on instances 7 and 8, i.e. in the second batch of two.
var sampleImages = []struct{ tag, env string }{
	{sampleImage, "APP_VERSION=v1"},
	{"berth-sample:v2", "APP_VERSION=v2"},
	{"berth-sample:v3", "APP_VERSION=v3"},
	{"berth-sample:v3bad", "APP_VERSION=v3 FAIL_HEALTH_FOR=-7,-8"},
	{"berth-sample:v2err", "APP_VERSION=v2 ERROR_RATE=0.3"},
}

func TestMain(m *testing.M) {
	if os.Getenv("BERTH_TEST_DOCKER_HOSTS") == "" {
		fmt.Println("integration tests need real services: run `make test` (it starts dockerd hosts, MariaDB and Temporal)")
		if os.Getenv("BERTH_REQUIRE_E2E") != "" {
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	// The hosts are shared by every test process on this machine, and each
	// harness clears the e2e containers it finds: one harness at a time.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "berth-e2e.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness lock:", err)
		os.Exit(1)
	}
	h, err = startHarness()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		if h != nil {
			h.stop()
		}
		os.Exit(1)
	}
	code := m.Run()
	h.stop()
	os.Exit(code)
}

func needHarness(t testing.TB) *harness {
	t.Helper()
	if h == nil {
		t.Skip("no integration services (BERTH_TEST_DOCKER_HOSTS unset); run make test")
	}
	return h
}

// fullSuite marks a test that only make test-full runs (BERTH_E2E_FULL=1):
// a variant of a path that a test of make test already proves on the same
// real services. make test stays well inside CI's time; the full suite is
// run before a release and whenever the variant's code changes.
func fullSuite(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_E2E_FULL") == "" {
		t.Skip("in the full suite only: make test-full")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot is the module root (where go.mod is): the tests run in e2e/, and
// the berth binary, testdata/, bin/temporal and testdata/histories are found
// from the root.
func repoRoot() string {
	wd, _ := os.Getwd()
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return filepath.Clean(filepath.Join(wd, ".."))
		}
	}
}

func startHarness() (*harness, error) {
	ctx := context.Background()
	hs := &harness{root: repoRoot(), tenant: "e2e" + randHex(3), token: randHex(24)}
	hs.logDir = os.Getenv("BERTH_TEST_LOGS")
	if hs.logDir == "" {
		hs.logDir = filepath.Join(os.TempDir(), "berth-e2e-"+hs.tenant)
	}
	if err := os.MkdirAll(hs.logDir, 0o755); err != nil {
		return nil, err
	}
	// A port window per run, so leftovers of an earlier, killed run cannot
	// hold the ports this one allocates; below the kernel's ephemeral range
	// (32768+), where outgoing connections would take ports from under us.
	var nb [2]byte
	_, _ = rand.Read(nb[:])
	hs.portMin = 20000 + int(nb[0])%90*100
	hs.portMax = hs.portMin + 99

	for _, spec := range strings.Split(os.Getenv("BERTH_TEST_DOCKER_HOSTS"), ",") {
		name, rest, ok := strings.Cut(spec, "=")
		endpoint, ip, ok2 := strings.Cut(rest, "@")
		if !ok || !ok2 {
			return nil, fmt.Errorf("BERTH_TEST_DOCKER_HOSTS entry %q: want name=endpoint@ip", spec)
		}
		eng, err := client.New(client.WithHost(endpoint))
		if err != nil {
			return nil, err
		}
		hs.hosts = append(hs.hosts, testHost{Name: hs.tenant + "-" + name, Endpoint: endpoint, IP: ip, Engine: eng})
	}
	// The hosts are cleared and given the sample images at once: each is
	// its own dockerd, and this is minutes of the suite when done in turn.
	app, err := sampleAppBinary(hs.root)
	if err != nil {
		return hs, err
	}
	var g errgroup.Group
	for _, th := range hs.hosts {
		g.Go(func() error {
			if err := removeLeftovers(ctx, th.Engine); err != nil {
				return fmt.Errorf("clean %s: %w", th.Name, err)
			}
			for _, img := range sampleImages {
				if err := buildSampleImage(ctx, th.Engine, app, img.tag, img.env); err != nil {
					return fmt.Errorf("build sample image %s on %s: %w", img.tag, th.Name, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return hs, err
	}

	hs.temporal = filepath.Join(hs.root, "bin", "temporal")
	var addr string
	if addr, hs.namespace = os.Getenv("BERTH_TEST_TEMPORAL_ADDRESS"), os.Getenv("BERTH_TEST_TEMPORAL_NAMESPACE"); addr != "" {
		// make test-prod: the production Temporal server on PostgreSQL
		// (deploy/local/temporal-server.sh), which outlives the suite.
		if hs.namespace == "" {
			return hs, errors.New("BERTH_TEST_TEMPORAL_ADDRESS needs BERTH_TEST_TEMPORAL_NAMESPACE")
		}
		opts := sdkclient.Options{HostPort: addr, Namespace: hs.namespace}
		if hs.temporalTLS = os.Getenv("BERTH_TEST_TEMPORAL_TLS_DIR"); hs.temporalTLS != "" {
			if opts.ConnectionOptions.TLS, err = clientTLS(hs.temporalTLS); err != nil {
				return hs, err
			}
		}
		if hs.tc, err = sdkclient.Dial(opts); err != nil {
			return hs, fmt.Errorf("temporal server at %s: %w", addr, err)
		}
		hs.stopFuncs = append(hs.stopFuncs, hs.tc.Close)
	} else {
		tport, err := freePort()
		if err != nil {
			return hs, err
		}
		tlog, _ := os.Create(filepath.Join(hs.logDir, "temporal.log"))
		hs.devOpts = testsuite.DevServerOptions{
			ExistingPath:  hs.temporal,
			ClientOptions: &sdkclient.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", tport), Namespace: "default"},
			LogLevel:      "error",
			ExtraArgs: []string{"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
				"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1"},
			Stdout: tlog, Stderr: tlog,
		}
		if chaosEnabled() {
			// On disk, so that a dependency-fault test can restart the server
			// mid-run and find its workflows again; in memory otherwise, the
			// faster for the rest of the suite.
			hs.devOpts.DBFilename = filepath.Join(hs.logDir, "temporal.db")
		}
		hs.dev, err = testsuite.StartDevServer(ctx, hs.devOpts)
		if err != nil {
			return hs, fmt.Errorf("temporal dev server: %w", err)
		}
		hs.stopFuncs = append(hs.stopFuncs, func() { _ = hs.dev.Stop() })
		hs.tc = hs.dev.Client()
		addr = hs.dev.FrontendHostPort()
		hs.namespace = "default"
	}
	hs.temporalAddr = addr

	if dsn := os.Getenv("BERTH_TEST_MYSQL_DSN"); dsn != "" {
		var drop func() error
		hs.dbDSN, drop, err = storetest.FreshMySQL(dsn, "berth_"+hs.tenant)
		if err != nil {
			return hs, err
		}
		hs.dbDriver = "mysql"
		hs.stopFuncs = append(hs.stopFuncs, func() { _ = drop() })
	} else {
		hs.dbDriver, hs.dbDSN = "sqlite", filepath.Join(hs.logDir, "berth.db")
	}
	hs.store, err = store.Open(hs.dbDriver, hs.dbDSN)
	if err != nil {
		return hs, err
	}
	if err := hs.store.Migrate(ctx); err != nil {
		return hs, err
	}

	hs.bin = filepath.Join(hs.logDir, "berth")
	build := exec.Command("go", "build", "-o", hs.bin, "./cmd/berth")
	build.Dir = hs.root
	// Static, as make build makes it: the worker puts this binary into the
	// mesh relay image, which has no C library.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return hs, fmt.Errorf("build berth: %w", err)
	}
	// The berth processes seal Temporal payloads with the test key, so that
	// histories recorded here replay in worker/replay_test.go.
	key, err := os.ReadFile(filepath.Join(hs.root, "testdata", "histories", "payload.key"))
	if err != nil {
		return hs, err
	}
	if err := os.WriteFile(filepath.Join(hs.logDir, "payload.key"), key, 0o600); err != nil {
		return hs, err
	}
	keys, err := codec.ParseKeys(string(key))
	if err != nil {
		return hs, err
	}
	if hs.payloads, err = codec.New(keys...); err != nil {
		return hs, err
	}
	apiPort, err := freePort()
	if err != nil {
		return hs, err
	}
	hs.cmdb = cmdbtest.New("")
	cmdbSrv := httptest.NewServer(hs.cmdb)
	hs.stopFuncs = append(hs.stopFuncs, cmdbSrv.Close)
	hs.tickets = ticketstest.New("tickets-e2e")
	ticketSrv := httptest.NewServer(hs.tickets)
	hs.stopFuncs = append(hs.stopFuncs, ticketSrv.Close)
	hs.alertmanagerToken = "alertmanager-e2e"
	hs.changes = changeapitest.New(2 * time.Second)
	changeSrv := httptest.NewServer(hs.changes)
	hs.stopFuncs = append(hs.stopFuncs, changeSrv.Close)
	var lb [2]byte
	_, _ = rand.Read(lb[:])
	lbMin := 10000 + int(lb[0])%90*100
	hs.apiURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	env := []string{
		"BERTH_LISTEN=" + fmt.Sprintf("127.0.0.1:%d", apiPort),
		"BERTH_DB_DRIVER=" + hs.dbDriver, "BERTH_DB_DSN=" + hs.dbDSN,
		"BERTH_TEMPORAL_ADDRESS=" + addr, "BERTH_TEMPORAL_NAMESPACE=" + hs.namespace, "BERTH_API_TOKEN=" + hs.token,
		"BERTH_PORT_MIN=" + fmt.Sprint(hs.portMin), "BERTH_PORT_MAX=" + fmt.Sprint(hs.portMax),
		"BERTH_REGIONS=local", "BERTH_DATA=" + hs.logDir,
		"BERTH_LB=haproxy", "BERTH_LB_PORT_MIN=" + fmt.Sprint(lbMin), "BERTH_LB_PORT_MAX=" + fmt.Sprint(lbMin+99),
		"BERTH_CMDB=http", "BERTH_CMDB_URL=" + cmdbSrv.URL, "BERTH_CMDB_RESYNC_EVERY=0", "BERTH_HEALTH_TIMEOUT=20s", "BERTH_DRAIN_TIMEOUT=10s",
		// Self-healing looks every 5 s (30 s by default), so its test waits little.
		"BERTH_HEAL_EVERY=5s",
		"BERTH_DISK_EVERY=5s",
		// A terminal's idle limit (15 min by default), short for its test.
		"BERTH_TERMINAL_IDLE=10s",
		// Incidents go to the test's ticket system every 2 s (10 s by default).
		"BERTH_TICKETS=http", "BERTH_TICKETS_URL=" + ticketSrv.URL, "BERTH_TICKETS_TOKEN=tickets-e2e", "BERTH_TICKETS_EVERY=2s",
		"BERTH_ALERTMANAGER_TOKEN=" + hs.alertmanagerToken,
		"BERTH_FIREWALL_CHANGE_URL=" + changeSrv.URL,
	}
	if hs.temporalTLS != "" {
		env = append(env, hs.temporalTLSEnv()...)
	}
	// The registry builds push to and prefetch pulls from; /sampleapp is the
	// one command a file release may run after upload.
	env = append(env, "BERTH_EXEC_ALLOW=/sampleapp", "BERTH_BIND_ROOTS="+filepath.Join(hs.logDir, "binds"))
	// The loopback rsyslog of deploy/local/rsyslog.sh: instances' output
	// and berth's own lines are shipped there and searched in its archive.
	if sl := os.Getenv("BERTH_TEST_SYSLOG"); sl != "" {
		hs.logArchive = os.Getenv("BERTH_TEST_LOG_ARCHIVE")
		env = append(env, "BERTH_LOG_SHIP=tcp://"+sl, "BERTH_LOG_ARCHIVE="+hs.logArchive)
	}
	if hs.registry = os.Getenv("BERTH_TEST_REGISTRY"); hs.registry != "" {
		env = append(env, "BERTH_REGISTRY="+hs.registry)
		// Only the worker needs the registry's credentials; the server
		// gets them too here and never uses them.
		if f := os.Getenv("BERTH_TEST_REGISTRY_AUTH_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return hs, fmt.Errorf("registry credentials: %w", err)
			}
			hs.registryUser, hs.registryPass, _ = strings.Cut(strings.TrimSpace(string(b)), ":")
			env = append(env, "BERTH_REGISTRY_AUTH_FILE="+f)
		}
	}
	// The worker is region local's firewall: every deploy of the suite
	// opens and closes real nftables rules, in a table of this run's own
	// that guards only this run's port window. The machine itself (lo) is
	// let in, as in production: health checks and HAProxy.
	if os.Geteuid() == 0 {
		hs.fwTable = "berth_" + hs.tenant
		if err := dropFirewallTables(ctx, "berth_e2e"); err != nil {
			return hs, fmt.Errorf("nftables: remove tables of earlier runs: %w", err)
		}
		env = append(env, "BERTH_FIREWALL=nftables", "BERTH_FIREWALL_TABLE="+hs.fwTable, "BERTH_FIREWALL_ALLOW=local")
		hs.stopFuncs = append(hs.stopFuncs, func() { _ = dropFirewallTables(ctx, hs.fwTable) })
	}
	for _, addr := range []*string{&hs.workerMetrics, &hs.haproxyStats} {
		p, err := freePort()
		if err != nil {
			return hs, err
		}
		*addr = fmt.Sprintf("127.0.0.1:%d", p)
	}
	env = append(env, "BERTH_METRICS_LISTEN="+hs.workerMetrics, "BERTH_HAPROXY_STATS="+hs.haproxyStats)
	hs.env = env
	hs.server = hs.spawn("server", "server")
	hs.worker = hs.spawn("worker", "worker")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(hs.apiURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return hs, fmt.Errorf("berth server did not answer; see %s", hs.logDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return hs, nil
}

// spawn starts a berth subcommand whose output goes to the log folder.
func (hs *harness) spawn(name string, args ...string) *exec.Cmd {
	f, _ := os.OpenFile(filepath.Join(hs.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	cmd := exec.Command(hs.bin, args...)
	cmd.Env = append(os.Environ(), hs.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start", name, err)
	}
	return cmd
}

// restartWorkerHard SIGKILLs the worker process and starts a new one.
func (hs *harness) restartWorkerHard(t testing.TB) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.respawn(t, &hs.worker, "worker")
}

// respawn SIGKILLs a berth process and starts it again.
func (hs *harness) respawn(t testing.TB, proc **exec.Cmd, name string) {
	t.Helper()
	require.NoError(t, (*proc).Process.Signal(syscall.SIGKILL))
	_, _ = (*proc).Process.Wait()
	*proc = hs.spawn(name, name)
}

// restartServerHard SIGKILLs the API process and starts it again, waiting
// until it answers.
func (hs *harness) restartServerHard(t testing.TB) {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.respawn(t, &hs.server, "server")
	require.Eventually(t, func() bool {
		resp, err := http.Get(hs.apiURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "the restarted berth server never answered; see %s", hs.logDir)
}

func (hs *harness) stop() {
	for _, c := range []*exec.Cmd{hs.server, hs.worker} {
		if c != nil && c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _, _ = c.Process.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}
	ctx := context.Background()
	for _, th := range hs.hosts {
		_ = removeLeftovers(ctx, th.Engine)
	}
	if hs.store != nil {
		_ = hs.store.Close()
	}
	for i := len(hs.stopFuncs) - 1; i >= 0; i-- {
		hs.stopFuncs[i]()
	}
}

// removeLeftovers removes containers and networks that integration tests
// made (tenants named e2e…), from this run or a killed earlier one, and
// nothing else.
func removeLeftovers(ctx context.Context, eng *client.Client) error {
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "berth.instance")})
	if err != nil {
		return err
	}
	for _, c := range list.Items {
		if strings.HasPrefix(c.Labels["berth.tenant"], "e2e") {
			if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				return err
			}
		}
	}
	relays, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "berth.mesh")})
	if err != nil {
		return err
	}
	for _, c := range relays.Items {
		if strings.HasPrefix(c.Labels["berth.appkey"], "e2e") {
			if _, err := eng.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				return err
			}
		}
	}
	// Their volumes: the instances' folders and the applications' named
	// volumes, which the engine keeps when a container goes.
	vols, err := eng.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", "berth.appkey")})
	if err != nil {
		return err
	}
	for _, v := range vols.Items {
		if strings.HasPrefix(v.Labels["berth.tenant"], "e2e") {
			if _, err := eng.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "no such volume") {
				return err
			}
		}
	}
	// Their applications' networks, now empty; each engine has a bounded
	// address pool, and a killed run leaves its networks behind.
	nets, err := eng.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", "berth.appkey")})
	if err != nil {
		return err
	}
	for _, n := range nets.Items {
		if strings.HasPrefix(n.Labels["berth.tenant"], "e2e") {
			if _, err := eng.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !strings.Contains(err.Error(), "not found") {
				return err
			}
		}
	}
	return nil
}

// sampleAppBinary builds the sample app once, static, for the images.
func sampleAppBinary(root string) ([]byte, error) {
	bin := filepath.Join(os.TempDir(), "berth-sampleapp-"+randHex(4))
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/sampleapp")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build sampleapp: %v: %s", err, out)
	}
	defer os.Remove(bin)
	return os.ReadFile(bin)
}

// buildSampleImage builds the sample app as a FROM-scratch image.
func buildSampleImage(ctx context.Context, eng *client.Client, binData []byte, tag, env string) error {
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY sampleapp /sampleapp\nENV %s\nEXPOSE 8080\nENTRYPOINT [\"/sampleapp\"]\n", env)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"sampleapp", 0o755, binData}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := eng.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if bytes.Contains(out, []byte(`"error"`)) {
		return fmt.Errorf("image build: %s", out)
	}
	_, err = eng.ImageInspect(ctx, tag)
	return err
}

// api calls the berth API and decodes a JSON answer into out (when not nil).
func (hs *harness) api(t testing.TB, method, path, contentType string, body []byte, out any) int {
	t.Helper()
	return hs.apiAs(t, hs.token, method, path, contentType, body, out)
}

// apiAs is api with another bearer token.
func (hs *harness) apiAs(t testing.TB, token, method, path, contentType string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, hs.apiURL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && len(data) > 0 {
		require.NoError(t, json.Unmarshal(data, out), "body: %s", data)
	}
	return resp.StatusCode
}

func (hs *harness) apiJSON(t testing.TB, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		var err error
		body, err = json.Marshal(in)
		require.NoError(t, err)
	}
	return hs.api(t, method, path, "application/json", body, out)
}

// apiJSONAs is apiJSON with another bearer token.
func (hs *harness) apiJSONAs(t testing.TB, token, method, path string, in, out any) int {
	t.Helper()
	body, err := json.Marshal(in)
	require.NoError(t, err)
	return hs.apiAs(t, token, method, path, "application/json", body, out)
}

// killHAProxy SIGKILLs berth's HAProxy (master and workers), as a crash would.
func (hs *harness) killHAProxy(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hs.logDir, "haproxy", "haproxy.pid"))
	require.NoError(t, err)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var pid int
		_, err := fmt.Sscan(f, &pid)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	require.NotEmpty(t, pids)
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		st, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// Fields after the command name: state, ppid, …
		rest := string(st[strings.LastIndexByte(string(st), ')')+2:])
		f := strings.Fields(rest)
		var pid, ppid int
		_, _ = fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid)
		_, _ = fmt.Sscan(f[1], &ppid)
		for _, m := range pids {
			if ppid == m {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// clientTLS is the mutual TLS of the suite's own Temporal client, with the
// files berth's processes get from temporalTLSEnv.
func clientTLS(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s/ca.pem", dir)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}

// temporalTLSEnv hands berth's processes the client certificate of the
// production Temporal server.
func (hs *harness) temporalTLSEnv() []string {
	return []string{"BERTH_TEMPORAL_TLS_CA=" + filepath.Join(hs.temporalTLS, "ca.pem"),
		"BERTH_TEMPORAL_TLS_CERT=" + filepath.Join(hs.temporalTLS, "client.pem"),
		"BERTH_TEMPORAL_TLS_KEY=" + filepath.Join(hs.temporalTLS, "client.key")}
}
