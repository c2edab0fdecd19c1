package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
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
	body := webCompose("web", n, "")
	var berthTotal, dockerTotal time.Duration
	steps := &stepTimes{}
	for i := 0; i < b.N; i++ {
		took, run := timedDeploy(b, apps, fmt.Sprintf("bench%d", i), body)
		berthTotal += took
		h.readSteps(b, steps, run.WorkflowID, run.TemporalRunID)
		b.StopTimer()

		d, err := directDeploy(hs.hosts[0], n, 19900)
		if err != nil {
			b.Fatal(err)
		}
		dockerTotal += d
		b.StartTimer()
	}
	reportRatio(b, berthTotal, dockerTotal, "berth-s/deploy", "docker-s/deploy")
	b.ReportMetric(float64(steps.engineOverhead().Microseconds())/1000, "wf-task-ms")
	b.Log("\n" + steps.table(fmt.Sprintf("deploy of %d", n)))
	server, worker := peakRSS(hs.server.Process.Pid), peakRSS(hs.worker.Process.Pid)
	b.ReportMetric(float64(server)/1024, "server-peak-MB")
	b.ReportMetric(float64(worker)/1024, "worker-peak-MB")
}

// reportRatio reports berth's and a baseline's mean seconds per operation
// and their ratio R.
func reportRatio(b *testing.B, berthTotal, baseTotal time.Duration, berthUnit, baseUnit string) {
	berthS := berthTotal.Seconds() / float64(b.N)
	baseS := baseTotal.Seconds() / float64(b.N)
	b.ReportMetric(berthS, berthUnit)
	b.ReportMetric(baseS, baseUnit)
	b.ReportMetric(berthS/baseS, "R")
}

// timedDeploy deploys through the API, times the request to a succeeded
// run, and deletes the application again outside the timer; the caller
// stops the timer after it.
func timedDeploy(b *testing.B, apps, app string, body []byte) (time.Duration, store.Run) {
	b.Helper()
	start := time.Now()
	code, started := h.deploy(b, apps, app, body)
	if code != http.StatusAccepted {
		b.Fatalf("deploy: %d", code)
	}
	run := h.waitRun(b, started.RunID)
	took := time.Since(start)
	if run.Status != berth.RunSucceeded {
		b.Fatalf("run %d: %s %s", run.ID, run.Status, run.Error)
	}
	b.StopTimer()
	var del runStartedBody
	h.apiJSON(b, "DELETE", apps+"/"+app, nil, &del)
	h.waitRun(b, del.RunID)
	return took, run
}

// directDeploy is the baseline: the same containers made straight on the
// engine, all at once, each polled over HTTP until healthy.
func directDeploy(th testHost, n, basePort int) (time.Duration, error) {
	start := time.Now()
	names, err := directCreate(th, n, basePort)
	d := time.Since(start)
	for _, name := range names {
		if name != "" {
			_, _ = th.Engine.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true})
		}
	}
	return d, err
}

// directReplace is the bare Docker replace of n containers: with n old ones
// running, create, start and health-check n new ones at full concurrency,
// then stop and remove the old ones. Only the replace is timed.
func directReplace(th testHost, n, basePort int) (time.Duration, error) {
	ctx := context.Background()
	olds, err := directCreate(th, n, basePort)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	news, err := directCreate(th, n, basePort+n)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, name := range olds {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			timeout := 10
			_, _ = th.Engine.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: &timeout})
			_, _ = th.Engine.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
		}(name)
	}
	wg.Wait()
	d := time.Since(start)
	for _, name := range news {
		_, _ = th.Engine.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
	}
	return d, nil
}

