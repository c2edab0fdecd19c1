// Package haproxy is berth's real load-balancer driver: it runs one local
// HAProxy (2.6 or later) in master-worker mode and changes it through the
// runtime API, reloading only when a listener has to appear, move or go, or
// when routes change.
//
// Two types split the work. Manager owns the process (start, stop, hitless
// reload, restart after a crash) and the desired state: every backend with
// its servers, weights, states and routes, kept in memory so that any start
// or reload can reproduce it exactly. Driver implements lb.Driver on top of a
// Manager: it changes the running HAProxy first and records the change in
// the desired state only once HAProxy accepted it, so a failed call leaves
// nothing half-remembered and a retry starts from the truth.
//
// Why the desired state must be re-applied after every reload: HAProxy
// rebuilds all servers from the configuration file on reload and forgets
// whatever the runtime API changed (a drained server comes back ready, the
// "GitLab incident"). The rendered configuration therefore already keeps
// drained servers at weight 0 and servers in maintenance "disabled", so the
// new worker never sends them new traffic, and Manager then sets every
// server's real weight and state through the runtime API and reads them back
// from "show stat" before a reload counts as done.
//
// Routes (lb.Route) serve grey releases: a request carrying a given header
// or cookie value goes to named servers whatever their weight, so testers
// reach a canary at weight 0. They are rendered as "use-server" rules, which
// exist only in the configuration file, so changing them reloads; a server
// that routes name is removed by a reload too, because HAProxy refuses to
// delete it at runtime (see renderConfig and RemoveServer).
//
// Every name and address is validated before it reaches the configuration
// file or a runtime command: both are line- and word-based, so a space, a
// newline or a semicolon in a name would be an injection.
//
// The package is Linux-only in practice: process identity is read from /proc
// and HAProxy's sockets are unix sockets in Config.Dir.
package haproxy
