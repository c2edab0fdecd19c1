package activities

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/firewall"
)

// Firewall opens and closes access to instances' published ports.
type Firewall struct {
	Driver firewall.Driver
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
	return nil
}
