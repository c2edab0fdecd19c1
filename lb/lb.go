package lb

import "context"

// Server states.
const (
	StateReady = "ready" // takes new traffic
	StateDrain = "drain" // keeps existing sessions, gets no new ones
	StateMaint = "maint" // out of rotation
)

// Server is one instance behind a backend. Name is derived from the instance
// name, so a retry finds its own server.
type Server struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"` // ip:port
	Weight int    `json:"weight"`
	State  string `json:"state"`
}

// Backend is one service's pool with its frontend listener.
type Backend struct {
	Name       string   `json:"name"`       // e.g. "<tenant>-<env>-<app>-<service>", [a-z0-9_-]
	ListenAddr string   `json:"listenAddr"` // ip:port of the frontend clients use
	Mode       string   `json:"mode"`       // "http" or "tcp"
	HealthPath string   `json:"healthPath,omitempty"`
	Servers    []Server `json:"servers"`
	// Routes send matching requests to named servers whatever their weight
	// (a grey release's testers reach the canary at weight 0).
	Routes []Route `json:"routes,omitempty"`
}

// Route sends a request whose header (or cookie) Header/Cookie equals Value
// to one of Servers, whatever the weights. Exactly one of Header and Cookie
// is set. Servers must be servers of the backend; a request matching a route
// whose servers are all down is balanced as usual.
type Route struct {
	Header  string   `json:"header,omitempty"`
	Cookie  string   `json:"cookie,omitempty"`
	Value   string   `json:"value"`
	Servers []string `json:"servers"`
}

// ServerStats is what the load balancer reports for one server.
type ServerStats struct {
	Name            string `json:"name"`
	State           string `json:"state"` // ready, drain, maint, down
	Weight          int    `json:"weight"`
	CurrentSessions int64  `json:"currentSessions"`
	TotalSessions   int64  `json:"totalSessions"`
	// Requests counts HTTP responses of every class (hrsp_1xx..other).
	Requests      int64 `json:"requests"`
	Responses2xx  int64 `json:"responses2xx"`
	Responses4xx  int64 `json:"responses4xx"`
	Responses5xx  int64 `json:"responses5xx"`
	AvgResponseMs int64 `json:"avgResponseMs"`
}

// Driver changes a load balancer.
type Driver interface {
	// EnsureBackend makes the backend and its frontend exist with exactly
	// these servers, weights and states (a reload where the LB needs one).
	EnsureBackend(ctx context.Context, b Backend) error
	// RemoveBackend removes a backend and its frontend; absent is fine.
	RemoveBackend(ctx context.Context, name string) error
	// AddServer adds or updates one server without a reload.
	AddServer(ctx context.Context, backend string, s Server) error
	// RemoveServer removes one server; absent is fine.
	RemoveServer(ctx context.Context, backend, server string) error
	// SetWeight and SetState change one server without a reload.
	SetWeight(ctx context.Context, backend, server string, weight int) error
	SetState(ctx context.Context, backend, server, state string) error
	// SetRoutes replaces a backend's routes (a reload where the LB needs
	// one); nil removes them. Unchanged routes change nothing.
	SetRoutes(ctx context.Context, backend string, routes []Route) error
	// Stats reads every server of a backend.
	Stats(ctx context.Context, backend string) ([]ServerStats, error)
}
