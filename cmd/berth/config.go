package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/lb/haproxy"
	"github.com/berth-dev/berth/logship"
)

// Config is berth's whole configuration, from flags with environment
// defaults (BERTH_*).
type Config struct {
	Listen   string
	DataDir  string
	DBDriver string
	DBDSN    string

	TemporalAddress   string
	TemporalNamespace string
	TemporalTLSCA     string
	TemporalTLSCert   string
	TemporalTLSKey    string
	TemporalUIURL     string

	Token string
	// Behind a proxy: the proxies whose X-Forwarded-For is believed, and the
	// URL people use (Origin checks, Secure cookies).
	TrustedProxies []string
	PublicURL      string
	// TLSCert and TLSKey, when set, make the API listen with HTTPS itself.
	TLSCert string
	TLSKey  string
	// MaxTokenTTL bounds API tokens' lifetimes; AllowEternalTokens lets a
	// token be made that never expires.
	MaxTokenTTL        time.Duration
	AllowEternalTokens bool
	// PackageGrace is how long an uploaded package no release refers to is kept.
	PackageGrace time.Duration
	// ReconcileEvery is how often the reconciler's schedule runs (0: never);
	// ReconcileGrace is how old a leftover must be before it is touched.
	ReconcileEvery, ReconcileGrace time.Duration
	// HealEvery is how often self-healing looks for exited instances (0: never).
	HealEvery time.Duration
	// RelayURL is the server's address as workers dial it back to relay a
	// terminal (ws://…); empty: ws:// and the listen address.
	RelayURL string
	// TerminalIdle closes a terminal with no input for so long.
	TerminalIdle time.Duration
	// HostDownAfter is how many heal passes in a row a host's engine may not
	// answer before it is marked down and its instances replaced (0: never).
	HostDownAfter int
	// DiskEvery is how often the named volumes on the hosts are measured (0: never).
	DiskEvery time.Duration
	// PayloadKeyFile holds the AES-256 key(s) every Temporal payload is
	// sealed with; every server and worker of a deployment needs the same file.
	PayloadKeyFile string
	// PayloadKeys, from BERTH_PAYLOAD_KEYS (hex keys, one per line or
	// separated by commas), take the place of the file where keys come from
	// a secret manager's environment. Never a flag: flags show in ps.
	PayloadKeys string
	// AdminPassword is the bootstrap admin's first password, from
	// BERTH_ADMIN_PASSWORD only: a flag would show it in the process list.
	AdminPassword string
	Regions       []string
	Registry      string
	// RegistryMirror is a pull-through mirror of Registry in the worker's
	// region (host:port); its workers pull from it first.
	RegistryMirror string
	// RegistryAuth is user:password for the registry; only workers use it.
	RegistryAuth  string
	PortMin       int
	PortMax       int
	HealthTimeout time.Duration
	BindRoots     []string
	// ExecAllow: absolute paths a file release's post-upload command may run.
	ExecAllow []string

	// Load balancer of this worker's region: "haproxy" (a local HAProxy that
	// berth runs, or with HAProxyExisting one of the operator's) or "none".
	LB         string
	HAProxyBin string
	HAProxyDir string
	// HAProxyExisting is set by -haproxy-config, -haproxy-socket and
	// -haproxy-reload: an HAProxy berth did not start and never stops.
	HAProxyExisting *haproxy.External
	// HAProxyStats is the ip:port of HAProxy's stats page and its
	// Prometheus metrics (/metrics); "" none.
	HAProxyStats string
	LBIP         string
	LBPortMin    int
	LBPortMax    int
	LBWeight     int
	DrainTimeout time.Duration
	// Firewall driver of this worker's region: "none" or "nftables".
	Firewall string
	// FirewallTable is the nftables table berth owns; FirewallAllow the
	// sources its guards never stop ("local" and the CIDRs of load
	// balancers and health checks on other machines).
	FirewallTable string
	FirewallAllow []string
	// MetricsListen is where a worker serves /metrics ("" none; the server
	// serves it on its API listener). MetricsToken, when set, is the bearer
	// token /metrics asks of the scraper.
	MetricsListen string
	MetricsToken  string
	// CMDB driver: "none" or "http" (CMDBURL, CMDBToken).
	CMDB      string
	CMDBURL   string
	CMDBToken string
	// CMDBResyncEvery is how often the drift between berth and the CMDB is
	// repaired (0: only when asked).
	CMDBResyncEvery time.Duration
	// Ticket driver: "none" or "http" (TicketsURL, TicketsToken); incident
	// changes are delivered every TicketsEvery.
	Tickets      string
	TicketsURL   string
	TicketsToken string
	TicketsEvery time.Duration
	// FirewallChangeURL is the network team's change API (environments in
	// firewall mode "change" open through it); FirewallChangeTimeout is the
	// longest a change may stay undecided.
	FirewallChangeURL     string
	FirewallChangeToken   string
	FirewallChangeTimeout time.Duration
	// LogShip is the log collector (tcp://host:port, rsyslog) instances'
	// output and berth's own lines go to; stored as host:port.
	LogShip string
	// LogArchive is the folder the region's rsyslog archives to, which
	// this worker searches and trims to LogRetention.
	LogArchive   string
	LogRetention time.Duration
	// AlertmanagerToken is the bearer token Alertmanager's webhook sends
	// (empty: the hook is closed).
	AlertmanagerToken string

	// Dev mode: register the local engine as host "local" in region "local".
	LocalEndpoint string
	LocalIP       string
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// MinTokenLength is the shortest bootstrap API token berth accepts: the
// token is an admin's key, so it must not be guessable.
const MinTokenLength = 32

// secretFlag is a secret given either as a value or, so that it never shows
// in the process list, as a file (the usual case in production).
type secretFlag struct {
	name  string
	value *string
	file  string
}

// resolve reads the secret's file when one is given. Giving both is an
// error: one of them would be silently ignored.
func (f *secretFlag) resolve() error {
	if f.file == "" {
		return nil
	}
	if *f.value != "" {
		return fmt.Errorf("give -%s or -%s-file, not both", f.name, f.name)
	}
	b, err := os.ReadFile(f.file)
	if err != nil {
		return fmt.Errorf("-%s-file: %w", f.name, err)
	}
	*f.value = strings.TrimSpace(string(b))
	if *f.value == "" {
		return fmt.Errorf("-%s-file %s is empty", f.name, f.file)
	}
	return nil
}

// loadConfig parses flags for a subcommand.
func loadConfig(cmd string, args []string) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("berth "+cmd, flag.ContinueOnError)
	secrets := []*secretFlag{{name: "token", value: &c.Token}, {name: "db-dsn", value: &c.DBDSN}, {name: "cmdb-token", value: &c.CMDBToken},
		{name: "registry-auth", value: &c.RegistryAuth}, {name: "tickets-token", value: &c.TicketsToken},
		{name: "alertmanager-token", value: &c.AlertmanagerToken},
		{name: "firewall-change-token", value: &c.FirewallChangeToken},
		{name: "metrics-token", value: &c.MetricsToken}}
	for _, s := range secrets {
		envKey := "BERTH_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_")) + "_FILE"
		if s.name == "token" {
			envKey = "BERTH_API_TOKEN_FILE"
		}
		fs.StringVar(&s.file, s.name+"-file", env(envKey, ""), "file holding -"+s.name+" (keeps it out of the process list)")
	}
	fs.StringVar(&c.Listen, "listen", env("BERTH_LISTEN", "127.0.0.1:8080"), "API/UI listen address")
	fs.StringVar(&c.DataDir, "data", env("BERTH_DATA", "data"), "folder for the embedded database and the dev token")
	fs.StringVar(&c.DBDriver, "db-driver", env("BERTH_DB_DRIVER", "sqlite"), "sqlite or mysql")
	fs.StringVar(&c.DBDSN, "db-dsn", env("BERTH_DB_DSN", ""), "database DSN (sqlite: file path; mysql: user:pass@tcp(host:3306)/db)")
	fs.StringVar(&c.TemporalAddress, "temporal", env("BERTH_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port")
	fs.StringVar(&c.TemporalNamespace, "namespace", env("BERTH_TEMPORAL_NAMESPACE", "default"), "Temporal namespace")
	fs.StringVar(&c.TemporalTLSCA, "temporal-tls-ca", env("BERTH_TEMPORAL_TLS_CA", ""), "CA file for Temporal TLS")
	fs.StringVar(&c.TemporalTLSCert, "temporal-tls-cert", env("BERTH_TEMPORAL_TLS_CERT", ""), "client certificate for Temporal mTLS")
	fs.StringVar(&c.TemporalTLSKey, "temporal-tls-key", env("BERTH_TEMPORAL_TLS_KEY", ""), "client key for Temporal mTLS")
	fs.StringVar(&c.TemporalUIURL, "temporal-ui", env("BERTH_TEMPORAL_UI_URL", ""), "Temporal web UI base URL, for links")
	fs.StringVar(&c.PayloadKeyFile, "payload-key-file", env("BERTH_PAYLOAD_KEY_FILE", ""), "file with the key(s) Temporal payloads are encrypted with, hex, one per line, the first encrypts (default: <data>/payload.key, created when missing)")
	fs.StringVar(&c.Token, "token", env("BERTH_API_TOKEN", ""), "bootstrap admin API token (dev: generated when empty)")
	proxies := fs.String("trusted-proxies", env("BERTH_TRUSTED_PROXIES", ""), "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed (default: none)")
	fs.StringVar(&c.PublicURL, "public-url", env("BERTH_PUBLIC_URL", ""), "the URL people reach berth at, when behind a proxy (e.g. https://berth.example.com)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("BERTH_TLS_CERT", ""), "certificate file: the API listens with HTTPS")
	fs.DurationVar(&c.MaxTokenTTL, "max-token-ttl", envDuration("BERTH_MAX_TOKEN_TTL", 90*24*time.Hour), "the longest an API token may live")
	fs.BoolVar(&c.AllowEternalTokens, "allow-eternal-tokens", env("BERTH_ALLOW_ETERNAL_TOKENS", "") == "true", "allow API tokens that never expire (ttlHours -1)")
	fs.DurationVar(&c.PackageGrace, "package-grace", envDuration("BERTH_PACKAGE_GRACE", 24*time.Hour), "how long an uploaded package no release refers to is kept (0: forever)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", envDuration("BERTH_RECONCILE_EVERY", 10*time.Minute), "how often the reconciler compares records with hosts and repairs leftovers of dead runs (0: never)")
	fs.DurationVar(&c.DiskEvery, "disk-every", envDuration("BERTH_DISK_EVERY", 5*time.Minute), "how often the named volumes on the hosts are measured against their declared sizes (0: never)")
	fs.DurationVar(&c.HealEvery, "heal-every", envDuration("BERTH_HEAL_EVERY", 30*time.Second), "how often self-healing starts instances whose container exited (0: never)")
	fs.StringVar(&c.RelayURL, "relay-url", env("BERTH_RELAY_URL", ""), "the server's address as workers dial it to relay a terminal (ws://host:port; default: the listen address)")
	fs.DurationVar(&c.TerminalIdle, "terminal-idle", envDuration("BERTH_TERMINAL_IDLE", 15*time.Minute), "close a terminal with no input for this long")
	fs.IntVar(&c.HostDownAfter, "host-down-after", envInt("BERTH_HOST_DOWN_AFTER", 3), "how many heal passes in a row a host's engine may not answer before it is marked down and its instances are replaced on other hosts (0: never)")
	fs.DurationVar(&c.ReconcileGrace, "reconcile-grace", envDuration("BERTH_RECONCILE_GRACE", 10*time.Minute), "how old a leftover must be before the reconciler touches it")
	fs.StringVar(&c.TLSKey, "tls-key", env("BERTH_TLS_KEY", ""), "key file of -tls-cert")
	regions := fs.String("regions", env("BERTH_REGIONS", ""), "comma-separated regions whose host activities this worker serves")
	fs.StringVar(&c.Registry, "registry", env("BERTH_REGISTRY", ""), "registry host[:port] missing images are pulled from")
	fs.StringVar(&c.RegistryMirror, "registry-mirror", env("BERTH_REGISTRY_MIRROR", ""), "host:port of a pull-through mirror of -registry in this worker's region, pulled from first")
	fs.StringVar(&c.RegistryAuth, "registry-auth", env("BERTH_REGISTRY_AUTH", ""), "user:password the workers pull from and push to the registry with")
	fs.IntVar(&c.PortMin, "port-min", envInt("BERTH_PORT_MIN", 30000), "lowest host port the platform allocates")
	fs.IntVar(&c.PortMax, "port-max", envInt("BERTH_PORT_MAX", 32767), "highest host port the platform allocates")
	fs.DurationVar(&c.HealthTimeout, "health-timeout", envDuration("BERTH_HEALTH_TIMEOUT", 2*time.Minute), "how long an instance may take to become healthy")
	bindRoots := fs.String("bind-roots", env("BERTH_BIND_ROOTS", ""), "comma-separated host folders in which each environment binds folders of its own (<root>/<tenant>/<env>/<name>)")
	execAllow := fs.String("exec-allow", env("BERTH_EXEC_ALLOW", ""), "comma-separated absolute paths a release's post-upload command may run")
	fs.StringVar(&c.LocalEndpoint, "local-endpoint", env("BERTH_LOCAL_ENDPOINT", "unix:///var/run/docker.sock"), "dev: the local Docker engine")
	fs.StringVar(&c.LocalIP, "local-ip", env("BERTH_LOCAL_IP", "127.0.0.1"), "dev: the IP the local engine publishes ports on")
	fs.StringVar(&c.LB, "lb", env("BERTH_LB", "haproxy"), "load balancer of the served regions: haproxy or none")
	fs.StringVar(&c.HAProxyBin, "haproxy-bin", env("BERTH_HAPROXY_BIN", "/usr/sbin/haproxy"), "HAProxy binary berth runs")
	fs.StringVar(&c.HAProxyDir, "haproxy-dir", env("BERTH_HAPROXY_DIR", ""), "folder for HAProxy's config and sockets (default: <data>/haproxy)")
	haproxyConfig := fs.String("haproxy-config", env("BERTH_HAPROXY_CONFIG", ""), "drive an existing HAProxy: the file berth writes its frontends and backends to, which that HAProxy loads (with -haproxy-socket and -haproxy-reload)")
	haproxySocket := fs.String("haproxy-socket", env("BERTH_HAPROXY_SOCKET", ""), "drive an existing HAProxy: its runtime API socket, at level admin")
	haproxyReload := fs.String("haproxy-reload", env("BERTH_HAPROXY_RELOAD", ""), "drive an existing HAProxy: the command that reloads it, split on spaces and run without a shell (e.g. \"systemctl reload haproxy\")")
	fs.StringVar(&c.HAProxyStats, "haproxy-stats", env("BERTH_HAPROXY_STATS", ""), "ip:port for HAProxy's read-only stats page and its Prometheus /metrics (default: none)")
	fs.StringVar(&c.LBIP, "lb-ip", env("BERTH_LB_IP", "127.0.0.1"), "address service frontends listen on")
	fs.IntVar(&c.LBPortMin, "lb-port-min", envInt("BERTH_LB_PORT_MIN", 29000), "lowest frontend port")
	fs.IntVar(&c.LBPortMax, "lb-port-max", envInt("BERTH_LB_PORT_MAX", 29999), "highest frontend port")
	fs.IntVar(&c.LBWeight, "lb-weight", envInt("BERTH_LB_WEIGHT", 100), "weight of a new server")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDuration("BERTH_DRAIN_TIMEOUT", 30*time.Second), "how long scale-in and releases wait for drained sessions")
	fs.StringVar(&c.Firewall, "firewall", env("BERTH_FIREWALL", "none"), "firewall driver: none or nftables")
	fs.StringVar(&c.MetricsListen, "metrics-listen", env("BERTH_METRICS_LISTEN", ""), "worker: address to serve Prometheus /metrics on, e.g. 127.0.0.1:9464 (the server serves it on its API address)")
	fs.StringVar(&c.FirewallTable, "firewall-table", env("BERTH_FIREWALL_TABLE", "berth"), "the nftables table berth owns (inet family)")
	fwAllow := fs.String("firewall-allow", env("BERTH_FIREWALL_ALLOW", "local"), "comma-separated sources let into published ports before their opening: local (this machine: health checks, a local load balancer) and CIDRs of remote load balancers")
	fs.StringVar(&c.CMDB, "cmdb", env("BERTH_CMDB", "none"), "CMDB driver: none or http")
	fs.StringVar(&c.CMDBURL, "cmdb-url", env("BERTH_CMDB_URL", ""), "base URL of the CMDB (http driver)")
	fs.StringVar(&c.CMDBToken, "cmdb-token", env("BERTH_CMDB_TOKEN", ""), "bearer token for the CMDB")
	fs.StringVar(&c.Tickets, "tickets", env("BERTH_TICKETS", "none"), "ticket system driver: none or http")
	fs.StringVar(&c.TicketsURL, "tickets-url", env("BERTH_TICKETS_URL", ""), "base URL of the ticket system (http driver)")
	fs.StringVar(&c.TicketsToken, "tickets-token", env("BERTH_TICKETS_TOKEN", ""), "bearer token for the ticket system")
	fs.DurationVar(&c.TicketsEvery, "tickets-every", envDuration("BERTH_TICKETS_EVERY", 10*time.Second), "how often incident changes are delivered to the ticket system")
	fs.StringVar(&c.FirewallChangeURL, "firewall-change-url", env("BERTH_FIREWALL_CHANGE_URL", ""), "the network team's change API (environments with firewall mode change open through it)")
	fs.StringVar(&c.FirewallChangeToken, "firewall-change-token", env("BERTH_FIREWALL_CHANGE_TOKEN", ""), "bearer token for the change API")
	fs.DurationVar(&c.FirewallChangeTimeout, "firewall-change-timeout", envDuration("BERTH_FIREWALL_CHANGE_TIMEOUT", 24*time.Hour), "the longest a firewall change may stay undecided before the run fails and undoes")
	fs.StringVar(&c.LogShip, "log-ship", env("BERTH_LOG_SHIP", ""), "the region's log collector, tcp://host:port (rsyslog, see deploy/rsyslog); instances' output and berth's own logs go there")
	fs.StringVar(&c.LogArchive, "log-archive", env("BERTH_LOG_ARCHIVE", ""), "folder the region's rsyslog archives shipped lines to (one file per instance and day), searched by this worker")
	fs.DurationVar(&c.LogRetention, "log-retention", envDuration("BERTH_LOG_RETENTION", 14*24*time.Hour), "how long archived lines are kept")
	fs.StringVar(&c.AlertmanagerToken, "alertmanager-token", env("BERTH_ALERTMANAGER_TOKEN", ""), "bearer token Alertmanager's webhook must send to POST /api/v1/hooks/alertmanager (empty: the hook is closed)")
	fs.DurationVar(&c.CMDBResyncEvery, "cmdb-resync-every", envDuration("BERTH_CMDB_RESYNC_EVERY", time.Hour), "how often the drift between berth and the CMDB is repaired both ways (0: only when asked)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range secrets {
		if err := s.resolve(); err != nil {
			return nil, err
		}
	}
	if c.Token != "" && len(c.Token) < MinTokenLength {
		return nil, fmt.Errorf("the API token is %d characters; it must be at least %d (e.g. openssl rand -hex 24)", len(c.Token), MinTokenLength)
	}
	if c.RegistryAuth != "" && !strings.Contains(c.RegistryAuth, ":") {
		return nil, fmt.Errorf("registry-auth must be user:password")
	}
	if err := checkMirror(c.RegistryMirror, c.Registry); err != nil {
		return nil, err
	}
	c.Regions, c.BindRoots, c.ExecAllow = splitList(*regions), splitList(*bindRoots), splitList(*execAllow)
	c.TrustedProxies = splitList(*proxies)
	c.FirewallAllow = splitList(*fwAllow)
	if err := checkProxyConfig(c); err != nil {
		return nil, err
	}
	for _, p := range c.ExecAllow {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return nil, fmt.Errorf("exec-allow: %q is not a clean absolute path", p)
		}
	}
	c.AdminPassword = os.Getenv("BERTH_ADMIN_PASSWORD")
	if c.DBDriver == "sqlite" && c.DBDSN == "" {
		c.DBDSN = filepath.Join(c.DataDir, "berth.db")
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		return nil, fmt.Errorf("port range %d-%d is not valid (1024-65535)", c.PortMin, c.PortMax)
	}
	c.PayloadKeys = os.Getenv("BERTH_PAYLOAD_KEYS")
	if c.PayloadKeyFile == "" {
		c.PayloadKeyFile = filepath.Join(c.DataDir, "payload.key")
	}
	if c.HAProxyDir == "" {
		c.HAProxyDir = filepath.Join(c.DataDir, "haproxy")
	}
	if *haproxyConfig != "" || *haproxySocket != "" || *haproxyReload != "" {
		if *haproxyConfig == "" || *haproxySocket == "" || *haproxyReload == "" {
			return nil, errors.New("an existing HAProxy needs all of -haproxy-config, -haproxy-socket and -haproxy-reload")
		}
		c.HAProxyExisting = &haproxy.External{ConfigPath: *haproxyConfig, AdminSocket: *haproxySocket, Reload: strings.Fields(*haproxyReload)}
	}
	switch {
	case c.LB != "haproxy" && c.LB != "none":
		return nil, fmt.Errorf("lb must be haproxy or none, not %q", c.LB)
	case c.Firewall != "none" && c.Firewall != "nftables":
		return nil, fmt.Errorf("firewall must be none or nftables, not %q", c.Firewall)
	case c.CMDB != "none" && c.CMDB != "http":
		return nil, fmt.Errorf("cmdb must be none or http, not %q", c.CMDB)
	case c.CMDB == "http" && c.CMDBURL == "":
		return nil, errors.New("cmdb http needs -cmdb-url")
	case c.FirewallChangeTimeout < time.Second || c.FirewallChangeTimeout > 24*time.Hour:
		return nil, fmt.Errorf("firewall-change-timeout must be from 1s to 24h, not %s", c.FirewallChangeTimeout)
	case c.LogRetention < time.Hour:
		return nil, fmt.Errorf("log-retention must be at least 1h, not %s", c.LogRetention)
	case c.Tickets != "none" && c.Tickets != "http":
		return nil, fmt.Errorf("tickets must be none or http, not %q", c.Tickets)
	case c.Tickets == "http" && c.TicketsURL == "":
		return nil, errors.New("tickets http needs -tickets-url")
	case c.Tickets == "http" && c.TicketsEvery < time.Second:
		return nil, fmt.Errorf("tickets-every must be at least 1s, not %s", c.TicketsEvery)
	case c.HostDownAfter < 0:
		return nil, fmt.Errorf("host-down-after must be 0 (never) or more, not %d", c.HostDownAfter)
	case c.LBPortMin < 1024 || c.LBPortMax > 65535 || c.LBPortMin > c.LBPortMax:
		return nil, fmt.Errorf("lb port range %d-%d is not valid", c.LBPortMin, c.LBPortMax)
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		return nil, errors.New("temporal-tls-cert and temporal-tls-key go together")
	}
	return c, nil
}

