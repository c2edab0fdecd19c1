package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/metrics"
	"github.com/berth-dev/berth/store"
)

// Config is what the API needs besides its collaborators.
type Config struct {
	// Token is the bootstrap admin's API token (BERTH_API_TOKEN); Bootstrap
	// records it as the admin's. AdminPassword, when set, is the bootstrap
	// admin's first password; otherwise a random one is made and shown once.
	Token           string
	AdminPassword   string
	PortMin         int
	PortMax         int
	HealthTimeout   time.Duration
	Compose         compose.Options
	TemporalUIURL   string
	MaxBodyBytes    int64
	MaxComposeBytes int64
	// LB and DrainTimeout shape scale runs; LB also deploys.
	LB           berth.LBSettings
	DrainTimeout time.Duration
	// Packages stores uploaded packages; MaxPackageBytes bounds an upload.
	Packages        PackageStore
	MaxPackageBytes int64
	// Registry is where built and committed images are pushed (host[:port]).
	Registry string
	// ExecAllow lists the absolute paths a release's post-upload command may run.
	ExecAllow []string

	// TemporalNamespace is the namespace runs' workflows live in ("" is "default").
	TemporalNamespace string
	// DataConverter decodes the payloads of the histories the API shows:
	// the same encrypting converter the Temporal client uses (nil: Temporal's
	// default, for tests).
	DataConverter converter.DataConverter
	// TrustedProxies are the addresses (IPs or CIDRs) of reverse proxies
	// whose X-Forwarded-For names the client, for the audit log and the
	// sign-in limiter. None by default: then the peer is the client, and a
	// client cannot choose the address it is recorded under.
	TrustedProxies []string
	// AlertmanagerToken is the bearer token Alertmanager's webhook sends to
	// POST /api/v1/hooks/alertmanager; empty closes the hook.
	AlertmanagerToken string
	// PublicURL is the address people use (https://berth.example.com) when
	// berth sits behind a proxy: the Origin check compares with it, and
	// session cookies are Secure when it is https.
	PublicURL string
	// MaxTokenTTL is the longest an API token may live (0: 90 days). A token
	// that never expires is refused unless AllowEternalTokens.
	MaxTokenTTL        time.Duration
	AllowEternalTokens bool
	// Codec, when set, is served at /api/v1/codec/{encode,decode} (Temporal's
	// remote-codec protocol) for operators whose Temporal UI or CLI must read
	// sealed payloads. Only platform admins may use it.
	Codec http.Handler
	// Secrets seals the values of the tenants' secret stores (nil: the
	// secrets endpoints answer that no key is configured).
	Secrets SecretSealer
	// RelayURL is this server's address as workers dial it back to relay a
	// terminal (ws://host:port); TerminalKey proves a worker is one of this
	// deployment's (berth.TerminalRelayToken). Without both, no terminals.
	RelayURL    string
	TerminalKey []byte
	// TerminalIdle closes a terminal with no input for so long (0: berth.TerminalIdle).
	TerminalIdle time.Duration
	// Metrics counts requests, runs started, event streams and lock
	// conflicts, and is served at /metrics (nil: no metrics).
	Metrics *metrics.Registry
	// MetricsToken, when set, is the bearer token /metrics asks of its
	// scraper.
	MetricsToken string
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	store    *store.Store
	temporal client.Client
	log      *slog.Logger
	pages    pages
	// closing ends the event streams when the server shuts down.
	closing   chan struct{}
	closeOnce sync.Once
	// logins counts failed sign-ins per user and address.
	logins *loginLimiter
	// streams counts each user's open event streams (maxStreamsPerUser).
	streams *streamCounter
	// sseRecheck is how often an open stream checks that its session or
	// token is still valid.
	sseRecheck time.Duration
	// terminals pairs open terminals with their workers' relays.
	terminals terminalHub
	metrics   *metrics.Registry
}

// New returns the API server.
func New(cfg Config, st *store.Store, tc client.Client, log *slog.Logger) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxComposeBytes == 0 {
		cfg.MaxComposeBytes = 256 << 10
	}
	if cfg.MaxPackageBytes == 0 {
		cfg.MaxPackageBytes = 512 << 20
	}
	if cfg.TemporalNamespace == "" {
		cfg.TemporalNamespace = "default"
	}
	if cfg.TerminalIdle <= 0 {
		cfg.TerminalIdle = berth.TerminalIdle
	}
	if cfg.MaxTokenTTL <= 0 {
		cfg.MaxTokenTTL = 90 * 24 * time.Hour
	}
	// Failed sign-ins are counted in the database, so the limit holds
	// across API replicas.
	var fails failureLog
	if st != nil {
		fails = st
	}
	s := &Server{cfg: cfg, store: st, temporal: tc, log: log, closing: make(chan struct{}), logins: newLoginLimiter(fails),
		streams: &streamCounter{open: map[uint]int{}}, sseRecheck: sseRecheck, metrics: cfg.Metrics}
	s.metrics.MustRegister(approvalsWaiting{st: st})
	return s
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Gin trusts every proxy by default; berth trusts only the configured
	// ones (New checked them).
	_ = r.SetTrustedProxies(s.cfg.TrustedProxies)
	// Outermost, so that a panic's 500 is counted too.
	r.Use(s.countRequest, gin.Recovery())
	s.pages = loadPages()
	s.mount(r)
	r.NoRoute(func(c *gin.Context) { s.fail(c, &berth.Error{Code: berth.ENotFound, Message: "no such route"}) })
	return r
}

