package lb

import (
	"encoding/json"
	"net"
	"strconv"

	"github.com/berth-dev/berth"
)

// BackendOf is the load-balancer view of a pool record.
func BackendOf(p *berth.LBPool) Backend {
	b := Backend{Name: p.Backend, ListenAddr: net.JoinHostPort(p.ListenIP, strconv.Itoa(p.ListenPort)), Mode: p.Mode,
		HealthPath: p.HealthPath, Servers: []Server{}}
	for _, s := range p.Servers {
		b.Servers = append(b.Servers, Server{Name: s.InstanceName, Addr: s.Addr, Weight: s.Weight, State: s.State})
	}
	if p.Routes != "" {
		// Routes were validated by the driver before they were recorded; a
		// record that no longer decodes is dropped rather than blocking
		// every other pool of the load balancer.
		_ = json.Unmarshal([]byte(p.Routes), &b.Routes)
	}
	return b
}
