package metrics

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Temporal returns the SDK metrics handler that reports into r: the
// client's and workers' counters, gauges and timers (as histograms in
// seconds), named as the SDK names them (temporal_…), with its tags as
// labels.
func (r *Registry) Temporal() client.MetricsHandler {
	if r == nil {
		return client.MetricsNopHandler
	}
	return &sdkHandler{fam: &families{reg: r.reg, vecs: map[string]*family{}}}
}

// families holds one Prometheus vector per SDK metric name. Prometheus
// wants one label set per name; the first use of a name fixes it, and a
// later use with other tags fills the missing ones with "" and drops the
// unknown ones rather than fail.
type families struct {
	reg  *prometheus.Registry
	mu   sync.Mutex
	vecs map[string]*family
}

type family struct {
	labels []string
	vec    prometheus.Collector
}

func (f *families) get(kind, name string, tags map[string]string) (*family, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fam, ok := f.vecs[kind+" "+name]
	if !ok {
		labels := make([]string, 0, len(tags))
		for k := range tags {
			labels = append(labels, k)
		}
		sort.Strings(labels)
		fam = &family{labels: labels}
		help := "Temporal SDK metric " + name + "."
		switch kind {
		case "counter":
			fam.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		case "gauge":
			fam.vec = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		default:
			fam.vec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help,
				Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60}}, labels)
		}
		if err := f.reg.Register(fam.vec); err != nil {
			// A name the SDK uses as two kinds, or one of ours: keep it
			// out of the registry rather than panic in a worker.
			fam.vec = nil
		}
		f.vecs[kind+" "+name] = fam
	}
	values := make([]string, len(fam.labels))
	for i, l := range fam.labels {
		values[i] = tags[l]
	}
	return fam, values
}

type sdkHandler struct {
	fam  *families
	tags map[string]string
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[labelName(k)] = v
	}
	return &sdkHandler{fam: h.fam, tags: merged}
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	fam, values := h.fam.get("counter", metricName(name), h.tags)
	vec, ok := fam.vec.(*prometheus.CounterVec)
	if !ok {
		return client.MetricsNopHandler.Counter(name)
	}
	c := vec.WithLabelValues(values...)
	return counterFunc(func(d int64) { c.Add(float64(d)) })
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	fam, values := h.fam.get("gauge", metricName(name), h.tags)
	vec, ok := fam.vec.(*prometheus.GaugeVec)
	if !ok {
		return client.MetricsNopHandler.Gauge(name)
	}
	return gaugeFunc(vec.WithLabelValues(values...).Set)
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	fam, values := h.fam.get("timer", metricName(name), h.tags)
	vec, ok := fam.vec.(*prometheus.HistogramVec)
	if !ok {
		return client.MetricsNopHandler.Timer(name)
	}
	o := vec.WithLabelValues(values...)
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

// metricName and labelName keep the SDK's names inside Prometheus' grammar.
func metricName(s string) string { return sanitize(s, true) }
func labelName(s string) string  { return sanitize(s, false) }

func sanitize(s string, colon bool) string {
	var b strings.Builder
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || (i > 0 && r >= '0' && r <= '9') || (colon && r == ':')
		if !ok {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
