package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
)

// LB drives a region's load balancer through its driver.
type LB struct {
	Driver lb.Driver
	// PollInterval is how often drain progress is read.
	PollInterval time.Duration
}

// NewLB returns the load-balancer activities.
func NewLB(d lb.Driver) *LB { return &LB{Driver: d, PollInterval: 100 * time.Millisecond} }

// EnsurePool makes a service's backend and frontend exist.
func (a *LB) EnsurePool(ctx context.Context, b lb.Backend) error {
	if err := a.Driver.EnsureBackend(ctx, b); err != nil {
		return fmt.Errorf("load balancer pool %s: %w", b.Name, err)
	}
	return nil
}

// ServersInput names servers of one backend.
type ServersInput struct {
	Backend string      `json:"backend"`
	Servers []lb.Server `json:"servers"`
}

// AddServers adds (or updates) servers with their weight and state; a retry
// finds the servers it already added by name.
func (a *LB) AddServers(ctx context.Context, in ServersInput) error {
	for _, s := range in.Servers {
		if err := a.Driver.AddServer(ctx, in.Backend, s); err != nil {
			return fmt.Errorf("add %s to %s: %w", s.Name, in.Backend, err)
		}
	}
	return nil
}

// SetServers applies each server's weight and state without a reload.
func (a *LB) SetServers(ctx context.Context, in ServersInput) error {
	for _, s := range in.Servers {
		if err := a.Driver.SetWeight(ctx, in.Backend, s.Name, s.Weight); err != nil {
			return fmt.Errorf("weight of %s in %s: %w", s.Name, in.Backend, err)
		}
		if err := a.Driver.SetState(ctx, in.Backend, s.Name, s.State); err != nil {
			return fmt.Errorf("state of %s in %s: %w", s.Name, in.Backend, err)
		}
	}
	return nil
}

// RemoveServersInput names servers to take out of a backend.
type RemoveServersInput struct {
	Backend string   `json:"backend"`
	Names   []string `json:"names"`
}

// RemoveServers removes servers; absent ones are fine.
func (a *LB) RemoveServers(ctx context.Context, in RemoveServersInput) error {
	for _, n := range in.Names {
		if err := a.Driver.RemoveServer(ctx, in.Backend, n); err != nil {
			return fmt.Errorf("remove %s from %s: %w", n, in.Backend, err)
		}
	}
	return nil
}

// EnsureRemovedInput names servers (and, with Pool, their backend) that
// the records no longer hold.
type EnsureRemovedInput struct {
	Backend string   `json:"backend"`
	Names   []string `json:"names"`
	Pool    bool     `json:"pool"`
}

// EnsureRemoved removes again what an unexpose removed before recording
// it: a worker killed in between restarts HAProxy from the records of that
// moment, which still held them. Where they are gone it does nothing.
func (a *LB) EnsureRemoved(ctx context.Context, in EnsureRemovedInput) error {
	if err := a.RemoveServers(ctx, RemoveServersInput{Backend: in.Backend, Names: in.Names}); err != nil {
		return err
	}
	if in.Pool {
		return a.RemovePool(ctx, in.Backend)
	}
	return nil
}

// WaitDrainedInput says which drained servers to wait for, and how long.
type WaitDrainedInput struct {
	Backend string        `json:"backend"`
	Names   []string      `json:"names"`
	Timeout time.Duration `json:"timeout"`
}

// WaitDrained waits until the servers have no sessions left, or the timeout
// passes (then the graceful stop finishes what is in flight). It reports
// whether they drained fully.
func (a *LB) WaitDrained(ctx context.Context, in WaitDrainedInput) (bool, error) {
	want := nameSet(in.Names)
	return a.poll(ctx, in.Backend, in.Timeout, func(stats []lb.ServerStats) (bool, any) {
		var busy int64
		for _, s := range stats {
			if want[s.Name] {
				busy += s.CurrentSessions
			}
		}
		return busy == 0, busy
	})
}

// poll reads a backend's stats until done says so (true) or timeout passes
// (false, nil), heartbeating what done reports as progress in between.
func (a *LB) poll(ctx context.Context, backend string, timeout time.Duration, done func([]lb.ServerStats) (bool, any)) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		stats, err := a.Driver.Stats(ctx, backend)
		if err != nil {
			return false, fmt.Errorf("stats of %s: %w", backend, err)
		}
		ok, progress := done(stats)
		if ok {
			return true, nil
		}
		activity.RecordHeartbeat(ctx, progress)
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(a.PollInterval):
		}
	}
}

func nameSet(names []string) map[string]bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// RemovePool removes a service's backend and frontend.
func (a *LB) RemovePool(ctx context.Context, backend string) error {
	return a.Driver.RemoveBackend(ctx, backend)
}

// PoolStats reads a backend's live figures.
func (a *LB) PoolStats(ctx context.Context, backend string) ([]lb.ServerStats, error) {
	return a.Driver.Stats(ctx, backend)
}

// WaitUpInput names servers that must be serving.
type WaitUpInput struct {
	Backend string        `json:"backend"`
	Names   []string      `json:"names"`
	Timeout time.Duration `json:"timeout"`
}

// WaitUp waits until the load balancer reports every named server ready
// (its health check passing), so the next batch is not drained while the
// last one is still coming up. It fails when the timeout passes.
func (a *LB) WaitUp(ctx context.Context, in WaitUpInput) error {
	want := nameSet(in.Names)
	var notUp []string
	up, err := a.poll(ctx, in.Backend, in.Timeout, func(stats []lb.ServerStats) (bool, any) {
		n := 0
		notUp = notUp[:0]
		for _, s := range stats {
			if !want[s.Name] {
				continue
			}
			if s.State == lb.StateReady {
				n++
			} else {
				notUp = append(notUp, s.Name+" "+s.State)
			}
		}
		return n == len(want), slices.Clone(notUp)
	})
	if err != nil || up {
		return err
	}
	return fail(berth.EUnhealthy, "load balancer %s does not report %v ready within %s", in.Backend, notUp, in.Timeout)
}

// SetWeights changes servers' weights without touching their states, then
// reads them back: a grey release's split is only claimed once the load
// balancer reports it.
func (a *LB) SetWeights(ctx context.Context, in ServersInput) error {
	for _, s := range in.Servers {
		if err := a.Driver.SetWeight(ctx, in.Backend, s.Name, s.Weight); err != nil {
			return fmt.Errorf("weight of %s in %s: %w", s.Name, in.Backend, err)
		}
	}
	stats, err := a.Driver.Stats(ctx, in.Backend)
	if err != nil {
		return fmt.Errorf("stats of %s: %w", in.Backend, err)
	}
	got := make(map[string]int, len(stats))
	for _, s := range stats {
		got[s.Name] = s.Weight
	}
	for _, s := range in.Servers {
		if w, ok := got[s.Name]; !ok || w != s.Weight {
			return fmt.Errorf("load balancer %s reports weight %d for %s after setting %d", in.Backend, w, s.Name, s.Weight)
		}
	}
	return nil
}

// SetRoutes replaces a backend's header and cookie routes.
func (a *LB) SetRoutes(ctx context.Context, in RoutesInput) error {
	if err := a.Driver.SetRoutes(ctx, in.Backend, in.Routes); err != nil {
		return fmt.Errorf("routes of %s: %w", in.Backend, err)
	}
	return nil
}
