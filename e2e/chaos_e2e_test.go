package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
)

// chaosOps are the kinds of run the chaos test kills workers in, with the
// number of history events such a run roughly has: the kill comes after a
// random number of events up to it.
var chaosOps = map[string]int{
	"deploy": 70, "scale-out": 50, "scale-in": 40, "image-release": 90,
	"file-release": 90, "grey-release": 110, "delete": 50, "restart": 35,
}

// chaosStats are the counts the chaos test reports.
type chaosStats struct {
	runs, kills, checks, failedRuns int
	byOp                            map[string]int
	recoveries                      []time.Duration
	// HAProxy SIGKILLed beside the worker during releases under load.
	lbKills, requests, failedRequests int64
	lbDown                            time.Duration
}

func (s *chaosStats) report() string {
	rec := slices.Clone(s.recoveries)
	slices.Sort(rec)
	median, highest := time.Duration(0), time.Duration(0)
	if len(rec) > 0 {
		median, highest = rec[len(rec)/2], rec[len(rec)-1]
	}
	ops := make([]string, 0, len(s.byOp))
	for op, n := range s.byOp {
		ops = append(ops, fmt.Sprintf("%s %d", op, n))
	}
	sort.Strings(ops)
	return fmt.Sprintf("runs %d (%s), worker kills %d, runs caught mid-way %d, invariant checks %d, failed runs %d; "+
		"moved again after the worker's return: median %s, max %s; HAProxy kills during releases under load %d: %d requests, %d failed, %s without an answer in all",
		s.runs, strings.Join(ops, ", "), s.kills, len(rec), s.checks, s.failedRuns, median.Round(10*time.Millisecond), highest.Round(10*time.Millisecond),
		s.lbKills, s.requests, s.failedRequests, s.lbDown.Round(10*time.Millisecond))
}

func envNumber(t testing.TB, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	require.NoError(t, err, name)
	return n
}

