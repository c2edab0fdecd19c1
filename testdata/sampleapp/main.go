// Command sampleapp is a tiny HTTP service that berth's integration tests
// deploy as a container. It uses only the standard library so that it builds
// with CGO_ENABLED=0 into a static binary that runs in a FROM-scratch image.
//
// Behaviour, all driven by environment and files so tests can steer it
// without rebuilding the image:
//
//	LISTEN        listen address (default ":8080")
//	APP_VERSION   version reported when /berth/package/VERSION and
//	              /opt/berth/package/VERSION (an image built from a package) are absent
//	FAIL_HEALTH_FOR=-7,-8 fails /healthz on instances whose BERTH_INSTANCE ends so
//	READY_AFTER=2s makes /healthz answer 500 for that long after start
//	FAIL_HEALTH=1 makes /healthz answer 500 (so does the file
//	              /berth/package/FAIL_HEALTH)
//	ERROR_RATE    share (0..1) of requests to / and /version answered with
//	              500, chosen deterministically by a request counter
//	BERTH_SERVICE, BERTH_INSTANCE  echoed back by GET /
//
// Endpoints: GET /healthz, GET /version, GET /, GET /fail (always 500), and
// GET /slow?ms=N which answers "slow" after N milliseconds (at most 30000),
// for testing that draining an instance lets in-flight requests finish.
// GET /call?url=U fetches U (2 s limit) and answers its body, or 502 with
// the error: a service calling another by name. GET /dial?addr=HOST:PORT
// opens a TCP connection (2 s limit) and answers "open", or 502 with the
// error: the isolation probes.
//
// Because a scratch image has no shell and no curl, the binary doubles as
// its own healthcheck client:
//
//	sampleapp -probe http://127.0.0.1:8080/healthz
//
// exits 0 on a 2xx answer within 2 s, and 1 otherwise. `sampleapp
// -print-version` prints the version it would serve (something for a
// release's post-upload command to run).
//
// SIGTERM and SIGINT trigger a graceful shutdown (up to 5 s) so that a
// drained instance completes its in-flight requests.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// packageDir is where berth places per-release files inside the container.
const packageDir = "/berth/package"

// builtPackageDir is where an image built from a package holds it.
const builtPackageDir = "/opt/berth/package"

func main() {
	probe := flag.String("probe", "", "probe this URL and exit 0 on 2xx, 1 otherwise (for Docker healthchecks)")
	printVersion := flag.Bool("print-version", false, "print the version this instance serves and exit")
	hold := flag.Duration("hold", 0, "stay alive this long and exit (a child of /forkbomb)")
	shell := flag.Bool("sh", false, "a tiny line shell on stdin (echo, exit; ';' separates), for terminal tests: the image has no /bin/sh")
	flag.Parse()

	if *shell {
		os.Exit(tinyShell(os.Stdin, os.Stdout))
	}

	if *hold > 0 {
		time.Sleep(*hold)
		return
	}
	if *printVersion {
		fmt.Println(version())
		return
	}
	if *probe != "" {
		os.Exit(runProbe(*probe))
	}

	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}

	rate, err := parseRate(os.Getenv("ERROR_RATE"))
	if err != nil {
		log.Fatalf("sampleapp: %v", err)
	}

	srv := &http.Server{
		Addr:              addr,
		Handler:           newApp(rate).routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	errc := make(chan error, 1)
	go func() {
		log.Printf("sampleapp: listening on %s (version %s)", addr, version())
		errc <- srv.ListenAndServe()
	}()

	select {
	case err := <-errc:
		// ListenAndServe only returns early on a real failure (e.g. port in use).
		log.Fatalf("sampleapp: %v", err)
	case <-ctx.Done():
	}

	log.Printf("sampleapp: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Printf("sampleapp: shutdown: %v", err)
		os.Exit(1)
	}
	log.Printf("sampleapp: stopped")
}

// runProbe performs one GET and maps the outcome to an exit code.
func runProbe(url string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "probe: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// parseRate reads ERROR_RATE; empty means 0.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
		return 0, fmt.Errorf("ERROR_RATE must be a number between 0 and 1, got %q", s)
	}
	return r, nil
}

