package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/firewall/changeapi"
)

// ChangeAPI is a network team's change process (changeapi.HTTP).
type ChangeAPI interface {
	Submit(ctx context.Context, c changeapi.Change) (changeapi.Status, error)
	Status(ctx context.Context, id string) (changeapi.Status, error)
}

// Firewall opens and closes access to instances' published ports.
type Firewall struct {
	Driver firewall.Driver
	// Change, when set, is the region's change API: environments whose
	// firewall mode is "change" open through it, and every close is also
	// asked of it (it answers at once for openings it never made).
	Change ChangeAPI
	// ChangeTimeout is the longest a change may stay undecided; ChangePoll
	// how often it is asked about.
	ChangeTimeout time.Duration
	ChangePoll    time.Duration
}

// NewFirewall returns the firewall activities.
func NewFirewall(d firewall.Driver) *Firewall { return &Firewall{Driver: d} }

// Open applies openings; the driver finds a retried one by its ID.
func (a *Firewall) Open(ctx context.Context, os []firewall.Opening) error {
	for _, o := range os {
		if err := a.Driver.Open(ctx, o); err != nil {
			return fmt.Errorf("open %s: %w", o.ID, err)
		}
	}
	return nil
}

// Close removes openings; absent ones are fine.
func (a *Firewall) Close(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := a.Driver.Close(ctx, id); err != nil {
			return fmt.Errorf("close %s: %w", id, err)
		}
	}
	if a.Change != nil && len(ids) > 0 {
		st, err := a.follow(ctx, changeapi.Change{ID: changeapi.ChangeID(changeapi.ActionClose, ids), Action: changeapi.ActionClose,
			IDs: ids, Reason: "berth removes these instances"})
		if err != nil {
			return err
		}
		if st.State == changeapi.StateRejected {
			// A close must happen: the next attempt asks again.
			return fmt.Errorf("the network team rejected closing %d openings: %s", len(ids), st.Reason)
		}
	}
	return nil
}

// ChangeInput is a set of openings to ask of the change API, and why.
type ChangeInput struct {
	Openings []firewall.Opening `json:"openings"`
	Reason   string             `json:"reason"`
}

// ChangeResult is the decided change.
type ChangeResult struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// FirewallRejected is the error type of a change the network team
// rejected: the run fails and undoes what it did.
const FirewallRejected = "FirewallRejected"

// OpenByChange submits the openings as one change to the network team's
// change API and follows it, heartbeating, until it is applied (the
// result) or rejected (a non-retryable FirewallRejected error with their
// reason). A retried attempt finds its change by id.
func (a *Firewall) OpenByChange(ctx context.Context, in ChangeInput) (*ChangeResult, error) {
	if a.Change == nil {
		return nil, fail(berth.ENotImplemented, "this region's worker has no change API (-firewall-change-url)")
	}
	keys := make([]string, 0, len(in.Openings))
	for _, o := range in.Openings {
		keys = append(keys, o.ID)
	}
	id := changeapi.ChangeID(changeapi.ActionOpen, keys)
	st, err := a.follow(ctx, changeapi.Change{ID: id, Action: changeapi.ActionOpen, Openings: in.Openings, Reason: in.Reason})
	if err != nil {
		return nil, err
	}
	if st.State == changeapi.StateRejected {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("the network team rejected change %s: %s", id, st.Reason), FirewallRejected, nil)
	}
	return &ChangeResult{ID: id, Reason: st.Reason}, nil
}

// follow submits a change and asks about it until it is decided.
func (a *Firewall) follow(ctx context.Context, c changeapi.Change) (changeapi.Status, error) {
	poll, limit := a.ChangePoll, a.ChangeTimeout
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if limit <= 0 {
		limit = 24 * time.Hour
	}
	st, err := a.Change.Submit(ctx, c)
	if err != nil {
		return st, changeErr(err)
	}
	started := time.Now()
	if activity.IsActivity(ctx) {
		started = activity.GetInfo(ctx).StartedTime
	}
	for st.State == changeapi.StatePending {
		if time.Since(started) > limit {
			return st, temporal.NewNonRetryableApplicationError(fmt.Sprintf("change %s was not decided within %s", c.ID, limit), FirewallRejected, nil)
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, c.ID)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(poll):
		}
		if st, err = a.Change.Status(ctx, c.ID); err != nil {
			return st, changeErr(err)
		}
	}
	return st, nil
}

func changeErr(err error) error {
	if errors.Is(err, changeapi.ErrRejected) {
		return temporal.NewNonRetryableApplicationError(err.Error(), string(berth.EHostRefused), err)
	}
	return err
}

// FirewallRepair is what a repair changed: openings put back whose rules
// had gone, and rules closed that no opening is recorded for.
type FirewallRepair struct {
	Reopened []string `json:"reopened"`
	Closed   []string `json:"closed"`
}

// Repair makes the driver's rules what the records say: a wanted opening
// with no rule (deleted by hand, a flushed ruleset, a rebooted host) is
// opened again, and a rule no live opening accounts for (left by a run
// killed between its close and its record) is closed. A driver that keeps
// no rules (none) has nothing to repair. Both halves are idempotent.
func (a *Firewall) Repair(ctx context.Context, in FirewallRepairInput) (FirewallRepair, error) {
	out := FirewallRepair{Reopened: []string{}, Closed: []string{}}
	if _, ok := a.Driver.(firewall.None); ok {
		return out, nil
	}
	held, err := a.Driver.List(ctx)
	if err != nil {
		return out, fmt.Errorf("list the rules: %w", err)
	}
	have := map[string]bool{}
	for _, o := range held {
		have[o.ID] = true
	}
	for _, o := range in.Want {
		if have[o.ID] {
			continue
		}
		if err := a.Driver.Open(ctx, o); err != nil {
			return out, fmt.Errorf("open %s again: %w", o.ID, err)
		}
		out.Reopened = append(out.Reopened, o.ID)
	}
	keep := map[string]bool{}
	for _, id := range in.Keep {
		keep[id] = true
	}
	for _, o := range held {
		if keep[o.ID] {
			continue
		}
		if err := a.Driver.Close(ctx, o.ID); err != nil {
			return out, fmt.Errorf("close stray %s: %w", o.ID, err)
		}
		out.Closed = append(out.Closed, o.ID)
	}
	return out, nil
}
