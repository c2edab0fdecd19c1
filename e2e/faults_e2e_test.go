package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// chaosSuite marks a dependency-fault test: make chaos and make test-full
// run it. It stops shared services (a Docker host), which make test's other
// packages may be using at the same moment.
func chaosSuite(t *testing.T) {
	t.Helper()
	if !chaosEnabled() {
		t.Skip("a dependency fault: make chaos and make test-full run it")
	}
}

// chaosEnabled: this is make chaos or make test-full.
func chaosEnabled() bool {
	return os.Getenv("BERTH_CHAOS_RUNS") != "" || os.Getenv("BERTH_E2E_FULL") != ""
}

// dockerdScript runs deploy/local/dockerd.sh for one test host, the way
// testenv.sh started it.
func (hs *harness) dockerdScript(t *testing.T, action, name string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(hs.root, "deploy", "local", "dockerd.sh"), action, name)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "dockerd.sh %s %s: %s", action, name, out)
}

// TestChaosHostDownMidScale: the second Docker host's dockerd stops while a
// scale-out places instances on it. The run ends in a recorded, explained
// state once the host is back (its undo may have to wait for it), and the
// engines, HAProxy, the CMDB, ports, locks and a reconciler pass agree with
// the records.
func TestChaosHostDownMidScale(t *testing.T) {
	chaosSuite(t)
	hs := needHarness(t)
	var h2 *testHost
	for i := range hs.hosts {
		if strings.HasSuffix(hs.hosts[i].Name, "-h2") && strings.Contains(hs.hosts[i].Endpoint, "/berth-hosts/h2/") {
			h2 = &hs.hosts[i]
		}
	}
	if h2 == nil || os.Geteuid() != 0 {
		t.Skip("needs the h2 engine of deploy/local/testenv.sh, and root to stop it")
	}
	apps := hs.newEnv(t, "hostdown")
	tenant := hs.tenant + "-hostdown"
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	c := &chaos{hs: hs, apps: apps, tenant: tenant, stats: &chaosStats{byOp: map[string]int{}}, deployed: true, replicas: 2, version: 1}
	c.checkInvariants(t, "before the fault")

	down := true
	hs.dockerdScript(t, "down", "h2")
	t.Cleanup(func() {
		if down {
			hs.dockerdScript(t, "up", "h2")
		}
	})
	var out struct {
		RunID uint `json:"runId"`
	}
	code := hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", c.service(t).ID), map[string]int{"replicas": 4}, &out)
	if code != http.StatusAccepted {
		// Refused up front (the host is known to be down): nothing may
		// have changed.
		hs.dockerdScript(t, "up", "h2")
		down = false
		c.checkInvariants(t, fmt.Sprintf("after a scale refused with HTTP %d", code))
		return
	}
	// Let the run meet the dead host: it ends, or one of its steps fails.
	var rb runBody
	require.Eventually(t, func() bool {
		rb = runBody{}
		if hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", out.RunID), nil, &rb) != http.StatusOK {
			return false
		}
		if rb.Run.Status != berth.RunPending && rb.Run.Status != berth.RunRunning {
			return true
		}
		for _, s := range rb.Run.Steps {
			if s.State == berth.StepFailed || s.State == berth.StepCompensated || s.Error != "" {
				return true
			}
		}
		return false
	}, 3*time.Minute, 100*time.Millisecond, "the scale never met the stopped host")
	hs.dockerdScript(t, "up", "h2")
	down = false
	run := hs.waitRun(t, out.RunID)
	hs.writeHistory(t, run.WorkflowID, run.TemporalRunID, filepath.Join(hs.logDir, fmt.Sprintf("hostdown-run%d.json", run.ID)))
	t.Logf("scale with h2 down: %s (%s)", run.Status, run.Error)
	switch run.Status {
	case berth.RunSucceeded:
		c.replicas = 4
	case berth.RunFailed:
		require.NotEmpty(t, run.Error, "a failed run says why")
		var failed []store.Step
		for _, s := range run.Steps {
			if s.State == berth.StepFailed {
				failed = append(failed, s)
			}
		}
		require.NotEmpty(t, failed, "the failed step is recorded")
	default:
		t.Fatalf("run %d ended %s: %s", run.ID, run.Status, run.Error)
	}
	c.checkInvariants(t, "after the host came back")
}