// directCreate makes n healthy containers at full concurrency and returns their names.
func directCreate(th testHost, n, basePort int) ([]string, error) {
	ctx := context.Background()
	hostIP, _ := netip.ParseAddr(th.IP)
	names := make([]string, n)
	errs := make([]error, n)
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
	for _, err := range errs {
		if err != nil {
			return names, err
		}
	}
	return names, nil
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

// BenchmarkScale measures a scale-out 2 → 20, health-gated, every new
// instance in HAProxy and serving when the run ends.
func BenchmarkScale(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	hs := h
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tenant := fmt.Sprintf("%s-bs%s", hs.tenant, randHex(2))
		apps := hs.newEnvOn(b, tenant, hs.hosts[0].Name, hs.hosts[1].Name)
		code, started := hs.deploy(b, apps, "shop", webCompose("web", 2, ""))
		if code != http.StatusAccepted || hs.waitRun(b, started.RunID).Status != berth.RunSucceeded {
			b.Fatal("deploy failed")
		}
		svc := hs.app(b, apps, "shop").Services[0]
		b.StartTimer()
		start := time.Now()
		var out struct{ RunID uint }
		hs.apiJSON(b, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 20}, &out)
		run := hs.waitRun(b, out.RunID)
		total += time.Since(start)
		b.StopTimer()
		if run.Status != berth.RunSucceeded {
			b.Fatalf("scale: %s", run.Error)
		}
		if live := hs.pool(b, svc.ID).Live; len(live) != 20 {
			b.Fatalf("HAProxy has %d servers", len(live))
		}
		var del runStartedBody
		hs.apiJSON(b, "DELETE", apps+"/shop", nil, &del)
		hs.waitRun(b, del.RunID)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "scale-2-to-20-s")
}

// BenchmarkRelease measures a rolling image release of 20 instances in
// batches of 4 behind HAProxy, and a fast rollback of 10 instances, beside
// the bare Docker replace of 10 containers.
func BenchmarkRelease(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	hs := h
	var rel, rb, bare time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tenant := fmt.Sprintf("%s-br%s", hs.tenant, randHex(2))
		apps := hs.newEnvOn(b, tenant, hs.hosts[0].Name, hs.hosts[1].Name)
		for _, n := range []int{20, 10} {
			app := fmt.Sprintf("shop%d", n)
			code, started := hs.deploy(b, apps, app, webCompose("web", n, ""))
			if code != http.StatusAccepted || hs.waitRun(b, started.RunID).Status != berth.RunSucceeded {
				b.Fatal("deploy failed")
			}
		}
		var big, small appBody
		hs.apiJSON(b, "GET", apps+"/shop20", nil, &big)
		hs.apiJSON(b, "GET", apps+"/shop10", nil, &small)
		b.StartTimer()

		start := time.Now()
		var rs releaseStarted
		hs.apiJSON(b, "POST", fmt.Sprintf("/api/v1/services/%d/releases", big.Services[0].ID), map[string]any{"image": "berth-sample:v2", "batchSize": 4}, &rs)
		if run := hs.waitRun(b, rs.RunID); run.Status != berth.RunSucceeded {
			b.Fatalf("release: %s", run.Error)
		}
		rel += time.Since(start)

		b.StopTimer()
		hs.apiJSON(b, "POST", fmt.Sprintf("/api/v1/services/%d/releases", small.Services[0].ID), map[string]any{"image": "berth-sample:v2", "batchSize": 10}, &rs)
		hs.waitRun(b, rs.RunID)
		var rels releasesBody
		hs.apiJSON(b, "GET", fmt.Sprintf("/api/v1/services/%d/releases", small.Services[0].ID), nil, &rels)
		v1 := rels.Releases[len(rels.Releases)-1].ID
		b.StartTimer()
		start = time.Now()
		hs.apiJSON(b, "POST", fmt.Sprintf("/api/v1/services/%d/rollback", small.Services[0].ID), map[string]uint{"releaseId": v1}, &rs)
		if run := hs.waitRun(b, rs.RunID); run.Status != berth.RunSucceeded {
			b.Fatalf("rollback: %s", run.Error)
		}
		rb += time.Since(start)

		b.StopTimer()
		d, err := directReplace(hs.hosts[0], 10, 19900)
		if err != nil {
			b.Fatal(err)
		}
		bare += d
		for _, app := range []string{"shop20", "shop10"} {
			var del runStartedBody
			hs.apiJSON(b, "DELETE", apps+"/"+app, nil, &del)
			hs.waitRun(b, del.RunID)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(rel.Seconds()/n, "release-20-by-4-s")
	b.ReportMetric(rb.Seconds()/n, "rollback-10-s")
	b.ReportMetric(bare.Seconds()/n, "bare-replace-10-s")
	b.ReportMetric(rb.Seconds()/bare.Seconds(), "rollback-ratio")
}

// BenchmarkGreyWeightStep measures how long a grey release's weight step
// takes to show in the traffic: from the resume request that lets the
// setWeight 50 step start until a request through HAProxy is answered by
// the canary (4 stable v1, 1 canary v2, two hosts).
func BenchmarkGreyWeightStep(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	hs := h
	b.StopTimer()
	apps := hs.newEnvOn(b, fmt.Sprintf("%s-bg%s", hs.tenant, randHex(2)), hs.hosts[0].Name, hs.hosts[1].Name)
	code, started := hs.deploy(b, apps, "shop", webCompose("web", 4, ""))
	if code != http.StatusAccepted || hs.waitRun(b, started.RunID).Status != berth.RunSucceeded {
		b.Fatal("deploy failed")
	}
	svc := hs.app(b, apps, "shop").Services[0]
	front := "http://" + hs.pool(b, svc.ID).Backend.ListenAddr + "/version"
	c := &http.Client{Timeout: 5 * time.Second}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		rs := hs.startGrey(b, svc.ID, "image: berth-sample:v2\nsteps: [{pause: {}}, {setWeight: 50}, {pause: {}}]\n")
		hs.waitGrey(b, svc.ID, "paused before the weight step", func(s *workflows.GreyState) bool { return s.Step == 0 && s.Paused && len(s.Canaries) == 1 })
		b.StartTimer()
		start := time.Now()
		hs.greyAction(b, svc.ID, "resume")
		seen := false
		for n := 0; n < 100000 && !seen; n++ {
			resp, err := c.Get(front)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen = string(body) == "v2"
		}
		total += time.Since(start)
		b.StopTimer()
		if !seen {
			b.Fatal("the canary never answered")
		}
		hs.greyAction(b, svc.ID, "abort")
		hs.waitRun(b, rs.RunID)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "weight-step-visible-ms")
}

