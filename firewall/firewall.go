package firewall

import "context"

// Opening allows traffic to one published port of one instance.
type Opening struct {
	ID       string `json:"id"`       // derived from instance and port, e.g. "acme-dev-shop-web-3/8080-tcp"; at most 120 bytes
	Protocol string `json:"protocol"` // tcp or udp
	DestIP   string `json:"destIP"`   // the host IP the port is published on
	DestPort int    `json:"destPort"`
	Source   string `json:"source,omitempty"` // CIDR allowed in; empty means any
}

// Driver applies openings.
type Driver interface {
	Open(ctx context.Context, o Opening) error
	Close(ctx context.Context, id string) error
	List(ctx context.Context) ([]Opening, error)
}

// None applies nothing: openings are only recorded by berth and shown, for
// sites where the network team opens ports by other means.
type None struct{}

// Open does nothing.
func (None) Open(context.Context, Opening) error { return nil }

// Close does nothing.
func (None) Close(context.Context, string) error { return nil }

// List returns nothing: None keeps no rules.
func (None) List(context.Context) ([]Opening, error) { return nil, nil }
