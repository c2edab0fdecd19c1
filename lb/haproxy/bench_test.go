package haproxy

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/lb"
)

// BenchmarkSetWeight measures one SetWeight end to end: validation, one
// runtime-API round trip on a fresh unix connection, and the rewrite of the
// configuration file. Progressive rollouts call it in loops; the budget is
// 50 ms per call.
func BenchmarkSetWeight(b *testing.B) {
	a := startBackend(b, "a")
	h := newHarness(b, lb.Backend{Name: "web", ListenAddr: freeAddr(b), Servers: []lb.Server{a.server(1)}})
	i := 0
	for b.Loop() {
		i++
		require.NoError(b, h.d.SetWeight(h.ctx, "web", "a", 1+i%100))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}