// The worker is SIGKILLed at a random point of each of many runs (deploy,
// scale out and in, image, file and grey releases, delete) and restarted at
// once. Every run must still succeed, and after each one the engines,
// HAProxy's live state, the CMDB, the ports, the locks, the approvals and
// a reconciler pass must agree with the records: nothing doubled, nothing
// orphaned. BERTH_CHAOS_RUNS sets the count (make chaos: 50) and
// BERTH_CHAOS_SEED replays a seed; both are printed.
func TestChaosWorkerKills(t *testing.T) {
	hs := needHarness(t)
	// make test runs a small slice: three runs of a seed whose kills land
	// in a deploy, a scale-in (between HAProxy's removal and its record,
	// where issue 17's chaos found a stale server) and a delete. make chaos
	// runs 50 with a fresh seed.
	runs, seed := 3, int64(1796479333342039092)
	// Restarts of one instance join the mix under make chaos only, so the
	// slice's seed still picks the runs it was chosen for.
	restarts := false
	if os.Getenv("BERTH_CHAOS_RUNS") != "" {
		runs, seed = int(envNumber(t, "BERTH_CHAOS_RUNS", 6)), time.Now().UnixNano()
		restarts = true
	}
	seed = envNumber(t, "BERTH_CHAOS_SEED", seed)
	t.Logf("chaos: %d runs, seed %d (rerun with BERTH_CHAOS_SEED=%d)", runs, seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	apps := hs.newEnv(t, "chaos")
	tenant := hs.tenant + "-chaos"
	stats := &chaosStats{byOp: map[string]int{}}
	c := &chaos{hs: hs, apps: apps, tenant: tenant, rng: rng, stats: stats, restarts: restarts}
	defer func() { t.Log("chaos: " + stats.report()) }()
	for i := 0; i < runs; i++ {
		op := c.nextOp(i == runs-1)
		stats.runs++
		stats.byOp[op]++
		// A third of the releases also lose HAProxy at the worker's kill,
		// with requests going through it; failures there are counted, not
		// forbidden.
		var l *load
		if strings.HasSuffix(op, "-release") && rng.IntN(3) == 0 {
			l = startLoad(t, "http://"+hs.pool(t, c.service(t).ID).Backend.ListenAddr+"/version")
		}
		runID := c.start(t, op)
		c.killDuring(t, op, runID, l != nil)
		run := hs.waitRun(t, runID)
		// Kept beside the harness's logs: a failed invariant is read from
		// what the killed run did.
		hs.writeHistory(t, run.WorkflowID, run.TemporalRunID, filepath.Join(hs.logDir, fmt.Sprintf("chaos-%02d-%s-run%d.json", i+1, op, runID)))
		if l != nil {
			ok, failed, last := l.finish()
			stats.lbKills++
			stats.requests += ok + failed
			stats.failedRequests += failed
			stats.lbDown += l.down
			t.Logf("chaos: HAProxy killed during %s under load: %d requests, %d failed, %s without an answer (last: %s)",
				op, ok+failed, failed, l.down.Round(time.Millisecond), last)
		}
		if run.Status != berth.RunSucceeded {
			stats.failedRuns++
		}
		require.Equal(t, berth.RunSucceeded, run.Status, "run %d (%s, #%d of seed %d): %s", runID, op, i+1, seed, run.Error)
		c.apply(op)
		c.checkInvariants(t, fmt.Sprintf("after %s (#%d of seed %d)", op, i+1, seed))
	}
}

// chaos is the state of one chaos test: what the application should be.
type chaos struct {
	hs       *harness
	apps     string
	tenant   string
	rng      *rand.Rand
	stats    *chaosStats
	deployed bool
	replicas int
	version  int // 1 or 2: the image a release moves to next is the other
	pending  int // replicas the started run asks for
	restarts bool
}

func (c *chaos) nextOp(last bool) string {
	if !c.deployed {
		return "deploy"
	}
	ops := []string{"scale-out", "image-release", "file-release", "grey-release", "delete"}
	if c.replicas > 1 {
		ops = append(ops, "scale-in")
		if c.restarts {
			// One of several: a service's last instance needs force.
			ops = append(ops, "restart")
		}
	}
	if c.replicas >= 4 {
		ops = slices.DeleteFunc(ops, func(s string) bool { return s == "scale-out" })
	}
	if last {
		return "delete"
	}
	return ops[c.rng.IntN(len(ops))]
}

func (c *chaos) service(t *testing.T) store.ServiceView {
	t.Helper()
	ab := c.hs.app(t, c.apps, "shop")
	require.Len(t, ab.Services, 1)
	return ab.Services[0]
}

// start starts op's run and returns its id.
func (c *chaos) start(t *testing.T, op string) uint {
	t.Helper()
	hs := c.hs
	var rs releaseStarted
	switch op {
	case "deploy":
		c.pending = 2
		code, started := hs.deploy(t, c.apps, "shop", webCompose("web", 2, ""))
		require.Equal(t, http.StatusAccepted, code)
		return started.RunID
	case "delete":
		var del runStartedBody
		require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", c.apps+"/shop", nil, &del))
		return del.RunID
	case "scale-out", "scale-in":
		c.pending = c.replicas + 1
		if op == "scale-in" {
			c.pending = c.replicas - 1
		}
		var out struct {
			RunID uint `json:"runId"`
		}
		require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", c.service(t).ID),
			map[string]int{"replicas": c.pending}, &out))
		return out.RunID
	case "restart":
		var out runStartedBody
		require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/instances/"+c.service(t).Instances[0].Name+"/restart", nil, &out))
		return out.RunID
	case "image-release":
		require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", c.service(t).ID),
			map[string]any{"image": c.nextImage(), "batchSize": 1}, &rs))
	case "grey-release":
		rs = hs.startGrey(t, c.service(t).ID, fmt.Sprintf(`{"image": %q, "steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}`, c.nextImage()))
	case "file-release":
		code, body := hs.uploadRelease(t, c.service(t).ID, "good.tar.gz",
			map[string]string{"version": fmt.Sprintf("9.0.%d", c.stats.runs), "sha256": fileSHA(t, "good.tar.gz"), "batchSize": "1"})
		require.Equal(t, http.StatusAccepted, code, "%s", body)
		require.NoError(t, json.Unmarshal(body, &rs))
	default:
		t.Fatalf("unknown chaos op %q", op)
	}
	return rs.RunID
}

func (c *chaos) nextImage() string { return fmt.Sprintf("berth-sample:v%d", 3-c.version) }

// apply records what a succeeded run made of the application.
func (c *chaos) apply(op string) {
	switch op {
	case "deploy":
		c.deployed, c.replicas, c.version = true, c.pending, 1
	case "delete":
		c.deployed, c.replicas = false, 0
	case "scale-out", "scale-in":
		c.replicas = c.pending
	case "image-release", "grey-release":
		c.version = 3 - c.version
	}
}

// killDuring SIGKILLs the worker once the run's history has a random
// number of events (or once it ended, whichever comes first), restarts it
// at once, and, if the run was still open, measures how long after the
// worker's return the run moved again: the first task a worker completed.
func (c *chaos) killDuring(t *testing.T, op string, runID uint, andHAProxy bool) {
	t.Helper()
	hs := c.hs
	var rb runBody
	require.Eventually(t, func() bool {
		rb = runBody{}
		return hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", runID), nil, &rb) == http.StatusOK && rb.Run.TemporalRunID != ""
	}, time.Minute, 10*time.Millisecond)
	wf, wfRun := rb.Run.WorkflowID, rb.Run.TemporalRunID
	at := 3 + c.rng.IntN(chaosOps[op])
	closed := false
	require.Eventually(t, func() bool {
		events, done := hs.history(t, wf, wfRun)
		closed = done
		return done || len(events) >= at
	}, 3*time.Minute, 20*time.Millisecond)
	hs.restartWorkerHard(t)
	back := time.Now()
	if andHAProxy {
		hs.killHAProxy(t)
	}
	c.stats.kills++
	if closed {
		return
	}
	var moved time.Time
	require.Eventually(t, func() bool {
		events, done := hs.history(t, wf, wfRun)
		for _, ev := range events {
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				if ev.GetEventTime().AsTime().After(back) {
					moved = ev.GetEventTime().AsTime()
					return true
				}
			}
		}
		return done
	}, 3*time.Minute, 20*time.Millisecond, "run %d (%s) never moved after the worker returned", runID, op)
	if !moved.IsZero() {
		c.stats.recoveries = append(c.stats.recoveries, moved.Sub(back))
	}
}

