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

	"github.com/berth-dev/berth"
)

// concurrentDeploys is how many deploys BenchmarkConcurrentDeploys starts at once.
const concurrentDeploys = 50

// BenchmarkConcurrentDeploys starts 50 deploys of 2 instances at once, half
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
	var took []time.Duration
	var wall time.Duration
	for i := 0; i < b.N; i++ {
		tenant := hs.tenant + "-cd" + randHex(2)
		envs := []string{hs.newEnvOn(b, tenant+"l", hs.hostNames()...), hs.newEnvOn(b, tenant+"r", regionHost)}
		ids := make([]uint, concurrentDeploys)
		codes := make([]int, concurrentDeploys)
		var wg sync.WaitGroup
		start := time.Now()
		for k := range concurrentDeploys {
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
		hs.deleteAll(b, envs, concurrentDeploys)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(concurrentDeploys*b.N)/wall.Minutes(), "runs/min")
	b.ReportMetric(percentile(took, 50).Seconds(), "p50-s")
	b.ReportMetric(percentile(took, 99).Seconds(), "p99-s")
	for name, pid := range map[string]int{"server": hs.server.Process.Pid, "worker": hs.worker.Process.Pid,
		"region-worker": rw.cmd.Process.Pid, "temporal": hs.temporalPid()} {
		if pid != 0 {
			b.ReportMetric(float64(peakRSS(pid))/1024, name+"-peak-MB")
		}
	}
}

// deleteAll deletes app0…app(n-1), spread over envs as they were deployed.
func (hs *harness) deleteAll(b *testing.B, envs []string, n int) {
	b.Helper()
	ids := make([]uint, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var del runStartedBody
			hs.apiJSON(b, "DELETE", envs[k%2]+"/"+fmt.Sprintf("app%d", k), nil, &del)
			ids[k] = del.RunID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if run := hs.waitRunFor(b, id, 20*time.Minute); run.Status != berth.RunSucceeded {
			b.Fatalf("delete run %d: %s %s", id, run.Status, run.Error)
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
