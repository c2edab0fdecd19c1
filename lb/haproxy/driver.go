package haproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/berth-dev/berth/lb"
)

// removeGrace is how long RemoveServer lets connections on a server in
// maintenance finish before cutting them ("shutdown sessions server");
// cutGrace is how long it then waits for HAProxy to release the server.
const (
	removeGrace = 10 * time.Second
	cutGrace    = 5 * time.Second
)

// Driver implements lb.Driver on a Manager. Every call validates its input
// first, then changes the running HAProxy, and records the change in the
// Manager's desired state only once HAProxy accepted it.
type Driver struct {
	m *Manager
}

// New returns a driver for m. m must be started (Start or EnsureRunning)
// before calls succeed; until then they return ErrNotRunning.
func New(m *Manager) *Driver { return &Driver{m: m} }

// Load replaces the desired state (see Manager.Load).
func (d *Driver) Load(backends []lb.Backend) error { return d.m.Load(backends) }

// EnsureBackend reloads HAProxy when the backend is new or its listener,
// mode, health check or routes changed (a frontend cannot be added at
// runtime, and routes are rules of the configuration file); otherwise it
// reconciles the servers through the runtime API alone.
func (d *Driver) EnsureBackend(ctx context.Context, b lb.Backend) error {
	nb, err := normBackend(b)
	if err != nil {
		return err
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	next := maps.Clone(m.desired)
	next[nb.Name] = nb
	if err := checkListeners(next, m.cfg.StatsAddr); err != nil {
		return err
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	old, exists := m.desired[nb.Name]
	if !exists || old.ListenAddr != nb.ListenAddr || old.Mode != nb.Mode || old.HealthPath != nb.HealthPath ||
		!routesEqual(old.Routes, nb.Routes) {
		return m.replaceAndReloadLocked(ctx, next)
	}

	rows, err := m.serverRows(ctx, nb.Name)
	if err != nil {
		return err
	}
	for _, s := range nb.Servers {
		var cur *statRow
		if r, ok := rows[s.Name]; ok {
			cur = &r
		}
		if err := m.applyServer(ctx, nb, s, cur); err != nil {
			return err
		}
	}
	keep := make(map[string]bool, len(nb.Servers))
	for _, s := range nb.Servers {
		keep[s.Name] = true
	}
	for name := range rows {
		if !keep[name] {
			if err := m.removeServerLocked(ctx, nb.Name, name); err != nil {
				return err
			}
		}
	}
	m.desired = next
	return m.writeConfig(ctx, false)
}

// RemoveBackend drops the backend and its frontend with a reload.
func (d *Driver) RemoveBackend(ctx context.Context, name string) error {
	if err := checkBackendName(name); err != nil {
		return err
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.desired[name]; !ok {
		return nil
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	next := maps.Clone(m.desired)
	delete(next, name)
	return m.replaceAndReloadLocked(ctx, next)
}

// replaceAndReloadLocked makes next the desired state and loads it. If
// HAProxy did not load it, the previous desired state comes back (and, if
// the process is gone, is started again) so one bad backend cannot keep
// every other one down.
func (m *Manager) replaceAndReloadLocked(ctx context.Context, next map[string]lb.Backend) error {
	prev := m.desired
	m.desired = next
	loaded, err := m.reloadLocked(ctx)
	if err == nil || loaded {
		return err
	}
	m.desired = prev
	if m.proc == nil || m.proc.exited() {
		if serr := m.startLocked(ctx); serr != nil {
			return errors.Join(err, fmt.Errorf("haproxy: restarting with the previous state: %w", serr))
		}
		return err
	}
	if werr := m.writeConfig(ctx, false); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// AddServer adds the server at runtime or, if it exists, updates its
// address, weight and state.
func (d *Driver) AddServer(ctx context.Context, backend string, s lb.Server) error {
	if err := checkBackendName(backend); err != nil {
		return err
	}
	ns, err := normServer(s)
	if err != nil {
		return err
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.desired[backend]
	if !ok {
		return fmt.Errorf("%w: %s (EnsureBackend creates it)", ErrUnknownBackend, backend)
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	rows, err := m.serverRows(ctx, backend)
	if err != nil {
		return err
	}
	var cur *statRow
	if r, ok := rows[ns.Name]; ok {
		cur = &r
	}
	if err := m.applyServer(ctx, b, ns, cur); err != nil {
		return err
	}
	m.desired[backend] = withServer(b, ns)
	return m.writeConfig(ctx, false)
}

// applyServer makes one server match s. cur is what HAProxy has now, nil if
// it has no such server.
func (m *Manager) applyServer(ctx context.Context, b lb.Backend, s lb.Server, cur *statRow) error {
	be := backendName(b.Name)
	ref := be + "/" + s.Name
	if cur == nil {
		if err := m.expect(ctx, "add server "+ref+" "+serverArgs(b, s, s.Weight), replyAdded); err != nil {
			return err
		}
		// A dynamic server starts in maintenance with its health check
		// disabled, whatever its keywords say.
		if b.HealthPath != "" {
			if err := m.expect(ctx, "enable health "+ref, replyEmpty); err != nil {
				return err
			}
		}
		return m.setServer(ctx, be, s)
	}
	if ap, ok := splitHostPort(cur.Addr); !ok || ap.String() != s.Addr {
		want := netip.MustParseAddrPort(s.Addr) // canonical since normServer
		cmd := fmt.Sprintf("set server %s addr %s port %d", ref, want.Addr(), want.Port())
		if err := m.expect(ctx, cmd, replyAddrSet); err != nil {
			return err
		}
	}
	return m.setServer(ctx, be, s)
}

// RemoveServer takes the server out of rotation and deletes it. A server
// that routes name is also dropped from them, and a route left without
// servers goes: the caller asked for the server to go, and a route cannot
// outlive its target. HAProxy refuses "del server" for a server a
// "use-server" rule names, so that removal is a reload with the server and
// its rules gone; the old worker finishes the requests it has.
func (d *Driver) RemoveServer(ctx context.Context, backend, server string) error {
	if err := checkBackendName(backend); err != nil {
		return err
	}
	if err := checkServerName(server); err != nil {
		return err
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.desired[backend]
	if !ok {
		return nil // no backend, so no server: HAProxy's config comes from the desired state
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	nb := withoutServer(b, server)
	if !routesEqual(b.Routes, nb.Routes) {
		next := maps.Clone(m.desired)
		next[backend] = nb
		return m.replaceAndReloadLocked(ctx, next)
	}
	if err := m.removeServerLocked(ctx, backend, server); err != nil {
		return err
	}
	m.desired[backend] = nb
	return m.writeConfig(ctx, false)
}

// removeServerLocked puts the server in maintenance, which ends new traffic
// but lets running requests finish, and retries "del server" until HAProxy
// agrees: 2.6 refuses while connections remain. Only after removeGrace are
// the remaining sessions cut.
func (m *Manager) removeServerLocked(ctx context.Context, backend, server string) error {
	ref := backendName(backend) + "/" + server
	out, err := m.runtime(ctx, "set server "+ref+" state maint")
	if err != nil {
		return err
	}
	if replyNoSuchServer(out) {
		return nil
	}
	if !replyEmpty(out) {
		return &CommandError{Command: "set server " + ref + " state maint", Reply: out}
	}
	cutAt := time.Now().Add(removeGrace)
	cut := false
	return poll(ctx, removeGrace+cutGrace, func(ctx context.Context) error {
		cmd := "del server " + ref
		out, err := m.runtime(ctx, cmd)
		switch {
		case err != nil:
			return err
		case replyDeleted(out), replyNoSuchServer(out):
			return nil
		case !replyInUse(out):
			return permanent(&CommandError{Command: cmd, Reply: out})
		case !cut && time.Now().After(cutAt):
			cut = true
			if err := m.expect(ctx, "shutdown sessions server "+ref, replyEmpty); err != nil {
				return permanent(err)
			}
		}
		return &CommandError{Command: cmd, Reply: out}
	})
}

// SetWeight changes one server's weight at runtime.
func (d *Driver) SetWeight(ctx context.Context, backend, server string, weight int) error {
	if err := checkWeight(weight); err != nil {
		return err
	}
	return d.m.updateServer(ctx, backend, server, "weight "+strconv.Itoa(weight), func(s *lb.Server) { s.Weight = weight })
}

// SetState changes one server's state (ready, drain, maint) at runtime.
func (d *Driver) SetState(ctx context.Context, backend, server, state string) error {
	if state == "" {
		return invalid("state is required")
	}
	st, err := normState(state)
	if err != nil {
		return err
	}
	return d.m.updateServer(ctx, backend, server, "state "+st, func(s *lb.Server) { s.State = st })
}

// updateServer sends "set server <ref> <setting>" and, once HAProxy took
// it, applies change to the desired state. Only the one setting is sent:
// SetWeight is on the hot path of progressive rollouts.
func (m *Manager) updateServer(ctx context.Context, backend, server, setting string, change func(*lb.Server)) error {
	if err := checkBackendName(backend); err != nil {
		return err
	}
	if err := checkServerName(server); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.desired[backend]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownBackend, backend)
	}
	i := serverIndex(b, server)
	if i < 0 {
		return fmt.Errorf("%w: %s/%s", ErrUnknownServer, backend, server)
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	cmd := "set server " + backendName(backend) + "/" + server + " " + setting
	if err := m.expect(ctx, cmd, replyEmpty); err != nil {
		return err
	}
	s := b.Servers[i]
	change(&s)
	m.desired[backend] = withServer(b, s)
	return m.writeConfig(ctx, false)
}

// SetRoutes replaces the backend's routes with a reload, since routes are
// rules of the configuration file; unchanged routes return at once without
// one. Every server a route names must already be a server of the backend.
// If HAProxy does not load the new routes, the previous ones stay.
func (d *Driver) SetRoutes(ctx context.Context, backend string, routes []lb.Route) error {
	if err := checkBackendName(backend); err != nil {
		return err
	}
	nr, err := normRoutes(routes)
	if err != nil {
		return fmt.Errorf("backend %s: %w", backend, err)
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.desired[backend]
	if !ok {
		return fmt.Errorf("%w: %s (EnsureBackend creates it)", ErrUnknownBackend, backend)
	}
	if routesEqual(b.Routes, nr) {
		return nil
	}
	b.Routes = nr
	if err := checkRouteTargets(b); err != nil {
		return err
	}
	if err := m.readyLocked(ctx); err != nil {
		return err
	}
	next := maps.Clone(m.desired)
	next[backend] = b
	return m.replaceAndReloadLocked(ctx, next)
}

// Stats reads every server of the backend from "show stat".
func (d *Driver) Stats(ctx context.Context, backend string) ([]lb.ServerStats, error) {
	if err := checkBackendName(backend); err != nil {
		return nil, err
	}
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.desired[backend]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownBackend, backend)
	}
	if err := m.readyLocked(ctx); err != nil {
		return nil, err
	}
	rows, err := m.serverRows(ctx, backend)
	if err != nil {
		return nil, err
	}
	// Desired order first, so callers see a stable order; anything HAProxy
	// has beyond that (it should not) follows in HAProxy's order.
	out := make([]lb.ServerStats, 0, len(rows))
	for _, s := range b.Servers {
		if r, ok := rows[s.Name]; ok {
			out = append(out, r.stats())
			delete(rows, s.Name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		out = append(out, rows[name].stats())
	}
	return out, nil
}

func serverIndex(b lb.Backend, name string) int {
	for i, s := range b.Servers {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// withServer and withoutServer return modified copies: the desired state
// never changes a slice another snapshot may share.
func withServer(b lb.Backend, s lb.Server) lb.Backend {
	servers := append([]lb.Server(nil), b.Servers...)
	if i := serverIndex(b, s.Name); i >= 0 {
		servers[i] = s
	} else {
		servers = append(servers, s)
	}
	b.Servers = servers
	return b
}

// withoutServer also drops the server from the routes, and the routes it
// leaves without servers; routes it does not touch keep their slices.
func withoutServer(b lb.Backend, name string) lb.Backend {
	servers := make([]lb.Server, 0, len(b.Servers))
	for _, s := range b.Servers {
		if s.Name != name {
			servers = append(servers, s)
		}
	}
	b.Servers = servers
	var routes []lb.Route
	for _, r := range b.Routes {
		if slices.Contains(r.Servers, name) {
			r.Servers = slices.DeleteFunc(slices.Clone(r.Servers), func(s string) bool { return s == name })
		}
		if len(r.Servers) > 0 {
			routes = append(routes, r)
		}
	}
	b.Routes = routes
	return b
}