// version returns the release version: the VERSION file berth ships in the
// package directory wins over APP_VERSION, which wins over "dev".
func version() string {
	if b, err := os.ReadFile(packageDir + "/VERSION"); err == nil {
		return strings.TrimSpace(string(b))
	}
	// An image berth built from a package holds it here (the package volume
	// above is a bind mount, empty in a new instance).
	if b, err := os.ReadFile(builtPackageDir + "/VERSION"); err == nil {
		return strings.TrimSpace(string(b))
	}
	if v := os.Getenv("APP_VERSION"); v != "" {
		return v
	}
	return "dev"
}

// started is when the process began; READY_AFTER=2s keeps /healthz failing
// that long, so tests can catch a deploy mid-way.
var started = time.Now()

// sick is set by GET /sick: the process stays up but fails its health
// checks until it is restarted, as a wedged one does.
var sick atomic.Bool

// healthy reports whether /healthz should pass. It is evaluated per request
// so tests can flip health by creating the file in a running container.
func healthy() bool {
	if sick.Load() {
		return false
	}
	if d, err := time.ParseDuration(os.Getenv("READY_AFTER")); err == nil && time.Since(started) < d {
		return false
	}
	if os.Getenv("FAIL_HEALTH") == "1" {
		return false
	}
	for _, suffix := range strings.Split(os.Getenv("FAIL_HEALTH_FOR"), ",") {
		if suffix != "" && strings.HasSuffix(os.Getenv("BERTH_INSTANCE"), suffix) {
			return false
		}
	}
	if _, err := os.Stat(packageDir + "/FAIL_HEALTH"); err == nil {
		return false
	}
	return true
}

type app struct {
	rate float64

	mu    sync.Mutex
	count uint64 // requests seen by error-rate-subject endpoints
	fails uint64 // of which were answered with an injected 500
}

func newApp(rate float64) *app { return &app{rate: rate} }

