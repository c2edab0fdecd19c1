package activities

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/berth-dev/berth/lb"
)

// statsDriver answers Stats from a script, one reading per call (the last
// one repeats); the other methods are not used here.
type statsDriver struct {
	lb.Driver
	mu       sync.Mutex
	readings [][]lb.ServerStats
	calls    int
}

func (d *statsDriver) Stats(context.Context, string) ([]lb.ServerStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.readings[min(d.calls, len(d.readings)-1)]
	d.calls++
	return r, nil
}

func runLB(t *testing.T, d lb.Driver, fn any, in any) (bool, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &LB{Driver: d, PollInterval: time.Millisecond}
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(fn, in)
	if err != nil || !v.HasValue() {
		return false, err
	}
	var ok bool
	require.NoError(t, v.Get(&ok))
	return ok, nil
}

func TestWaitDrainedWaitsForTheNamedServersOnly(t *testing.T) {
	var a *LB
	d := &statsDriver{readings: [][]lb.ServerStats{
		{{Name: "a", CurrentSessions: 3}, {Name: "b", CurrentSessions: 9}},
		{{Name: "a", CurrentSessions: 1}, {Name: "b", CurrentSessions: 9}},
		{{Name: "a", CurrentSessions: 0}, {Name: "b", CurrentSessions: 9}},
	}}
	ok, err := runLB(t, d, a.WaitDrained, WaitDrainedInput{Backend: "web", Names: []string{"a"}, Timeout: time.Minute})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 3, d.calls)

	d = &statsDriver{readings: [][]lb.ServerStats{{{Name: "a", CurrentSessions: 2}}}}
	ok, err = runLB(t, d, a.WaitDrained, WaitDrainedInput{Backend: "web", Names: []string{"a"}, Timeout: 20 * time.Millisecond})
	require.NoError(t, err)
	require.False(t, ok, "sessions still open when the timeout passes: not drained, and no error")
}

func TestWaitUpFailsNamingWhatIsNotUp(t *testing.T) {
	var a *LB
	d := &statsDriver{readings: [][]lb.ServerStats{
		{{Name: "a", State: "down"}, {Name: "b", State: lb.StateReady}},
		{{Name: "a", State: lb.StateReady}, {Name: "b", State: lb.StateReady}},
	}}
	_, err := runLB(t, d, a.WaitUp, WaitUpInput{Backend: "web", Names: []string{"a", "b"}, Timeout: time.Minute})
	require.NoError(t, err)

	d = &statsDriver{readings: [][]lb.ServerStats{{{Name: "a", State: "down"}, {Name: "b", State: lb.StateReady}}}}
	_, err = runLB(t, d, a.WaitUp, WaitUpInput{Backend: "web", Names: []string{"a", "b"}, Timeout: 20 * time.Millisecond})
	require.ErrorContains(t, err, "does not report [a down] ready")
}
