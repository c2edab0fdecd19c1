package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
)

// load sends requests through a frontend until stopped, counting failures.
// A refused connection fails at once and the next request follows, so the
// count of failures says little about how long the frontend was gone:
// down is that time, the sum of every run of failures up to the next
// answer (read only after done).
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	done       chan struct{}
	down       time.Duration
}

func startLoad(t testing.TB, url string) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		c := &http.Client{Timeout: 5 * time.Second}
		// Bounded in count and time, and only ever to loopback.
		deadline := time.Now().Add(3 * time.Minute)
		var downSince time.Time
		defer func() {
			if !downSince.IsZero() {
				l.down += time.Since(downSince)
			}
		}()
		for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			sent := time.Now()
			resp, err := c.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			switch {
			case err == nil && resp.StatusCode == http.StatusOK:
				l.ok.Add(1)
				if !downSince.IsZero() {
					l.down += sent.Sub(downSince)
					downSince = time.Time{}
				}
				continue
			case err != nil:
				l.lastErr.Store(err.Error())
			default:
				l.lastErr.Store(resp.Status)
			}
			l.failed.Add(1)
			if downSince.IsZero() {
				downSince = sent
			}
		}
	}()
	return l
}

func (l *load) finish() (int64, int64, string) {
	close(l.stop)
	<-l.done
	last, _ := l.lastErr.Load().(string)
	return l.ok.Load(), l.failed.Load(), last
}

// poolBody is GET .../pool: the first region's pool and the sum of every
// region's live servers, and in Pools each region's own.
type poolBody struct {
	Region    string           `json:"region"`
	Pool      berth.LBPool     `json:"pool"`
	Backend   lb.Backend       `json:"backend"`
	Live      []lb.ServerStats `json:"live"`
	LiveError string           `json:"liveError"`
	Pools     []poolBody       `json:"pools"`
}

func (hs *harness) pool(t testing.TB, serviceID uint) poolBody {
	t.Helper()
	var pb poolBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/pool?live=1", serviceID), nil, &pb))
	return pb
}