// injectFailure decides deterministically whether this request fails: after
// n requests, floor(n*rate) of them have failed. With rate 0.25 that is
// every 4th request; with rate 1 every request; with 0 none.
func (a *app) injectFailure() bool {
	if a.rate <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	want := uint64(math.Floor(float64(a.count)*a.rate + 1e-9))
	if want > a.fails {
		a.fails++
		return true
	}
	return false
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		writeText(w, "ok")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		if a.injectFailure() {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		writeText(w, version())
	})
	mux.HandleFunc("GET /sick", func(w http.ResponseWriter, r *http.Request) {
		sick.Store(true)
		writeText(w, "sick until restarted")
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "fail", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 30000 {
			http.Error(w, "ms must be an integer in 0..30000", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			writeText(w, "slow")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /call", func(w http.ResponseWriter, r *http.Request) {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /dial", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), 2*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn.Close()
		writeText(w, "open")
	})
	// /file shows a mounted secret as the service's user sees it, so that
	// tests can check content, owner and mode. Only /run/secrets: the app
	// must not read arbitrary files for whoever calls it.
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if !strings.HasPrefix(p, "/run/secrets/") || strings.Contains(p, "..") {
			http.Error(w, "path must be under /run/secrets", http.StatusBadRequest)
			return
		}
		st, err := os.Stat(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		uid, gid := -1, -1
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"mode": fmt.Sprintf("%04o", st.Mode().Perm()), "uid": uid, "gid": gid, "euid": os.Geteuid(), "content": string(b)})
	})
	// /cgroup shows the limits the kernel applies to this container
	// (cgroup v1 or v2), as a test reads them from inside.
	mux.HandleFunc("GET /cgroup", func(w http.ResponseWriter, r *http.Request) {
		read := func(paths ...string) string {
			for _, p := range paths {
				if b, err := os.ReadFile(p); err == nil {
					return strings.TrimSpace(string(b))
				}
			}
			return ""
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"memory": read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
			"pids":   read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
		})
	})
	// /forkbomb starts up to n children that hold for a while, stops at the
	// first that the kernel refuses, kills them all and says how many ran:
	// a bounded fork bomb, to show the pids limit holds.
	mux.HandleFunc("GET /forkbomb", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 2000 {
			http.Error(w, "n must be 1..2000", http.StatusBadRequest)
			return
		}
		self, err := os.Executable()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		warmThreads(12)
		var kids []*exec.Cmd
		var refused string
		for len(kids) < n {
			c := exec.Command(self, "-hold", "30s")
			if err := c.Start(); err != nil {
				refused = err.Error()
				break
			}
			kids = append(kids, c)
		}
		for _, c := range kids {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"started": len(kids), "refused": refused})
	})
	// /fill writes a file of mb MiB into dir (a volume the test mounted),
	// to show what a volume holds is measured against its size.
	mux.HandleFunc("GET /fill", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		dir := r.URL.Query().Get("dir")
		if err != nil || mb < 1 || mb > 64 || !filepath.IsAbs(dir) {
			http.Error(w, "mb must be 1..64 and dir an absolute path", http.StatusBadRequest)
			return
		}
		f, err := os.Create(filepath.Join(dir, "fill"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i) // not zeros, so no filesystem keeps it sparse
		}
		for i := 0; i < mb; i++ {
			if _, err := f.Write(chunk); err != nil {
				http.Error(w, err.Error(), http.StatusInsufficientStorage)
				return
			}
		}
		fmt.Fprintf(w, "wrote %d MiB\n", mb)
	})
	// /applog appends one line to the instance's log file
	// (/berth/logs/app.log), as an application that logs to files does.
	mux.HandleFunc("GET /applog", func(w http.ResponseWriter, r *http.Request) {
		line := r.URL.Query().Get("line")
		if line == "" || len(line) > 1000 || strings.ContainsAny(line, "\r\n") {
			http.Error(w, "line must be one line of 1 to 1000 bytes", http.StatusBadRequest)
			return
		}
		f, err := os.OpenFile("/berth/logs/app.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line); err != nil {
			http.Error(w, err.Error(), http.StatusInsufficientStorage)
			return
		}
		fmt.Fprintln(w, "logged")
	})
	// /spam writes mb MiB of lines to stdout, to show the engine's log
	// rotation bounds what a noisy instance keeps on its host.
	mux.HandleFunc("GET /spam", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb < 1 || mb > 64 {
			http.Error(w, "mb must be 1..64", http.StatusBadRequest)
			return
		}
		line := strings.Repeat("x", 1023) + "\n"
		for i := 0; i < mb<<10; i++ {
			_, _ = os.Stdout.WriteString(line)
		}
		fmt.Fprintf(w, "wrote %d MiB\n", mb)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if a.injectFailure() {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		host, _ := os.Hostname()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"version":  version(),
			"hostname": host,
			"service":  os.Getenv("BERTH_SERVICE"),
			"instance": os.Getenv("BERTH_INSTANCE"),
		})
	})
	return mux
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s) // no trailing newline: tests compare bodies exactly
}

// warmThreads makes the Go runtime start n OS threads now, which then wait
// idle in its scheduler. Once a fork bomb's children hold every pid the
// cgroup allows, the kernel refuses new threads too, and a runtime that
// needs one then (a goroutine blocked in fork or wait) dies with "failed to
// create new OS thread" (the likely reason an instance vanished mid-bomb
// once in CI: its next connection was refused).
// With threads to spare the server keeps answering, which is what the
// limit is meant to let it do.
func warmThreads(n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A blocking syscall holds its thread, so each sleeper needs one.
			ts := syscall.Timespec{Nsec: 50_000_000}
			_ = syscall.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
}

// tinyShell reads lines and runs, for each ';'-separated command, echo
// (its arguments) or exit (with a code); anything else is "not found".
// The terminal's pty echoes what is typed; the shell prints a prompt.
func tinyShell(in io.Reader, out io.Writer) int {
	sc := bufio.NewScanner(in)
	for {
		fmt.Fprint(out, "$ ")
		if !sc.Scan() {
			return 0
		}
		for _, cmd := range strings.Split(sc.Text(), ";") {
			f := strings.Fields(cmd)
			switch {
			case len(f) == 0:
			case f[0] == "echo":
				fmt.Fprintln(out, strings.Join(f[1:], " "))
			case f[0] == "exit":
				code := 0
				if len(f) > 1 {
					code, _ = strconv.Atoi(f[1])
				}
				return code
			default:
				fmt.Fprintf(out, "sh: %s: not found\n", f[0])
			}
		}
	}
}