// faultMidRelease deploys two instances and starts an image release of one
// instance per batch. Once the release is under way (two steps done), fault
// stops a dependency and starts it again. The release must still succeed:
// every dependency berth has is one that restarts in production, and an
// activity that meets it down retries until it is back. Then the engines,
// HAProxy, the CMDB, ports, locks, approvals and a reconciler pass must
// agree with the records.
func (hs *harness) faultMidRelease(t *testing.T, name string, fault func(t *testing.T)) {
	t.Helper()
	apps := hs.newEnv(t, name)
	c := &chaos{hs: hs, apps: apps, tenant: hs.tenant + "-" + name, stats: &chaosStats{byOp: map[string]int{}}}
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	c.deployed, c.replicas, c.version = true, 2, 1
	c.checkInvariants(t, "before the fault")

	runID := c.start(t, "image-release")
	var rb runBody
	require.Eventually(t, func() bool {
		rb = runBody{}
		if hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", runID), nil, &rb) != http.StatusOK {
			return false
		}
		done := 0
		for _, s := range rb.Run.Steps {
			if s.State == berth.StepDone {
				done++
			}
		}
		return done >= 2 || (rb.Run.Status != berth.RunPending && rb.Run.Status != berth.RunRunning)
	}, time.Minute, 10*time.Millisecond)
	require.Equal(t, berth.RunRunning, rb.Run.Status, "the release ended before the fault: %s", rb.Run.Error)

	began := time.Now()
	fault(t)
	back := time.Now()
	run := hs.waitRun(t, runID)
	hs.writeHistory(t, run.WorkflowID, run.TemporalRunID, filepath.Join(hs.logDir, fmt.Sprintf("%s-run%d.json", name, run.ID)))
	require.NotNil(t, run.FinishedAt)
	require.True(t, run.FinishedAt.After(back), "the fault hit the release mid-way")
	after := run.FinishedAt.Sub(back)
	t.Logf("%s: down and up again in %s; the release ended %s %s after", name, back.Sub(began).Round(time.Millisecond), run.Status, after.Round(time.Millisecond))
	require.Equal(t, berth.RunSucceeded, run.Status, "the release outlives a restart of a dependency: %s", run.Error)
	c.apply("image-release")
	c.checkInvariants(t, "after the fault")
}

// TestChaosMariaDBRestartMidRelease: berth's database is shut down and
// started again while an image release runs. Only make chaos runs it: the
// MariaDB is the machine's, and other packages' tests use it at the same
// time under make test-full.
func TestChaosMariaDBRestartMidRelease(t *testing.T) {
	if os.Getenv("BERTH_CHAOS_RUNS") == "" {
		t.Skip("restarts the machine's MariaDB: make chaos runs it")
	}
	hs := needHarness(t)
	if hs.dbDriver != "mysql" || !strings.Contains(hs.dbDSN, "@tcp(127.0.0.1:3306)/") || os.Geteuid() != 0 {
		t.Skip("needs the MariaDB of deploy/local/mariadb.sh, and root to restart it")
	}
	script := filepath.Join(hs.root, "deploy", "local", "mariadb.sh")
	// Whatever happens, the machine's MariaDB is left running.
	t.Cleanup(func() { _ = exec.Command(script, "up").Run() })
	hs.faultMidRelease(t, "dbrestart", func(t *testing.T) {
		for _, action := range []string{"down", "up"} {
			out, err := exec.Command(script, action).CombinedOutput()
			require.NoError(t, err, "mariadb.sh %s: %s", action, out)
		}
	})
}

// TestChaosTemporalRestartMidRelease: the Temporal server stops and starts
// again on its on-disk state while an image release runs; the worker and
// the API reconnect by themselves.
func TestChaosTemporalRestartMidRelease(t *testing.T) {
	chaosSuite(t)
	hs := needHarness(t)
	if hs.dev == nil {
		t.Skip("the Temporal server of make test-prod is not the suite's to restart")
	}
	hs.faultMidRelease(t, "temporalrestart", hs.restartTemporal)
}

// restartTemporal stops the Temporal dev server and starts it again on the
// same port and database file.
func (hs *harness) restartTemporal(t *testing.T) {
	t.Helper()
	require.NotEmpty(t, hs.devOpts.DBFilename, "the dev server keeps its state in memory: a restart would lose every run")
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.tc.Close()
	require.NoError(t, hs.dev.Stop())
	dev, err := testsuite.StartDevServer(context.Background(), hs.devOpts)
	require.NoError(t, err, "restart the Temporal dev server")
	hs.dev, hs.tc = dev, dev.Client()
}
