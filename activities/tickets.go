package activities

import (
	"context"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/tickets"
)

// IncidentRecords is the part of the store the ticket delivery reads and marks.
type IncidentRecords interface {
	PendingIncidents(ctx context.Context, limit int) ([]berth.IncidentNotice, error)
	MarkIncidentSent(ctx context.Context, n berth.IncidentNotice) error
	MarkIncidentFailed(ctx context.Context, id uint, errMsg string) error
}

// Tickets tells the ticket system about incidents.
type Tickets struct {
	Driver  tickets.Driver
	Records IncidentRecords
	// BaseURL is berth's address as people reach it, for a ticket's link.
	BaseURL string
}

// deliveryBatch is how many incidents one read takes; a pass reads until
// nothing due is left, or deliveryRounds reads.
const (
	deliveryBatch  = 100
	deliveryRounds = 20
)

// DeliverIncidents sends every due change of an incident to the ticket
// system: an open incident opens or updates its ticket, a resolved one
// resolves it. A ticket system that fails is never an error of the pass:
// the incident keeps its change, is tried again after a backoff, and the
// failure is shown on it. Only a store that cannot be read fails the pass.
func (a *Tickets) DeliverIncidents(ctx context.Context) (*berth.DeliveryResult, error) {
	res := &berth.DeliveryResult{}
	tried := map[uint]bool{}
	for range deliveryRounds {
		due, err := a.Records.PendingIncidents(ctx, deliveryBatch)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, n := range due {
			if tried[n.ID] {
				continue // changed again during this pass: the next pass sends it
			}
			tried[n.ID] = true
			fresh++
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, n.ID)
			}
			if err := a.deliver(ctx, n); err != nil {
				res.Failed = append(res.Failed, n.TicketKey)
				if err := a.Records.MarkIncidentFailed(ctx, n.ID, err.Error()); err != nil {
					return nil, err
				}
				continue
			}
			if err := a.Records.MarkIncidentSent(ctx, n); err != nil {
				return nil, err
			}
			res.Sent++
		}
		if fresh == 0 || len(due) < deliveryBatch {
			break
		}
	}
	return res, nil
}

func (a *Tickets) deliver(ctx context.Context, n berth.IncidentNotice) error {
	if n.ResolveFirst != "" {
		if err := a.Driver.Resolve(ctx, n.ResolveFirst, tickets.Resolution{Note: "superseded: it happened again after it was resolved; see " + n.TicketKey,
			ResolvedAt: time.Now().UTC().Format(time.RFC3339)}); err != nil {
			return err
		}
	}
	if n.State == berth.IncidentResolved {
		at := time.Now()
		if n.ResolvedAt != nil {
			at = *n.ResolvedAt
		}
		return a.Driver.Resolve(ctx, n.TicketKey, tickets.Resolution{Note: n.Detail, ResolvedAt: at.UTC().Format(time.RFC3339)})
	}
	link := n.Link
	if strings.HasPrefix(link, "/") && a.BaseURL != "" {
		link = strings.TrimRight(a.BaseURL, "/") + link
	}
	labels := map[string]string{"kind": string(n.Kind), "subject": n.Subject}
	for k, v := range n.Labels {
		labels[k] = v
	}
	return a.Driver.Open(ctx, tickets.Ticket{Key: n.TicketKey, Title: n.Title, Body: n.Detail, Severity: n.Severity, Link: link,
		Labels: labels, Occurrences: n.Occurrences, OpenedAt: n.OpenedAt.UTC().Format(time.RFC3339)})
}