func (hs *harness) scale(t testing.TB, serviceID uint, n int) (uint, []string) {
	t.Helper()
	var out struct {
		RunID    uint     `json:"runId"`
		Removing []string `json:"removing"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", serviceID), map[string]int{"replicas": n}, &out))
	run := hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	return out.RunID, out.Removing
}

// requirePoolMatches checks that HAProxy's live servers, berth's pool record
// and the service's instances are the same set, all ready.
func requirePoolMatches(t testing.TB, pb poolBody, instances []store.InstanceView) {
	t.Helper()
	var recorded, live, want []string
	for _, s := range pb.Pool.Servers {
		recorded = append(recorded, s.InstanceName)
	}
	for _, s := range pb.Live {
		live = append(live, s.Name)
		require.Equal(t, lb.StateReady, s.State, s.Name)
	}
	for _, in := range instances {
		want = append(want, in.Name)
	}
	sort.Strings(recorded)
	sort.Strings(live)
	sort.Strings(want)
	require.Equal(t, want, recorded)
	require.Equal(t, want, live)
}

// Scale 2 → 6 → 3 on two hosts behind a real HAProxy while a load generator
// runs through it: no request fails, and LB pool, containers, ports,
// firewall openings and CMDB all agree on 3 at the end.
func TestScaleOutAndInUnderLoad(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "scale")
	tenant := hs.tenant + "-scale"
	body := webCompose("web", 2, "")
	run := hs.deployOK(t, apps, "shop", body)
	svc := hs.app(t, apps, "shop").Services[0]
	pb := hs.pool(t, svc.ID)
	requirePoolMatches(t, pb, svc.Instances)
	front := "http://" + pb.Backend.ListenAddr + "/version"
	code, v := httpGet(t, front)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "v1", v)

	l := startLoad(t, front)
	outRun, _ := hs.scale(t, svc.ID, 6)
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 6)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)

	inRun, removing := hs.scale(t, svc.ID, 3)
	ok, failed, last := l.finish()
	t.Logf("load through HAProxy during 2 → 6 → 3: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "failed requests through HAProxy during scaling (last: %s)", last)
	require.Greater(t, ok, int64(100))
	require.Equal(t, []string{tenant + "-dev-shop-web-4", tenant + "-dev-shop-web-5", tenant + "-dev-shop-web-6"}, removing,
		"scale-in removes the newest instances, named before it starts")

	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 3)
	require.Equal(t, 3, svc.Replicas)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	require.Equal(t, 3, countAll(hs.containersOf(t, tenant)))
	require.Len(t, hs.portsOfTenant(t, tenant), 3)

	var opens struct{ Openings []berth.FirewallOpening }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/firewall/openings?state=open", nil, &opens))
	var open []string
	for _, o := range opens.Openings {
		if strings.HasPrefix(o.InstanceName, tenant+"-") {
			open = append(open, o.InstanceName)
		}
	}
	sort.Strings(open)
	require.Equal(t, []string{tenant + "-dev-shop-web-1", tenant + "-dev-shop-web-2", tenant + "-dev-shop-web-3"}, open)

	require.Equal(t, []string{"instance:" + tenant + "-dev-shop-web-1", "instance:" + tenant + "-dev-shop-web-2",
		"instance:" + tenant + "-dev-shop-web-3"}, hs.cmdb.IDs("instance:"+tenant))
	require.Equal(t, []string{"service:" + tenant + "/dev/shop/web"}, hs.cmdb.IDs("service:"+tenant))
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "deploy-stack-exposed")
	for name, id := range map[string]uint{"scale-service-out": outRun, "scale-service-in": inRun} {
		var rb runBody
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &rb))
		hs.recordHistory(t, rb.Run.WorkflowID, rb.Run.TemporalRunID, name)
	}
}

// A reload, or a kill of HAProxy, never brings back a state berth did not
// record: servers, weights and drain states are re-applied and verified.
func TestHAProxyRestartKeepsRecordedState(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "lbkill")
	hs.deployOK(t, apps, "shop", webCompose("web", 3, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	before := hs.pool(t, svc.ID)
	requirePoolMatches(t, before, svc.Instances)

	hs.killHAProxy(t)
	require.Eventually(t, func() bool {
		var pb poolBody
		if hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/services/%d/pool?live=1", svc.ID), nil, &pb) != http.StatusOK {
			return false
		}
		return len(pb.Live) == 3
	}, time.Minute, 100*time.Millisecond, "HAProxy is back with the pool")
	after := hs.pool(t, svc.ID)
	requirePoolMatches(t, after, svc.Instances)
	for i := range after.Live {
		require.Equal(t, before.Pool.Servers[0].Weight, after.Live[i].Weight)
	}
	code, _ := httpGet(t, "http://"+after.Backend.ListenAddr+"/version")
	require.Equal(t, http.StatusOK, code)
}

// A firewall ticket that nobody confirms fails the scale-out, and nothing of
// it stays: containers removed, ports released, LB unchanged.
func TestFirewallTicketTimeoutUndoesScaleOut(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-ticket"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev", "firewall": "ticket", "ticketTimeoutSec": 3})

	// The deploy waits for its ticket; a person confirms it.
	code, started := hs.deploy(t, apps, "shop", readCompose(t, "single.yaml"))
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool {
		var rb runBody
		hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", started.RunID), nil, &rb)
		for _, s := range rb.Run.Steps {
			if s.Name == "firewall ticket" && s.State == berth.StepWaiting {
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond)
	var requested struct{ Openings []berth.FirewallOpening }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/firewall/openings?state=requested", nil, &requested))
	require.NotEmpty(t, requested.Openings)
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/runs/%d/firewall/confirm", started.RunID), map[string]string{"comment": "CHG-1"}, nil))
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	svc := hs.app(t, apps, "shop").Services[0]
	before := hs.pool(t, svc.ID)

	// The scale-out's ticket times out: everything it made is undone.
	var out struct{ RunID uint }
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 3}, &out))
	run = hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "not confirmed")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "scale-service-ticket-timeout")
	require.Equal(t, 1, countAll(hs.containersOf(t, tenant)))
	require.Len(t, hs.portsOfTenant(t, tenant), 1)
	after := hs.pool(t, svc.ID)
	require.Equal(t, before.Pool.Servers, after.Pool.Servers)
	requirePoolMatches(t, after, hs.app(t, apps, "shop").Services[0].Instances)
	var steps []string
	for _, s := range run.Steps {
		steps = append(steps, s.Name+":"+string(s.State))
	}
	require.Contains(t, steps, "firewall ticket:failed")
	require.Contains(t, steps, "undo:done")
	for _, s := range run.Steps {
		if s.Name == "firewall ticket" {
			require.GreaterOrEqual(t, s.WaitingMs, int64(2500), "the ticket's wait counts as waiting time")
		}
	}
}

// Scaling beyond the hosts' free ports is refused up front, before any run.
func TestScaleBeyondCapacityRefused(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "big")
	tenant := hs.tenant + "-big"
	body := []byte(`services:
  wide:
    image: berth-sample:v1
    ports: ["8080", "8081", "8082"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
`)
	hs.deployOK(t, apps, "shop", body)
	svc := hs.app(t, apps, "shop").Services[0]
	var e struct {
		Error struct{ Code, Message string }
	}
	// 100 replicas × 3 ports is more than the harness's port window on both hosts.
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 100}, &e))
	require.Equal(t, "no_capacity", e.Error.Code)
	require.Contains(t, e.Error.Message, "needs 297 host ports")
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 5000}, &e))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": -1}, &e))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]string{"replicas": "many"}, &e))
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=scale&tenant="+tenant, nil, &runs))
	require.Zero(t, runs.Total)
}
