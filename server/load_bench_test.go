package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// BenchmarkAPIUnderLoad holds the API at a constant 500 requests a second
// (BERTH_LOAD_RATE) for 60 s (BERTH_LOAD_SECONDS) against MariaDB with
// 10,000 runs and 1,000 instances recorded: the runs list, one run, a
// service page and a pool, in turn. Each request is sent at its scheduled
// time whatever the answers before it did, and its latency counts from that
// time, so a server that falls behind is charged for the queue it builds
// (no coordinated omission). It reports p50, p99, max and the errors; the
// whole run is one iteration.
func BenchmarkAPIUnderLoad(b *testing.B) {
	rate, seconds := envInt("BERTH_LOAD_RATE", 500), envInt("BERTH_LOAD_SECONDS", 60)
	st := benchStore(b)
	seed := seedAtSize(b, st)

	srv := New(Config{}, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer srv.Close()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	paths := []string{"/api/v1/runs?limit=50", fmt.Sprintf("/api/v1/runs/%d", seed.run), fmt.Sprintf("/services/%d", seed.service),
		fmt.Sprintf("/api/v1/services/%d/pool", seed.service)}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0}, Timeout: 30 * time.Second}
	get := func(path string) (int, error) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: seed.session})
		resp, err := cl.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	for _, p := range paths {
		code, err := get(p)
		require.NoError(b, err, p)
		require.Equal(b, http.StatusOK, code, p)
	}

	b.ResetTimer()
	lat, errs := constantRate(rate, time.Duration(seconds)*time.Second, func(i int) error {
		code, err := get(paths[i%len(paths)])
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%s: %d", paths[i%len(paths)], code)
		}
		return err
	})
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return float64(lat[max(i, 0)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat)), "requests")
	b.ReportMetric(float64(errs), "errors")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.Logf("%d requests at %d/s for %d s over %v: p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d errors",
		len(lat), rate, seconds, paths, pct(0.5), pct(0.99), pct(1), errs)
	// What each path costs alone, one request at a time: where to look
	// when the rate is not held.
	for _, p := range paths {
		t0 := time.Now()
		for i := 0; i < 50; i++ {
			_, _ = get(p)
		}
		b.Logf("%s alone: %.1f ms a request", p, float64(time.Since(t0).Microseconds())/50/1000)
	}
}

// constantRate calls send rate times a second for d, each call at its
// scheduled time in a goroutine of its own, and returns every call's
// latency from its scheduled time and the number that failed.
func constantRate(rate int, d time.Duration, send func(i int) error) ([]time.Duration, int64) {
	n := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if send(i) != nil {
				errs.Add(1)
			}
			lat[i] = time.Since(at)
		}()
	}
	wg.Wait()
	return lat, errs.Load()
}

type seeded struct {
	session string
	run     uint
	service uint
}

