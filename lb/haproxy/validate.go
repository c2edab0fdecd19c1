package haproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
)

// Error is the type of this package's sentinel errors. They are constants,
// so no caller can reassign them; match them with errors.Is.
type Error string

func (e Error) Error() string { return string(e) }

const (
	// ErrInvalid marks input refused before anything was written or sent.
	ErrInvalid Error = "haproxy: invalid input"
	// ErrNotRunning is returned by driver calls while the Manager is not
	// started (never started, or stopped on purpose).
	ErrNotRunning Error = "haproxy: not running"
	// ErrUnknownBackend is returned for a backend absent from the desired state.
	ErrUnknownBackend Error = "haproxy: unknown backend"
	// ErrUnknownServer is returned for a server absent from the desired state.
	ErrUnknownServer Error = "haproxy: unknown server"
)

const (
	maxNameLen = 100
	// maxWeight is HAProxy's own limit ("Absolute weight can only be between
	// 0 and 256 inclusive").
	maxWeight = 256
	modeHTTP  = "http"
	modeTCP   = "tcp"
	// maxRoutes bounds the use-server rules HAProxy evaluates per request
	// (routes times their servers); a grey release needs one or two.
	maxRoutes      = 8
	maxRouteHeader = 64
	maxRouteValue  = 128
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// checkName allows only characters that are inert both in the configuration
// file and on the runtime CLI, which splits on spaces and semicolons.
func checkName(kind, s string) error {
	if s == "" || len(s) > maxNameLen {
		return invalid("%s name %q must be 1 to %d characters", kind, s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return invalid("%s name %q may contain only [a-zA-Z0-9_.-]", kind, s)
		}
	}
	return nil
}

func checkBackendName(s string) error { return checkName("backend", s) }

// checkServerName also refuses the names "show stat" uses for its aggregate
// rows, which would otherwise be mistaken for a server.
func checkServerName(s string) error {
	if err := checkName("server", s); err != nil {
		return err
	}
	if s == "BACKEND" || s == "FRONTEND" {
		return invalid("server name %q is reserved by HAProxy's statistics", s)
	}
	return nil
}

func parseAddr(kind, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, invalid("%s address %q is not ip:port", kind, s)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, invalid("%s address %q: zones are not supported", kind, s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, invalid("%s address %q needs a port", kind, s)
	}
	return ap, nil
}

func parseServerAddr(s string) (netip.AddrPort, error) {
	ap, err := parseAddr("server", s)
	if err != nil {
		return ap, err
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return netip.AddrPort{}, invalid("server address %q is not a unicast address", s)
	}
	return ap, nil
}

func checkWeight(w int) error {
	if w < 0 || w > maxWeight {
		return invalid("weight %d is outside 0..%d", w, maxWeight)
	}
	return nil
}

// normState maps the empty state to ready because a new lb.Server without a
// state is meant to take traffic.
func normState(s string) (string, error) {
	switch s {
	case "":
		return lb.StateReady, nil
	case lb.StateReady, lb.StateDrain, lb.StateMaint:
		return s, nil
	}
	return "", invalid("state %q is not one of ready, drain, maint", s)
}

func normMode(s string) (string, error) {
	switch s {
	case "", modeHTTP:
		return modeHTTP, nil
	case modeTCP:
		return modeTCP, nil
	}
	return "", invalid("mode %q is not http or tcp", s)
}

// checkHealthPath keeps to characters that need no quoting in the
// configuration file ('#' would start a comment, quotes and '\' would be
// interpreted, '$' expands variables inside quotes).
func checkHealthPath(p string) error {
	if err := berth.CheckHealthPath(p); err != nil {
		return invalid("%s", err.Error())
	}
	return nil
}

// normServer validates s and returns it in canonical form (address as
// netip prints it, explicit state), so that comparisons with what HAProxy
// reports are exact.
func normServer(s lb.Server) (lb.Server, error) {
	if err := checkServerName(s.Name); err != nil {
		return lb.Server{}, err
	}
	ap, err := parseServerAddr(s.Addr)
	if err != nil {
		return lb.Server{}, fmt.Errorf("server %s: %w", s.Name, err)
	}
	if err := checkWeight(s.Weight); err != nil {
		return lb.Server{}, fmt.Errorf("server %s: %w", s.Name, err)
	}
	st, err := normState(s.State)
	if err != nil {
		return lb.Server{}, fmt.Errorf("server %s: %w", s.Name, err)
	}
	return lb.Server{Name: s.Name, Addr: ap.String(), Weight: s.Weight, State: st}, nil
}

// normBackend validates b and returns a deep copy in canonical form, so the
// desired state never aliases a caller's slice.
func normBackend(b lb.Backend) (lb.Backend, error) {
	if err := checkBackendName(b.Name); err != nil {
		return lb.Backend{}, err
	}
	ap, err := parseAddr("listen", b.ListenAddr)
	if err != nil {
		return lb.Backend{}, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	mode, err := normMode(b.Mode)
	if err != nil {
		return lb.Backend{}, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	if err := checkHealthPath(b.HealthPath); err != nil {
		return lb.Backend{}, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	routes, err := normRoutes(b.Routes)
	if err != nil {
		return lb.Backend{}, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	out := lb.Backend{Name: b.Name, ListenAddr: ap.String(), Mode: mode, HealthPath: b.HealthPath, Routes: routes}
	seen := make(map[string]bool, len(b.Servers))
	for _, s := range b.Servers {
		ns, err := normServer(s)
		if err != nil {
			return lb.Backend{}, fmt.Errorf("backend %s: %w", b.Name, err)
		}
		if seen[ns.Name] {
			return lb.Backend{}, invalid("backend %s: server %s listed twice", b.Name, ns.Name)
		}
		seen[ns.Name] = true
		out.Servers = append(out.Servers, ns)
	}
	if err := checkRouteTargets(out); err != nil {
		return lb.Backend{}, err
	}
	return out, nil
}

// onlyChars reports whether every byte of s is alphanumeric ASCII or in
// extra.
func onlyChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// normRoutes checks routes on their own (checkRouteTargets checks them
// against their backend) and returns a deep copy, nil when there are none
// so that "no routes" has one form to compare. Header and cookie names end
// up inside a sample fetch's parentheses and the value is a word of the
// configuration file, so all three are restricted to characters that are
// inert there: no space, newline, brace, parenthesis, comma, quote or '#'.
func normRoutes(routes []lb.Route) ([]lb.Route, error) {
	if len(routes) == 0 {
		return nil, nil
	}
	if len(routes) > maxRoutes {
		return nil, invalid("%d routes, at most %d are allowed", len(routes), maxRoutes)
	}
	out := make([]lb.Route, 0, len(routes))
	seen := make(map[string]bool, len(routes))
	for i, r := range routes {
		n := i + 1
		var key string
		switch {
		case r.Header != "" && r.Cookie != "":
			return nil, invalid("route %d sets both header %q and cookie %q; set exactly one", n, r.Header, r.Cookie)
		case r.Header != "":
			if len(r.Header) > maxRouteHeader || !onlyChars(r.Header, "-") {
				return nil, invalid("route %d: header name %q must be 1 to %d of [A-Za-z0-9-]", n, r.Header, maxRouteHeader)
			}
			// Header names are case-insensitive, cookie names are not.
			key = "header " + strings.ToLower(r.Header)
		case r.Cookie != "":
			if len(r.Cookie) > maxRouteHeader || !onlyChars(r.Cookie, "_.-") {
				return nil, invalid("route %d: cookie name %q must be 1 to %d of [A-Za-z0-9_.-]", n, r.Cookie, maxRouteHeader)
			}
			key = "cookie " + r.Cookie
		default:
			return nil, invalid("route %d sets neither a header nor a cookie; set exactly one", n)
		}
		if r.Value == "" || len(r.Value) > maxRouteValue || !onlyChars(r.Value, "_.:-") {
			return nil, invalid("route %d: value %q must be 1 to %d of [A-Za-z0-9_.:-]", n, r.Value, maxRouteValue)
		}
		key += "=" + r.Value
		if seen[key] {
			return nil, invalid("route %d repeats the %s of an earlier route", n, key)
		}
		seen[key] = true
		if len(r.Servers) == 0 {
			return nil, invalid("route %d (%s) names no server", n, key)
		}
		servers := make([]string, 0, len(r.Servers))
		for _, s := range r.Servers {
			if err := checkServerName(s); err != nil {
				return nil, fmt.Errorf("route %d: %w", n, err)
			}
			if slices.Contains(servers, s) {
				return nil, invalid("route %d names server %s twice", n, s)
			}
			servers = append(servers, s)
		}
		out = append(out, lb.Route{Header: r.Header, Cookie: r.Cookie, Value: r.Value, Servers: servers})
	}
	return out, nil
}

// checkRouteTargets checks already normalised routes against their
// backend. A route naming a server the backend lacks would make HAProxy
// refuse the whole configuration, every other backend's changes with it.
func checkRouteTargets(b lb.Backend) error {
	if len(b.Routes) == 0 {
		return nil
	}
	if b.Mode != modeHTTP {
		return invalid("backend %s: routes need mode http; a %s backend sees no headers or cookies", b.Name, b.Mode)
	}
	for i, r := range b.Routes {
		for _, s := range r.Servers {
			if serverIndex(b, s) < 0 {
				return fmt.Errorf("%w: backend %s: route %d names %s, which is not a server of the backend (%w)",
					ErrInvalid, b.Name, i+1, s, ErrUnknownServer)
			}
		}
	}
	return nil
}

// routesEqual compares normalised routes, order included: rules are
// evaluated in order, so a reordering is a change.
func routesEqual(a, b []lb.Route) bool {
	return slices.EqualFunc(a, b, func(x, y lb.Route) bool {
		return x.Header == y.Header && x.Cookie == y.Cookie && x.Value == y.Value && slices.Equal(x.Servers, y.Servers)
	})
}

// checkListeners refuses two frontends on one address: HAProxy binds with
// SO_REUSEPORT, so both would start and silently share the traffic.
func checkListeners(backends map[string]lb.Backend, statsAddr string) error {
	owner := map[string]string{}
	if statsAddr != "" {
		owner[statsAddr] = "the stats page"
	}
	for _, name := range sortedNames(backends) {
		addr := backends[name].ListenAddr
		if o, ok := owner[addr]; ok {
			return invalid("backend %s listens on %s, already used by %s", name, addr, o)
		}
		owner[addr] = "backend " + name
	}
	return nil
}

// splitHostPort is lenient about how HAProxy prints IPv6 addresses.
func splitHostPort(s string) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, true
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(s[:i])
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(p)), true
}
