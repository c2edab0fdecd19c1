package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/firewall/nftables"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/lb/haproxy"
	"github.com/berth-dev/berth/store"
)

// firewallDriver returns the region's firewall. nftables closes the port
// range at once, before any run: a port an instance publishes is then
// never reachable from outside until its opening, even on a fresh host.
func firewallDriver(ctx context.Context, cfg *Config) (firewall.Driver, error) {
	switch cfg.Firewall {
	case "nftables":
		d, err := nftables.New(nftables.Options{Table: cfg.FirewallTable, PortMin: cfg.PortMin, PortMax: cfg.PortMax, Allow: cfg.FirewallAllow})
		if err != nil {
			return nil, err
		}
		if err := d.Ensure(ctx); err != nil {
			return nil, err
		}
		return d, nil
	default:
		return firewall.None{}, nil
	}
}

// startHAProxy runs the region's HAProxy with every pool berth has recorded,
// so a restarted worker (or a crashed HAProxy) comes back with exactly
// berth's state, and watches it so a killed HAProxy is restarted.
func startHAProxy(ctx context.Context, g *errgroup.Group, gctx context.Context, cfg *Config, st *store.Store, log *slog.Logger) (lb.Driver, func(), error) {
	m, err := haproxy.NewManager(haproxy.Config{Binary: cfg.HAProxyBin, Dir: cfg.HAProxyDir, StatsAddr: cfg.HAProxyStats,
		External: cfg.HAProxyExisting})
	if err != nil {
		return nil, nil, fmt.Errorf("haproxy: %w (install it with: apt-get install haproxy, or run with -lb none)", err)
	}
	var backends []lb.Backend
	for _, region := range cfg.Regions {
		pools, err := st.Pools(ctx, region)
		if err != nil {
			return nil, nil, err
		}
		for i := range pools {
			backends = append(backends, lb.BackendOf(&pools[i]))
		}
	}
	if err := m.Load(backends); err != nil {
		return nil, nil, fmt.Errorf("haproxy: recorded pools: %w", err)
	}
	if err := m.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("haproxy: %w", err)
	}
	if cfg.HAProxyExisting != nil {
		log.Info("driving an existing haproxy", "config", cfg.HAProxyExisting.ConfigPath, "socket", cfg.HAProxyExisting.AdminSocket, "pools", len(backends))
	} else {
		log.Info("haproxy running", "dir", cfg.HAProxyDir, "pools", len(backends))
	}
	g.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				if !m.Running() && cfg.HAProxyExisting == nil {
					log.Warn("haproxy is gone; starting it with berth's recorded state")
				}
				if err := m.EnsureRunning(gctx); err != nil && gctx.Err() == nil {
					log.Error("haproxy could not be restarted", "error", err)
				}
			}
		}
	})
	return haproxy.New(m), func() { _ = m.Stop() }, nil
}
