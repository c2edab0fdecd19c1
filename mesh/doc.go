// Package mesh carries an application's traffic between its hosts, so that
// a service on one host reaches a service on another by name, at the port
// the compose file uses.
//
// On every host of an application a gateway container takes tunnel
// connections on a published port; for every service that has no instance
// on a host, a forwarder container answers to the service's name (and
// aliases) on the application's networks there and carries each connection
// to a gateway on a host that runs the service. Between hosts every
// connection is TLS 1.3, both ends authenticated with a key derived per
// application from berth's payload key, so another application's forwarder
// (or anything else that reaches the port) cannot open a tunnel. The gateway
// only dials the services and ports its configuration lists.
//
// Both roles are "berth relay", run from an image made of berth's own
// (static) binary. This package holds the protocol and the relay; the
// activities decide where relays run. It must not import the store, the
// server or Temporal.
package mesh