// history reads a workflow's events and whether it has closed.
func (hs *harness) history(t testing.TB, workflowID, runID string) ([]*historypb.HistoryEvent, bool) {
	t.Helper()
	it := hs.tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	closed := false
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		events = append(events, ev)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			closed = true
		}
	}
	return events, closed
}

// checkInvariants compares every place the application lives with berth's
// records once its run has ended.
func (c *chaos) checkInvariants(t *testing.T, when string) {
	t.Helper()
	hs := c.hs
	c.stats.checks++
	var want []string
	if c.deployed {
		svc := c.service(t)
		for _, in := range svc.Instances {
			want = append(want, in.Name)
		}
		require.Len(t, want, c.replicas, when)
		// HAProxy, when it was killed, is back with the recorded pool; a
		// server whose host was down is ready again once HAProxy's health
		// checks have seen it answer (a few check intervals).
		var pb poolBody
		var code int
		back := assert.Eventually(t, func() bool {
			pb = poolBody{}
			code = hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/pool?live=1", svc.ID), nil, &pb)
			if code != http.StatusOK || len(pb.Live) != len(svc.Instances) {
				return false
			}
			for _, s := range pb.Live {
				if s.State != lb.StateReady {
					return false
				}
			}
			return true
		}, time.Minute, 50*time.Millisecond)
		if !back {
			// Eventually's last check may still be running when it gives
			// up; read once more for the message.
			pb = poolBody{}
			code = hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/pool?live=1", svc.ID), nil, &pb)
		}
		require.True(t, back, "%s: HAProxy serves the pool of %v; last seen (HTTP %d): recorded %+v; backend %+v; live %+v",
			when, want, code, pb.Pool.Servers, pb.Backend, pb.Live)
		// The read that found every server ready is the one compared: a
		// read after it may catch one health check that timed out on this
		// busy machine (seen once: a 500 ms Layer4 timeout right after a
		// restart, up again at the next check), which says nothing about
		// which servers the pool holds.
		requirePoolMatches(t, pb, svc.Instances)
	}
	sort.Strings(want)

	var running []string
	for _, names := range hs.containersOf(t, c.tenant) {
		running = append(running, names...)
	}
	sort.Strings(running)
	require.Equal(t, want, running, "%s: containers on the engines (none doubled, none orphaned)", when)

	var ported []string
	for _, pa := range hs.portsOfTenant(t, c.tenant) {
		ported = append(ported, pa.InstanceName)
	}
	sort.Strings(ported)
	require.Equal(t, want, ported, "%s: one port per live instance", when)

	wantCIs := make([]string, len(want))
	for i, n := range want {
		wantCIs[i] = "instance:" + n
	}
	var gotCIs []string
	require.Eventually(t, func() bool {
		gotCIs = hs.cmdb.IDs("instance:" + c.tenant + "-")
		return slices.Equal(wantCIs, gotCIs)
	}, 30*time.Second, 50*time.Millisecond, "%s: CMDB instance items %v, want %v", when, gotCIs, wantCIs)

	var tenant store.Tenant
	require.NoError(t, hs.store.DB().Where("name = ?", c.tenant).First(&tenant).Error)
	var open []store.Run
	require.NoError(t, hs.store.DB().Where("active_key IS NOT NULL AND tenant_id = ?", tenant.ID).Find(&open).Error)
	require.Empty(t, open, "%s: no lock outlives its run", when)
	var waiting int64
	require.NoError(t, hs.store.DB().Model(&store.Approval{}).
		Joins("JOIN runs ON runs.id = approvals.run_id").
		Where("approvals.state IN ? AND runs.status NOT IN ? AND approvals.tenant_id = ?",
			[]berth.ApprovalState{berth.ApprovalPending, berth.ApprovalEscalated}, []berth.RunStatus{berth.RunPending, berth.RunRunning}, tenant.ID).
		Count(&waiting).Error)
	require.Zero(t, waiting, "%s: no approval left pending for an ended run", when)

	require.Empty(t, findingsAbout(hs.reconcile(t), c.tenant+"-"), "%s: the reconciler finds nothing to repair", when)
}
