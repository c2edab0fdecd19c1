package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/artifacts"
	"github.com/berth-dev/berth/cmdb"
	"github.com/berth-dev/berth/codec"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/firewall/changeapi"
	"github.com/berth-dev/berth/logship"
	"github.com/berth-dev/berth/mesh"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/tickets"
	"github.com/berth-dev/berth/worker"
	"github.com/berth-dev/berth/workflows"
)

const usage = `usage: berth <command> [flags]

commands:
  dev      everything on one machine: API + UI + central and "local" region worker, SQLite state
  server   the API and UI
  worker   Temporal workers (-regions a,b for host activities; central unless -central=false)
  migrate  create or update the database schema
  relay    a mesh relay between hosts (run by berth itself, in a container)
  empty-dir  empty an instance's package folder before a file release (run by berth itself, in a container)

Run "berth <command> -h" for its flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev", "server", "worker", "migrate":
		err = run(ctx, log, cmd, args)
	case "relay":
		err = runRelay(ctx, log)
	case "empty-dir":
		err = emptyDir(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("berth stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cmd string, args []string) error {
	central := true
	if cmd == "worker" {
		// -central is a worker-only flag; peel it off before the shared ones.
		rest := args[:0:0]
		for _, a := range args {
			switch a {
			case "-central=false", "--central=false":
				central = false
			case "-central", "--central", "-central=true", "--central=true":
			default:
				rest = append(rest, a)
			}
		}
		args = rest
	}
	cfg, err := loadConfig(cmd, args)
	if err != nil {
		return err
	}
	if cfg.LogShip != "" {
		// berth's own lines go to the region's collector too, tagged with
		// the process; stderr keeps them whatever the collector does.
		w := logship.NewWriter(ctx, cfg.LogShip, logship.Fields{Component: cmd})
		log = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, w), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.DBDriver == "sqlite" {
		if err := privateFiles(cfg.DataDir, cfg.DBDSN); err != nil {
			return err
		}
	}
	st, err := store.Open(cfg.DBDriver, cfg.DBDSN)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	if cmd == "migrate" {
		log.Info("schema is up to date", "driver", cfg.DBDriver)
		return nil
	}
	payloads, err := payloadCodec(cfg, log)
	if err != nil {
		return err
	}
	reg := metrics.New(cmd)
	tc, err := dialTemporal(ctx, cfg, payloads, reg, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	if cmd == "dev" {
		if cfg.Token == "" {
			tok, fresh, err := devToken(cfg.DataDir)
			if err != nil {
				return err
			}
			cfg.Token = tok
			if fresh {
				fmt.Printf("berth API token (shown once; kept in %s/api-token): %s\n", cfg.DataDir, tok)
			}
		}
		cfg.Regions = []string{"local"}
	}
	packages, err := artifacts.New(filepath.Join(cfg.DataDir, "artifacts"))
	if err != nil {
		return fmt.Errorf("artifact store: %w", err)
	}
	// Compose files are read the same way by the API and by a drain's moves.
	opts := compose.DefaultOptions()
	opts.AllowedBindRoots = cfg.BindRoots
	lbs := berth.LBSettings{Enabled: cfg.LB != "none", ListenIP: cfg.LBIP, PortMin: cfg.LBPortMin, PortMax: cfg.LBPortMax,
		Weight: cfg.LBWeight, Firewall: cfg.Firewall}
	g, gctx := errgroup.WithContext(ctx)
	if cmd == "dev" || cmd == "worker" {
		engines := engine.NewEnginePool()
		defer engines.Close()
		wcfg := worker.Config{Central: cmd == "dev" || central, Regions: cfg.Regions,
			Store: activities.NewStore(st, st, st), Docker: activities.NewDocker(engines, cfg.Registry)}
		wcfg.Store.Metrics = reg
		if cmd == "worker" && cfg.MetricsListen != "" {
			// A worker has no API listener; the server and dev serve
			// /metrics on theirs.
			ms := &http.Server{Addr: cfg.MetricsListen, Handler: metricsOnly(reg, cfg.MetricsToken), ReadHeaderTimeout: 10 * time.Second}
			g.Go(func() error {
				log.Info("berth worker metrics listening", "url", "http://"+cfg.MetricsListen+"/metrics")
				if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("metrics listener: %w", err)
				}
				return nil
			})
			g.Go(func() error {
				<-gctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return ms.Shutdown(sctx)
			})
		}
		wcfg.Docker.Packages, wcfg.Docker.ExecAllow = packages, cfg.ExecAllow
		wcfg.Docker.Mirror = cfg.RegistryMirror
		user, pass, _ := strings.Cut(cfg.RegistryAuth, ":")
		if cfg.RegistryAuth != "" {
			wcfg.Docker.RegistryAuth = activities.RegistryAuth(user, pass, cfg.Registry)
		}
		if cfg.Registry != "" {
			wcfg.Catalog = &activities.Catalog{Registry: registry.New(cfg.Registry, user, pass)}
		}
		wcfg.Docker.Mesh = mesh.Keys{Master: payloads.Derived()}
		wcfg.Docker.TerminalKey = payloads.Derived()
		wcfg.Docker.Secrets = secretSource{st: st, keys: payloads}
		if cfg.LogArchive != "" {
			wcfg.LogArchive = &activities.LogArchive{Root: cfg.LogArchive}
			g.Go(func() error { pruneLogs(gctx, log, cfg.LogArchive, cfg.LogRetention); return nil })
		}
		if wcfg.Central {
			var d cmdb.Driver = cmdb.None{}
			if cfg.CMDB == "http" {
				d = cmdb.NewHTTP(cfg.CMDBURL, cfg.CMDBToken)
				if cfg.CMDBResyncEvery > 0 {
					if err := worker.EnsureCMDBResyncSchedule(ctx, tc, cfg.CMDBResyncEvery); err != nil {
						return err
					}
				}
			}
			wcfg.CMDB = activities.NewCMDB(d, st)
			if cfg.Tickets == "http" {
				wcfg.Tickets = &activities.Tickets{Driver: tickets.NewHTTP(cfg.TicketsURL, cfg.TicketsToken), Records: st, BaseURL: cfg.linkBase()}
				if err := worker.EnsureTicketSchedule(ctx, tc, cfg.TicketsEvery); err != nil {
					return err
				}
			}
			wcfg.Reconcile = &activities.Reconcile{Records: st, Workflows: worker.TemporalStates{Client: tc}}
			if cfg.ReconcileEvery > 0 {
				if err := worker.EnsureReconcileSchedule(ctx, tc, cfg.ReconcileEvery, cfg.ReconcileGrace); err != nil {
					return err
				}
			}
			moves := moveRecords{Store: st, compose: opts, lb: lbs}
			wcfg.Heal = &activities.Heal{Records: moves}
			wcfg.Drain = &activities.Drain{Records: moves}
			if cfg.DiskEvery > 0 {
				if err := worker.EnsureDiskSchedule(ctx, tc, cfg.DiskEvery); err != nil {
					return err
				}
			}
			if cfg.HealEvery > 0 {
				if err := worker.EnsureHealSchedule(ctx, tc, cfg.HealEvery, workflows.HealPassInput{
					HealthTimeout: cfg.HealthTimeout, PortMin: cfg.PortMin, PortMax: cfg.PortMax, DrainTimeout: cfg.DrainTimeout,
					HostDownAfter: cfg.HostDownAfter}); err != nil {
					return err
				}
			}
		}
		if len(cfg.Regions) > 0 {
			fw, err := firewallDriver(ctx, cfg)
			if err != nil {
				return err
			}
			wcfg.Firewall = activities.NewFirewall(fw)
			if cfg.FirewallChangeURL != "" {
				wcfg.Firewall.Change = changeapi.NewHTTP(cfg.FirewallChangeURL, cfg.FirewallChangeToken)
				wcfg.Firewall.ChangeTimeout = cfg.FirewallChangeTimeout
			}
			if cfg.LB == "haproxy" {
				d, stop, err := startHAProxy(ctx, g, gctx, cfg, st, log)
				if err != nil {
					return err
				}
				defer stop()
				wcfg.LB = activities.NewLB(d)
			}
		}
		ws, err := worker.Build(tc, wcfg)
		if err != nil {
			return err
		}
		g.Go(func() error { return worker.Run(gctx, ws) })
	}
	if cmd == "dev" || cmd == "server" {
		if cfg.Token == "" {
			return errors.New("server needs an API token: set BERTH_API_TOKEN or -token")
		}
		api := server.New(server.Config{Token: cfg.Token, AdminPassword: cfg.AdminPassword, PortMin: cfg.PortMin, PortMax: cfg.PortMax,
			HealthTimeout: cfg.HealthTimeout, Compose: opts, TemporalUIURL: cfg.TemporalUIURL,
			LB: lbs, DrainTimeout: cfg.DrainTimeout, Packages: packages, MaxPackageBytes: packages.MaxBytes,
			Registry: cfg.Registry, ExecAllow: cfg.ExecAllow, TemporalNamespace: cfg.TemporalNamespace,
			DataConverter: payloads.DataConverter(), Codec: payloads.Handler(), Secrets: payloads,
			TrustedProxies: cfg.TrustedProxies, PublicURL: cfg.PublicURL, AlertmanagerToken: cfg.AlertmanagerToken,
			MaxTokenTTL: cfg.MaxTokenTTL, AllowEternalTokens: cfg.AllowEternalTokens,
			RelayURL: relayURL(cfg), TerminalKey: payloads.Derived(), TerminalIdle: cfg.TerminalIdle,
			Metrics: reg, MetricsToken: cfg.MetricsToken}, st, tc, log)
		pw, err := api.Bootstrap(ctx)
		if err != nil {
			return err
		}
		if pw != "" {
			fmt.Printf("berth web UI: sign in as admin with password %s (shown once; set BERTH_ADMIN_PASSWORD to choose it)\n", pw)
		}
		g.Go(func() error { prunePackages(gctx, api, cfg.PackageGrace, log); return nil })
		srv := &http.Server{Addr: cfg.Listen, Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			var err error
			if cfg.TLSCert != "" {
				srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
				log.Info("berth API listening", "url", "https://"+cfg.Listen)
				err = srv.ListenAndServeTLS(cfg.TLSCert, cfg.TLSKey)
			} else {
				log.Info("berth API listening", "url", "http://"+cfg.Listen)
				err = srv.ListenAndServe()
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			api.Close() // event streams would otherwise hold Shutdown open
			return srv.Shutdown(sctx)
		})
		if cmd == "dev" {
			g.Go(func() error { return bootstrapDev(gctx, cfg, log) })
		}
	}
	return g.Wait()
}

// metricsOnly serves a worker's /metrics and nothing else.
func metricsOnly(reg *metrics.Registry, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler(token))
	return mux
}

// payloadCodec loads the key every Temporal payload is sealed with. A
// missing default key file is created, so the embedded default encrypts from
// its first start; a deployment of several machines gives each the same file.
func payloadCodec(cfg *Config, log *slog.Logger) (*codec.AESGCM, error) {
	if cfg.PayloadKeys != "" {
		keys, err := codec.ParseKeys(strings.ReplaceAll(cfg.PayloadKeys, ",", "\n"))
		if err != nil {
			return nil, fmt.Errorf("BERTH_PAYLOAD_KEYS: %w", err)
		}
		return codec.New(keys...)
	}
	if _, err := os.Stat(cfg.PayloadKeyFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(cfg.PayloadKeyFile), 0o700); err != nil {
			return nil, err
		}
		log.Warn("created a payload key: every other berth server and worker of this deployment needs a copy of it",
			"file", cfg.PayloadKeyFile)
	}
	return codec.EnsureFile(cfg.PayloadKeyFile)
}

func dialTemporal(ctx context.Context, cfg *Config, payloads *codec.AESGCM, reg *metrics.Registry, log *slog.Logger) (client.Client, error) {
	opts := client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: newTemporalLogger(log), DataConverter: payloads.DataConverter(), MetricsHandler: reg.Temporal()}
	if cfg.TemporalTLSCA != "" || cfg.TemporalTLSCert != "" {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TemporalTLSCA != "" {
			pem, err := os.ReadFile(cfg.TemporalTLSCA)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", cfg.TemporalTLSCA)
			}
			tlsCfg.RootCAs = pool
		}
		if cfg.TemporalTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
			if err != nil {
				return nil, err
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	// The engine may still be starting (make run starts both at once).
	var lastErr error
	for i := 0; i < 60; i++ {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("temporal at %s: %w", cfg.TemporalAddress, lastErr)
}

// prunePackages removes, every hour, uploaded packages that no release refers
// to once they are older than grace (0: never).
func prunePackages(ctx context.Context, api *server.Server, grace time.Duration, log *slog.Logger) {
	if grace <= 0 {
		return
	}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		removed, err := api.PrunePackages(ctx, grace)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("packages not pruned", "error", err)
		case len(removed) > 0:
			log.Info("pruned packages no release refers to", "count", len(removed), "grace", grace)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// runRelay is the mesh relay berth starts in a container on each host of an
// application; its configuration and key come from the container's
// environment, which it drops once read.
func runRelay(ctx context.Context, log *slog.Logger) error {
	cfg, key, err := mesh.ParseEnv(os.Getenv(mesh.EnvConfig), os.Getenv(mesh.EnvKey))
	if err != nil {
		return err
	}
	_ = os.Unsetenv(mesh.EnvKey)
	return (&mesh.Relay{Config: cfg, Key: key, Log: log}).Run(ctx)
}

// secretSource opens the tenants' stored secrets for the Docker activities.
type secretSource struct {
	st   *store.Store
	keys *codec.AESGCM
}

func (s secretSource) SecretValue(ctx context.Context, tenant, env, name string) ([]byte, error) {
	t, err := s.st.TenantByName(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sec, err := s.st.SecretFor(ctx, t.ID, env, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", activities.ErrNoSecret, name)
	}
	if err != nil {
		return nil, err
	}
	return s.keys.Open(sec.KeyID, sec.Sealed, store.SecretAAD(sec.TenantID, sec.Env, sec.Name))
}

// relayURL is where workers dial the server back to relay a terminal: the
// configured one, or ws:// and the listen address (a wildcard host is this
// machine, as in make run).
func relayURL(cfg *Config) string {
	if cfg.RelayURL != "" {
		return cfg.RelayURL
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "ws://" + net.JoinHostPort(host, port)
}

// pruneLogs trims the region's log archive to its retention now and every
// hour, until ctx ends; a failed pass is logged and the next one tries.
func pruneLogs(ctx context.Context, log *slog.Logger, root string, keep time.Duration) {
	for {
		n, err := logship.Prune(root, keep, time.Now())
		if err != nil {
			log.Warn("log archive prune", "error", err)
		} else if n > 0 {
			log.Info("log archive pruned", "files", n, "retention", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}