// seedAtSize records what a busy deployment holds: one tenant's 10,000
// runs with their steps, and 1,000 instances (100 services of 10 on 10
// hosts) each behind its service's pool.
func seedAtSize(b testing.TB, st *store.Store) seeded {
	b.Helper()
	ctx := context.Background()
	t0 := time.Now()
	shop, err := st.CreateTenant(ctx, "shop")
	require.NoError(b, err)
	env, err := st.CreateEnvironment(ctx, shop.ID, "prod")
	require.NoError(b, err)
	db := st.DB()
	hosts := make([]store.Host, 10)
	for i := range hosts {
		hosts[i] = store.Host{Name: fmt.Sprintf("h%d", i), Region: "eu", Endpoint: fmt.Sprintf("tcp://10.0.0.%d:2376", i+1),
			IP: fmt.Sprintf("10.0.0.%d", i+1), State: berth.HostReady}
	}
	require.NoError(b, db.Create(&hosts).Error)
	var firstService uint
	for a := 0; a < 50; a++ {
		app := store.Application{EnvironmentID: env.ID, Name: fmt.Sprintf("app-%d", a), State: berth.StateRunning}
		require.NoError(b, db.Create(&app).Error)
		for s := 0; s < 2; s++ {
			svc := store.Service{ApplicationID: app.ID, Name: fmt.Sprintf("svc-%d", s), Image: "reg.local/shop/web:1", Replicas: 10,
				State: berth.StateRunning, NextOrdinal: 11}
			require.NoError(b, db.Create(&svc).Error)
			if firstService == 0 {
				firstService = svc.ID
			}
			pool := berth.LBPool{ServiceID: svc.ID, Region: "eu", Backend: fmt.Sprintf("shop-prod-app-%d-svc-%d", a, s),
				ListenIP: "10.0.0.100", ListenPort: 30000 + a*2 + s, Mode: "http"}
			require.NoError(b, db.Create(&pool).Error)
			insts := make([]store.Instance, 10)
			servers := make([]berth.LBServer, 10)
			for i := range insts {
				name := fmt.Sprintf("shop-prod-app-%d-svc-%d-%d", a, s, i+1)
				h := hosts[i%len(hosts)]
				port := 20000 + (a*2+s)*10 + i
				insts[i] = store.Instance{ServiceID: svc.ID, Name: name, UID: storetest.RandHex(8), Service: svc.Name, Ordinal: i + 1,
					HostID: h.ID, ContainerID: storetest.RandHex(32), State: berth.StateRunning, Version: "1",
					Ports: `[{"hostIP":"` + h.IP + `","hostPort":` + strconv.Itoa(port) + `,"containerPort":8080,"protocol":"tcp"}]`}
				servers[i] = berth.LBServer{PoolID: pool.ID, InstanceName: name, Addr: h.IP + ":" + strconv.Itoa(port), Weight: 100, State: "ready"}
			}
			require.NoError(b, db.Create(&insts).Error)
			require.NoError(b, db.Create(&servers).Error)
		}
	}
	kinds := []berth.RunKind{berth.KindDeploy, berth.KindRelease, berth.KindScale, berth.KindRelease, berth.KindDelete}
	statuses := []berth.RunStatus{berth.RunSucceeded, berth.RunSucceeded, berth.RunFailed, berth.RunCancelled, berth.RunSucceeded}
	people := []string{"dana", "bob", "carol", "ci"}
	const runs = 10000
	batch := make([]store.Run, 0, 500)
	var last uint
	for i := 0; i < runs; i++ {
		done := time.Now().Add(-time.Duration(runs-i) * time.Minute)
		batch = append(batch, store.Run{Kind: kinds[i%len(kinds)], WorkflowID: fmt.Sprintf("load/%d", i), TenantID: shop.ID,
			EnvironmentID: env.ID, Subject: fmt.Sprintf("shop/prod/app-%d", i%50), Status: statuses[i%len(statuses)],
			StartedBy: people[i%len(people)], CreatedAt: done.Add(-time.Minute), FinishedAt: &done})
		if len(batch) == cap(batch) || i == runs-1 {
			require.NoError(b, db.Omit("Steps").Create(&batch).Error)
			steps := make([]store.Step, 0, len(batch)*6)
			for _, r := range batch {
				for k, name := range []string{"plan", "prefetch", "start", "expose", "firewall", "cmdb"} {
					steps = append(steps, store.Step{RunID: r.ID, Seq: k + 1, Name: name, State: berth.StepDone, ActiveMs: int64(10 * k)})
				}
				last = r.ID
			}
			require.NoError(b, db.CreateInBatches(&steps, 1000).Error)
			batch = batch[:0]
		}
	}
	u, err := st.CreateUser(ctx, "dana", "dana-password-long")
	require.NoError(b, err)
	require.NoError(b, st.GrantRole(ctx, u.ID, shop.ID, berth.RoleDeveloper))
	secret, _, err := st.CreateSession(ctx, u.ID, 2*time.Hour)
	require.NoError(b, err)
	b.Logf("recorded %d runs (6 steps each) and 1000 instances in %s", runs, time.Since(t0).Round(time.Millisecond))
	return seeded{session: secret, run: last, service: firstService}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
