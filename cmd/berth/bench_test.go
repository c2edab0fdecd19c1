package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/store"
)

// BenchmarkDeploy deploys a one-service stack of N replicas through the API
// (plan, image check, create + start + healthy on one host, records) and, in
// the same run, does the same Docker work directly with the moby client at
// full concurrency. It reports both wall times, their ratio R, and the peak
// RSS of the berth processes.
func BenchmarkDeploy(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) { benchDeploy(b, n) })
	}
}

func benchDeploy(b *testing.B, n int) {
	hs := h
	// One host only, so berth and the direct baseline do the same work on the same engine.
	tenant := fmt.Sprintf("%s-b%d-%s", hs.tenant, n, randHex(2))
	apps := hs.newEnvOn(b, tenant, hs.hosts[0].Name)
	body := []byte(fmt.Sprintf(`services:
  web:
    image: %s
    deploy: {replicas: %d}
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
`, sampleImage, n))
	var berthTotal, dockerTotal time.Duration
	for i := 0; i < b.N; i++ {
		app := fmt.Sprintf("bench%d", i)
		start := time.Now()
		code, started := hs.deploy(b, apps, app, body)
		if code != http.StatusAccepted {
			b.Fatalf("deploy: %d", code)
		}
		run := hs.waitRun(b, started.RunID)
		berthTotal += time.Since(start)
		if run.Status != store.RunSucceeded {
			b.Fatalf("run %d: %s %s", run.ID, run.Status, run.Error)
		}
		b.StopTimer()
		var del runStartedBody
		hs.apiJSON(b, "DELETE", apps+"/"+app, nil, &del)
		hs.waitRun(b, del.RunID)

		d, err := directDeploy(hs.hosts[0], n, 19900)
		if err != nil {
			b.Fatal(err)
		}
		dockerTotal += d
		b.StartTimer()
	}
	berthS := berthTotal.Seconds() / float64(b.N)
	dockerS := dockerTotal.Seconds() / float64(b.N)
	b.ReportMetric(berthS, "berth-s/deploy")
	b.ReportMetric(dockerS, "docker-s/deploy")
	b.ReportMetric(berthS/dockerS, "R")
	server, worker := peakRSS(hs.server.Process.Pid), peakRSS(hs.worker.Process.Pid)
	b.ReportMetric(float64(server)/1024, "server-peak-MB")
	b.ReportMetric(float64(worker)/1024, "worker-peak-MB")
}

// directDeploy is the baseline: the same containers made straight on the
// engine, all at once, each polled over HTTP until healthy.
func directDeploy(th testHost, n, basePort int) (time.Duration, error) {
	ctx := context.Background()
	hostIP, _ := netip.ParseAddr(th.IP)
	names := make([]string, n)
	errs := make([]error, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			names[i] = fmt.Sprintf("e2e-direct-%s-%d", randHex(3), i)
			port := basePort + i
			p := network.MustParsePort("8080/tcp")
			res, err := th.Engine.ContainerCreate(ctx, client.ContainerCreateOptions{Name: names[i],
				Config: &container.Config{Image: sampleImage, Env: []string{"LISTEN=:8080"},
					ExposedPorts: network.PortSet{p: {}}, Labels: map[string]string{"berth.instance": names[i], "berth.tenant": "e2e-direct"}},
				HostConfig: &container.HostConfig{NetworkMode: "berth",
					PortBindings: network.PortMap{p: {{HostIP: hostIP, HostPort: strconv.Itoa(port)}}}}})
			if err != nil {
				errs[i] = err
				return
			}
			if _, err := th.Engine.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
				errs[i] = err
				return
			}
			c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
				resp, err := c.Get(fmt.Sprintf("http://%s:%d/healthz", th.IP, port))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return
					}
				}
			}
			errs[i] = fmt.Errorf("%s never healthy", names[i])
		}(i)
	}
	wg.Wait()
	d := time.Since(start)
	for _, name := range names {
		if name != "" {
			_, _ = th.Engine.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
		}
	}
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return d, nil
}

// peakRSS reads a process's high-water resident set size in KiB.
func peakRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}