// BenchmarkThreeTierVsDockerCompose measures time to first healthy for the
// three-tier file (testdata/compose/real/three-tier.yaml) on one host: berth
// (API request to a succeeded run: networks, images, every instance created,
// started and healthy in depends_on order, LB and records) against
// Debian's docker-compose `up -d` of the same file on the same engine until
// every container runs and each with a healthcheck is healthy. It reports
// both and their ratio.
func BenchmarkThreeTierVsDockerCompose(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	composeBin, err := exec.LookPath("docker-compose")
	if err != nil {
		b.Skip("docker-compose is not installed (deploy/local/deps.sh bench)")
	}
	hs := h
	th := hs.hosts[0]
	apps := hs.newEnvOn(b, fmt.Sprintf("%s-b3t-%s", hs.tenant, randHex(2)), th.Name)
	body := readCompose(b, "real/three-tier.yaml")
	// Debian's docker-compose (1.29) predates depends_on's restart: key;
	// its copy of the file goes without it, nothing else changed.
	file := filepath.Join(b.TempDir(), "three-tier.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(body), "        restart: true\n", "")), 0o644); err != nil {
		b.Fatal(err)
	}
	var berthTotal, composeTotal time.Duration
	for i := 0; i < b.N; i++ {
		took, _ := timedDeploy(b, apps, fmt.Sprintf("tt%d", i), body)
		berthTotal += took
		b.StopTimer()

		project := "berthbench" + randHex(3)
		d, err := composeUp(th, composeBin, file, project)
		down := exec.Command(composeBin, "-f", file, "-p", project, "down", "-v", "--remove-orphans")
		down.Env = append(os.Environ(), "DOCKER_HOST="+th.Endpoint)
		if out, derr := down.CombinedOutput(); derr != nil {
			b.Logf("docker-compose down: %v: %s", derr, out)
		}
		if err != nil {
			b.Fatal(err)
		}
		composeTotal += d
		b.StartTimer()
	}
	reportRatio(b, berthTotal, composeTotal, "berth-s/healthy", "compose-s/healthy")
}

