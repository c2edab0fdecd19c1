package metrics

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets cover runs from a second (a restart) to hours (a grey
// release with soaks and approvals).
var durationBuckets = []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}

// Registry is one process's metrics. The zero value is not usable; a nil
// *Registry counts nothing, so code given none needs no checks.
type Registry struct {
	reg *prometheus.Registry

	runsStarted   *prometheus.CounterVec
	runsEnded     *prometheus.CounterVec
	runDuration   *prometheus.HistogramVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	sseClients    prometheus.Gauge
	lockConflicts *prometheus.CounterVec
}

// New returns a Registry for component ("server", "worker" or "dev"),
// with the Go runtime's and the process's own collectors.
func New(component string) *Registry {
	reg := prometheus.NewRegistry()
	constLabels := prometheus.Labels{"component": component}
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	r := &Registry{reg: reg}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.runsStarted = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_runs_started_total",
		Help: "Runs started, by kind.", ConstLabels: constLabels}, []string{"kind"})).(*prometheus.CounterVec)
	r.runsEnded = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_runs_ended_total",
		Help: "Runs ended, by kind and outcome (succeeded, failed, cancelled).", ConstLabels: constLabels}, []string{"kind", "outcome"})).(*prometheus.CounterVec)
	r.runDuration = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_run_duration_seconds",
		Help: "From a run's start to its end, waits included, by kind and outcome.", ConstLabels: constLabels, Buckets: durationBuckets},
		[]string{"kind", "outcome"})).(*prometheus.HistogramVec)
	r.httpRequests = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_http_requests_total",
		Help: "HTTP requests answered, by method, route pattern and status.", ConstLabels: constLabels}, []string{"method", "route", "status"})).(*prometheus.CounterVec)
	r.httpDuration = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_http_request_duration_seconds",
		Help: "Time to answer an HTTP request (an event stream counts until it ends), by method and route pattern.", ConstLabels: constLabels,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"method", "route"})).(*prometheus.HistogramVec)
	r.sseClients = f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_sse_clients",
		Help: "Event streams open now (live run pages).", ConstLabels: constLabels})).(prometheus.Gauge)
	r.lockConflicts = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_lock_conflicts_total",
		Help: "Requests refused because another run holds the lock of what they would change, by route pattern.", ConstLabels: constLabels},
		[]string{"route"})).(*prometheus.CounterVec)
	return r
}

// Handler serves the metrics in Prometheus' text format; when token is
// set, only to a scraper that sends it as its bearer token. The server and
// the worker both serve it, so the check lives here once.
func (r *Registry) Handler(token string) http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	h := promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "metrics need the metrics token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// MustRegister adds a collector of the caller's (e.g. one that reads the
// store at scrape time).
func (r *Registry) MustRegister(c prometheus.Collector) {
	if r != nil {
		r.reg.MustRegister(c)
	}
}

// RunStarted counts a run that was opened.
func (r *Registry) RunStarted(kind string) {
	if r != nil {
		r.runsStarted.WithLabelValues(kind).Inc()
	}
}

// RunEnded counts a run that ended, with how long it took.
func (r *Registry) RunEnded(kind, outcome string, took time.Duration) {
	if r != nil {
		r.runsEnded.WithLabelValues(kind, outcome).Inc()
		r.runDuration.WithLabelValues(kind, outcome).Observe(took.Seconds())
	}
}

// HTTPRequest counts an answered request. route is the pattern
// (/api/v1/runs/:id), never the path, so that ids do not make series.
func (r *Registry) HTTPRequest(method, route string, status int, took time.Duration) {
	if r != nil {
		if route == "" {
			route = "unmatched"
		}
		r.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		r.httpDuration.WithLabelValues(method, route).Observe(took.Seconds())
	}
}

// SSEClient counts an event stream opening (+1) or closing (-1).
func (r *Registry) SSEClient(delta int) {
	if r != nil {
		r.sseClients.Add(float64(delta))
	}
}

// LockConflict counts a request refused because a run holds the lock.
func (r *Registry) LockConflict(route string) {
	if r != nil {
		r.lockConflicts.WithLabelValues(route).Inc()
	}
}
