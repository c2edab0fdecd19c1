package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

// concurrentDeploys is how many deploys BenchmarkConcurrentDeploys starts
// at once: 50, or BERTH_BENCH_DEPLOYS.
func concurrentDeploys(b *testing.B) int {
	n := 50
	if v := os.Getenv("BERTH_BENCH_DEPLOYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			b.Fatalf("BERTH_BENCH_DEPLOYS=%q: want a number of at least 2", v)
		}
	}
	return n
}

// BenchmarkConcurrentDeploys starts 50 deploys of 2 instances at once
// (BERTH_BENCH_DEPLOYS=n for another number), half
// in region local (the suite's worker) and half in a second region served
// by a worker of its own, and reports runs per minute, the p50 and p99 run
// time (from the runs' records) and the peak RSS of every process. make
// bench runs it on the dev server, make bench-prod on the production
// Temporal server on PostgreSQL, so the two are read side by side.
func BenchmarkConcurrentDeploys(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	hs := h
	hs.registerHosts(b)
	region := "bn" + randHex(2)
	rw := hs.startRegionWorker(b, region, nil)
	regionHost := hs.regionHost(b, region)
	body := webCompose("web", 2, "")
	n := concurrentDeploys(b)
	var took []time.Duration
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		tenant := hs.tenant + "-cd" + randHex(2)
		envs := []string{hs.newEnvOn(b, tenant+"l", hs.hostNames()...), hs.newEnvOn(b, tenant+"r", regionHost)}
		ids := make([]uint, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := time.Now()
		for k := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, started := hs.deploy(b, envs[k%2], fmt.Sprintf("app%d", k), body)
				codes[k], ids[k] = code, started.RunID
			}()
		}
		wg.Wait()
		for k, code := range codes {
			if code != http.StatusAccepted {
				b.Fatalf("deploy %d: HTTP %d", k, code)
			}
		}
		var last time.Time
		for _, id := range ids {
			run := hs.waitRunFor(b, id, 20*time.Minute)
			if run.Status != berth.RunSucceeded {
				b.Fatalf("run %d: %s %s", id, run.Status, run.Error)
			}
			r, err := hs.store.Run(b.Context(), id)
			if err != nil || r.FinishedAt == nil {
				b.Fatalf("run %d: %v", id, err)
			}
			took = append(took, r.FinishedAt.Sub(r.CreatedAt))
			if r.FinishedAt.After(last) {
				last = *r.FinishedAt
			}
		}
		wall += last.Sub(start)
		b.StopTimer()
		hs.deleteAll(b, envs, n)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(n*b.N)/wall.Minutes(), "runs/min")
	b.ReportMetric(percentile(took, 50).Seconds(), "p50-s")
	b.ReportMetric(percentile(took, 99).Seconds(), "p99-s")
	for name, pid := range map[string]int{"server": hs.server.Process.Pid, "worker": hs.worker.Process.Pid,
		"region-worker": rw.cmd.Process.Pid, "temporal": hs.temporalPid()} {
		if pid != 0 {
			b.ReportMetric(float64(peakRSS(pid))/1024, name+"-peak-MB")
		}
	}
}

// deleteAll deletes app0…app(n-1), spread over envs as they were deployed,
// and waits until every delete succeeded. A delete refused because another
// run (self-healing's) holds the application is asked again until it goes in.
func (hs *harness) deleteAll(b *testing.B, envs []string, n int) {
	b.Helper()
	ids := make([]uint, n)
	for k := range n {
		path := envs[k%2] + "/" + fmt.Sprintf("app%d", k)
		require.Eventually(b, func() bool {
			var del runStartedBody
			code := hs.apiJSON(b, "DELETE", path, nil, &del)
			require.Contains(b, []int{http.StatusAccepted, http.StatusConflict}, code, "delete app%d", k)
			if code == http.StatusAccepted && del.Existing {
				// The answer is the run that holds the application.
				run := hs.waitRunFor(b, del.RunID, 20*time.Minute)
				b.Logf("delete of app%d waited for run %d (%s, %s %s)", k, run.ID, run.Kind, run.Status, run.Error)
				return false
			}
			ids[k] = del.RunID
			return code == http.StatusAccepted
		}, 10*time.Minute, time.Second, "delete app%d never went in", k)
	}
	for k, id := range ids {
		if run := hs.waitRunFor(b, id, 20*time.Minute); run.Status != berth.RunSucceeded {
			b.Fatalf("delete of app%d, run %d: %s %s", k, id, run.Status, run.Error)
		}
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(i, len(sorted))-1)]
}

// temporalPid finds the Temporal server the suite runs on: the production
// one's pidfile, or the dev server listening on the suite's port.
func (hs *harness) temporalPid() int {
	if hs.dev == nil {
		b, err := os.ReadFile("/run/berth-temporal-server.pid")
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	_, port, _ := strings.Cut(hs.temporalAddr, ":")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if slices.Contains(args, "start-dev") && slices.Contains(args, port) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}