// composeUp runs docker-compose up -d and waits until every container of the
// project runs and every one with a healthcheck is healthy.
func composeUp(th testHost, bin, file, project string) (time.Duration, error) {
	ctx := context.Background()
	start := time.Now()
	up := exec.Command(bin, "-f", file, "-p", project, "up", "-d", "--quiet-pull")
	up.Env = append(os.Environ(), "DOCKER_HOST="+th.Endpoint)
	if out, err := up.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("docker-compose up: %v: %s", err, out)
	}
	for time.Since(start) < 2*time.Minute {
		list, err := th.Engine.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", "com.docker.compose.project="+project)})
		if err != nil {
			return 0, err
		}
		ready := len(list.Items) > 0
		for _, c := range list.Items {
			switch {
			case c.State != container.StateRunning:
				ready = false
			case strings.Contains(c.Status, "health: starting"), strings.Contains(c.Status, "unhealthy"):
				ready = false
			}
		}
		if ready {
			return time.Since(start), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("docker-compose project %s not healthy after 2 minutes", project)
}

// BenchmarkEnvUpdateVsImageRelease puts an environment-only update of 20
// instances in batches of 4 beside an image release of the same service
// with the same batches: both replace every instance behind the load
// balancer, so the update's planning and per-service steps are what differ.
func BenchmarkEnvUpdateVsImageRelease(b *testing.B) {
	if h == nil {
		b.Skip("no integration services; run make bench")
	}
	hs := h
	var upd, rel time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tenant := fmt.Sprintf("%s-bu%s", hs.tenant, randHex(2))
		apps := hs.newEnvOn(b, tenant, hs.hosts[0].Name, hs.hosts[1].Name)
		code, started := hs.deploy(b, apps, "shop", webCompose("web", 20, `APP_VERSION: "one"`))
		if code != http.StatusAccepted || hs.waitRun(b, started.RunID).Status != berth.RunSucceeded {
			b.Fatal("deploy failed")
		}
		var ab appBody
		hs.apiJSON(b, "GET", apps+"/shop", nil, &ab)
		b.StartTimer()

		start := time.Now()
		var plan updatePlanBody
		if code := hs.api(b, "PUT", apps+"/shop?batchSize=4", "application/yaml", webCompose("web", 20, `APP_VERSION: "two"`), &plan); code != http.StatusAccepted {
			b.Fatalf("update: HTTP %d", code)
		}
		if run := hs.waitRun(b, plan.RunID); run.Status != berth.RunSucceeded {
			b.Fatalf("update: %s", run.Error)
		}
		upd += time.Since(start)

		start = time.Now()
		var rs releaseStarted
		hs.apiJSON(b, "POST", fmt.Sprintf("/api/v1/services/%d/releases", ab.Services[0].ID), map[string]any{"image": "berth-sample:v2", "batchSize": 4}, &rs)
		if run := hs.waitRun(b, rs.RunID); run.Status != berth.RunSucceeded {
			b.Fatalf("release: %s", run.Error)
		}
		rel += time.Since(start)

		b.StopTimer()
		var del runStartedBody
		hs.apiJSON(b, "DELETE", apps+"/shop", nil, &del)
		hs.waitRun(b, del.RunID)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(upd.Seconds()/n, "env-update-20-by-4-s")
	b.ReportMetric(rel.Seconds()/n, "image-release-20-by-4-s")
	b.ReportMetric(upd.Seconds()/rel.Seconds(), "update-over-release")
}
