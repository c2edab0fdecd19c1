package haproxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/activities/lb"
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
	maxWeight     = 256
	maxHealthPath = 200
	modeHTTP      = "http"
	modeTCP       = "tcp"
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
	if p == "" {
		return nil
	}
	if p[0] != '/' || len(p) > maxHealthPath {
		return invalid("health path %q must start with / and be at most %d characters", p, maxHealthPath)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._~%-?=&+", c) >= 0) {
			return invalid("health path %q may contain only [a-zA-Z0-9/._~%%?=&+-]", p)
		}
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
	out := lb.Backend{Name: b.Name, ListenAddr: ap.String(), Mode: mode, HealthPath: b.HealthPath}
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
	return out, nil
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