// devToken returns the dev token, creating it once in the data folder so a
// second `make run` keeps the same one. It is never a fixed default.
func devToken(dataDir string) (string, bool, error) {
	p := filepath.Join(dataDir, "api-token")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), false, nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return tok, true, nil
}

// privateFiles makes the data folder (0700) and the SQLite database (0600)
// readable by berth's user only: they hold tokens, sessions and records.
// SQLite gives its -wal and -shm files the database file's mode.
func privateFiles(dataDir, dbFile string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(dbFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(dbFile, 0o600)
}

// checkProxyConfig refuses proxy and TLS settings that would be silently
// ignored or would open the Origin check.
func checkProxyConfig(c *Config) error {
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err == nil {
			continue
		}
		if net.ParseIP(p) == nil {
			return fmt.Errorf("trusted-proxies: %q is neither an IP nor a CIDR", p)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("public-url %q must be http(s)://host[:port], nothing more", c.PublicURL)
		}
		c.PublicURL = u.Scheme + "://" + u.Host
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key go together")
	}
	if c.LogShip != "" {
		hp, err := logship.ParseAddress(c.LogShip)
		if err != nil {
			return err
		}
		c.LogShip = hp
	}
	return nil
}

// linkBase is berth's address for links in tickets: the public URL when
// set, else the listen address (right for one machine).
func (c *Config) linkBase() string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	return "http://" + c.Listen
}

// checkMirror accepts an empty mirror, or host:port beside a registry.
func checkMirror(mirror, registry string) error {
	if mirror == "" {
		return nil
	}
	if registry == "" {
		return errors.New("registry-mirror mirrors -registry, which is not set")
	}
	host, port, err := net.SplitHostPort(mirror)
	if err != nil || host == "" || port == "" || strings.ContainsAny(mirror, "/@") {
		return fmt.Errorf("registry-mirror %q must be host:port, without a scheme or path", mirror)
	}
	if mirror == registry {
		return errors.New("registry-mirror is the registry itself")
	}
	return nil
}