// countRequest counts every answer by route pattern and status.
func (s *Server) countRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.metrics.HTTPRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
}

// metricsPage serves the Prometheus metrics, behind MetricsToken if set.
func (s *Server) metricsPage(c *gin.Context) {
	if s.cfg.Metrics == nil {
		s.fail(c, &berth.Error{Code: berth.ENotFound, Message: "metrics are off"})
		return
	}
	s.cfg.Metrics.Handler(s.cfg.MetricsToken).ServeHTTP(c.Writer, c.Request)
}

// approvalsWaiting reports, at each scrape, the approvals still open: read
// from the database, so every API replica says the same.
type approvalsWaiting struct{ st *store.Store }

var (
	approvalsWaitingDesc = prometheus.NewDesc("berth_approvals_waiting", "Approvals pending or escalated now.", nil, nil)
	approvalOldestDesc   = prometheus.NewDesc("berth_approval_oldest_wait_seconds", "How long the oldest open approval has waited (0: none waits).", nil, nil)
)

func (a approvalsWaiting) Describe(ch chan<- *prometheus.Desc) {
	ch <- approvalsWaitingDesc
	ch <- approvalOldestDesc
}

func (a approvalsWaiting) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, oldest, err := a.st.OpenApprovals(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(approvalsWaitingDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(approvalsWaitingDesc, prometheus.GaugeValue, float64(n))
	waited := 0.0
	if !oldest.IsZero() {
		waited = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(approvalOldestDesc, prometheus.GaugeValue, waited)
}

func (s *Server) healthz(c *gin.Context) {
	if err := s.store.Ping(c.Request.Context()); err != nil {
		s.fail(c, &berth.Error{Code: berth.EUnavailable, Message: "database does not answer"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// packageRoutes take a package upload (multipart) as their body.
var packageRoutes = map[string]bool{"/api/v1/services/:id/releases": true, "/api/v1/services/:id/grey": true}

// limitBody caps request bodies; reading past the cap yields a 413.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		limit := s.cfg.MaxBodyBytes
		// Package uploads stream to the artifact store, which has its own
		// limit; the body may be that large plus the form's few fields.
		if packageRoutes[c.FullPath()] && isMultipart(c) {
			limit = s.cfg.MaxPackageBytes + 1<<20
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// audit appends every mutating request, with its outcome, to the audit log.
func (s *Server) audit(c *gin.Context) {
	c.Next()
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
		return
	}
	ev := store.AuditEvent{Actor: actor(c), Action: clip(c.Request.Method+" "+c.FullPath(), 191), Target: clip(c.Request.URL.Path, 191),
		Remote: c.ClientIP(), Outcome: fmt.Sprint(c.Writer.Status()), Detail: c.GetString("berth.audit")}
	// The request's context may be done once the response is written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	if err := s.store.Audit(ctx, ev); err != nil {
		s.log.Error("audit not recorded", "error", err, "action", ev.Action)
	}
}

// clip cuts s to at most n bytes on a rune boundary, so a long path still
// fits its audit column.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

func checkName(kind, v string) error {
	if !nameRE.MatchString(v) {
		return badRequest(fmt.Sprintf("%s name %q must be 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit", kind, v))
	}
	return nil
}

func bind(c *gin.Context, v any) error {
	if err := c.ShouldBindJSON(v); err != nil {
		var mb *http.MaxBytesError
		if asMaxBytes(err, &mb) {
			return mb
		}
		return badRequest("request body is not valid JSON: " + err.Error())
	}
	return nil
}

// bindValid binds a JSON body and checks it with its own rules.
func bindValid(c *gin.Context, v interface{ validate() error }) error {
	if err := bind(c, v); err != nil {
		return err
	}
	return v.validate()
}

func runURL(id uint) string { return fmt.Sprintf("/api/v1/runs/%d", id) }

// runStarted is the answer to every request that starts work.
type runStarted struct {
	RunID      uint   `json:"runId"`
	URL        string `json:"url"`
	WorkflowID string `json:"workflowId"`
	// Existing is true when the same request had already started this run.
	Existing bool `json:"existing,omitempty"`
}
