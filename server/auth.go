package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// Who is calling, and how. Identity comes only from a bearer token or the
// session cookie, never from anything else the client sends.
type principal struct {
	User     *store.User
	Bindings []store.RoleBinding
	Session  *store.Session  // set for a browser
	Token    *store.APIToken // set for a bearer
}

const (
	principalKey  = "berth.principal"
	actorKey      = "berth.actor"
	sessionCookie = "berth_session"
	sessionTTL    = 12 * time.Hour
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

func actor(c *gin.Context) string { return c.GetString(actorKey) }

func principalOf(c *gin.Context) *principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(*principal)
	return pr
}

// Bootstrap makes the bootstrap admin on first start and records the
// configured API token as the admin's, so BERTH_API_TOKEN keeps working and
// is checked, listed and revoked like any token. It returns the admin's
// password when it made one, for the caller to show once.
func (s *Server) Bootstrap(ctx context.Context) (string, error) {
	admin, pw, err := s.store.EnsureAdmin(ctx, "admin", s.cfg.AdminPassword)
	if err != nil {
		return "", fmt.Errorf("bootstrap admin: %w", err)
	}
	if s.cfg.Token != "" {
		if err := s.store.EnsureToken(ctx, admin.ID, "bootstrap (BERTH_API_TOKEN)", s.cfg.Token); err != nil {
			return "", fmt.Errorf("bootstrap token: %w", err)
		}
	}
	if s.cfg.AdminPassword != "" {
		pw = "" // the operator chose it; nothing to show
	}
	return pw, nil
}

// authenticate accepts a bearer token or a session cookie; every API route
// needs one of them. A browser's unsafe requests must also carry the
// session's CSRF token and come from this origin.
func (s *Server) authenticate(c *gin.Context) {
	p, err := s.identify(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Set(actorKey, p.User.Name)
	c.Next()
}

func (s *Server) identify(c *gin.Context) (*principal, error) {
	ctx := c.Request.Context()
	if h := c.GetHeader("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return nil, &berth.Error{Code: berth.EUnauthorized, Message: "Authorization must be \"Bearer <token>\""}
		}
		u, t, err := s.store.UserByToken(ctx, tok)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, &berth.Error{Code: berth.EUnauthorized, Message: "the bearer token is not valid"}
		case errors.Is(err, store.ErrCredentialExpired):
			return nil, &berth.Error{Code: berth.EUnauthorized, Message: "the bearer token has expired or was revoked"}
		case err != nil:
			return nil, err
		}
		return s.withBindings(ctx, &principal{User: u, Token: t})
	}
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck == "" {
		return nil, &berth.Error{Code: berth.EUnauthorized, Message: "sign in, or send Authorization: Bearer <token>"}
	}
	u, ses, err := s.store.UserBySession(ctx, ck)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCredentialExpired) {
		return nil, &berth.Error{Code: berth.EUnauthorized, Message: "your session has ended; sign in again"}
	}
	if err != nil {
		return nil, err
	}
	if unsafeMethod(c.Request.Method) {
		if !sameOrigin(c.Request) {
			return nil, &berth.Error{Code: berth.EForbidden, Message: "cross-origin request refused: Origin or Referer must be this site"}
		}
		sent := c.GetHeader(csrfHeader)
		if sent == "" {
			sent = c.PostForm(csrfField)
		}
		if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(ses.CSRF)) != 1 {
			return nil, &berth.Error{Code: berth.EForbidden, Message: "the form's CSRF token is missing or wrong; reload the page and try again"}
		}
	}
	return s.withBindings(ctx, &principal{User: u, Session: ses})
}

func (s *Server) withBindings(ctx context.Context, p *principal) (*principal, error) {
	bs, err := s.store.RoleBindings(ctx, p.User.ID)
	if err != nil {
		return nil, err
	}
	p.Bindings = bs
	return p, nil
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin says the request names this host as its origin. Browsers send
// Origin on every cross-origin and same-origin POST; Referer is the fallback.
// Neither present is refused: a browser always sends one of them here.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	want := "http"
	if r.TLS != nil {
		want = "https"
	}
	return u.Scheme == want && strings.EqualFold(u.Host, r.Host)
}

// has says whether the caller holds one of roles on the tenant; tenantID 0
// (platform-wide resources) needs a platform-wide binding. A platform-wide
// admin holds every role everywhere except approval decisions, which the
// approval's own roles decide.
func (p *principal) has(tenantID uint, roles ...berth.Role) bool {
	for _, b := range p.Bindings {
		if b.TenantID != 0 && b.TenantID != tenantID {
			continue
		}
		if b.Role == berth.RoleAdmin {
			return true
		}
		for _, r := range roles {
			if b.Role == r {
				return true
			}
		}
	}
	return false
}

// platformWide says the caller holds a role on every tenant, so reads are not narrowed.
func (p *principal) platformWide() bool {
	for _, b := range p.Bindings {
		if b.TenantID == 0 {
			return true
		}
	}
	return false
}

// tenantIDs is the tenants the caller may read, or nil for all of them.
func (p *principal) tenantIDs() []uint {
	if p.platformWide() {
		return nil
	}
	ids := []uint{}
	seen := map[uint]bool{}
	for _, b := range p.Bindings {
		if !seen[b.TenantID] {
			seen[b.TenantID] = true
			ids = append(ids, b.TenantID)
		}
	}
	return ids
}

// What each role may do (ARCHITECTURE.md): developers start and cancel their
// own runs; approvers decide; release managers read everything and cancel or
// roll back any run; admins manage hosts, tenants, environments and users.
var (
	readRoles     = []berth.Role{berth.RoleDeveloper, berth.RoleApprover, berth.RoleReleaseManager, berth.RoleAdmin}
	deployRoles   = []berth.Role{berth.RoleDeveloper}
	rollbackRoles = []berth.Role{berth.RoleDeveloper, berth.RoleReleaseManager}
	adminRoles    = []berth.Role{berth.RoleAdmin}
	ticketRoles   = []berth.Role{berth.RoleApprover, berth.RoleReleaseManager}
	auditRoles    = []berth.Role{berth.RoleReleaseManager}
)

// policy decides whether the caller may use a route.
type policy func(s *Server, c *gin.Context, p *principal) error

// scope finds the tenant a route's resource belongs to (0: the platform).
type scope func(s *Server, c *gin.Context) (uint, error)

func need(sc scope, what string, roles ...berth.Role) policy {
	return func(s *Server, c *gin.Context, p *principal) error {
		tid, err := sc(s, c)
		if err != nil {
			return err
		}
		if !p.has(tid, roles...) {
			return denied(s, c, tid, what, roles)
		}
		return nil
	}
}

func anyone(*Server, *gin.Context, *principal) error { return nil }

func denied(s *Server, c *gin.Context, tid uint, what string, roles []berth.Role) error {
	where := "platform-wide"
	if tid != 0 {
		where = "on this tenant"
		if t, err := s.store.TenantByID(c.Request.Context(), tid); err == nil {
			where = "on tenant " + t.Name
		}
	}
	names := []string{}
	for _, r := range roles {
		if r != berth.RoleAdmin {
			names = append(names, string(r))
		}
	}
	return &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("%s needs role %s %s", what, strings.Join(append(names, string(berth.RoleAdmin)), " or "), where)}
}

func platform(*Server, *gin.Context) (uint, error) { return 0, nil }

func tenantParam(s *Server, c *gin.Context) (uint, error) {
	t, err := s.store.TenantByName(c.Request.Context(), c.Param("tenant"))
	if err != nil {
		return 0, err
	}
	return t.ID, nil
}

func serviceParam(s *Server, c *gin.Context) (uint, error) {
	sc, err := s.serviceContext(c)
	if err != nil {
		return 0, err
	}
	return sc.Tenant.ID, nil
}

func releaseScope(s *Server, c *gin.Context) (uint, error) {
	id, err := idParam(c, "release")
	if err != nil {
		return 0, err
	}
	rel, err := s.store.Release(c.Request.Context(), uint(id))
	if err != nil {
		return 0, err
	}
	sc, err := s.store.ServiceContextByID(c.Request.Context(), rel.ServiceID)
	if err != nil {
		return 0, err
	}
	return sc.Tenant.ID, nil
}

func runScope(s *Server, c *gin.Context) (uint, error) {
	run, err := s.runParam(c)
	if err != nil {
		return 0, err
	}
	return run.TenantID, nil
}

// cancelPolicy: release managers and admins cancel any run; a developer
// cancels the runs they started.
func cancelPolicy(s *Server, c *gin.Context, p *principal) error {
	run, err := s.runParam(c)
	if err != nil {
		return err
	}
	if p.has(run.TenantID, berth.RoleReleaseManager) {
		return nil
	}
	if p.has(run.TenantID, berth.RoleDeveloper) && run.StartedBy == p.User.Name {
		return nil
	}
	return &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("cancelling run %d needs role release-manager or admin, or role developer and to have started it (%s did)", run.ID, run.StartedBy)}
}

// policies maps "METHOD /route" to who may call it. A route without an entry
// is for platform-wide admins only, so a route added without thought is
// closed, not open.
var policies = map[string]policy{
	"GET /api/v1/hosts":              anyone,
	"GET /api/v1/hosts/:host":        anyone,
	"POST /api/v1/hosts":             need(platform, "registering a host", adminRoles...),
	"POST /api/v1/hosts/:host/check": need(platform, "checking a host", adminRoles...),

	"GET /api/v1/tenants":                                                anyone, // narrowed in the handler
	"POST /api/v1/tenants":                                               need(platform, "creating a tenant", adminRoles...),
	"GET /api/v1/tenants/:tenant/environments":                           need(tenantParam, "reading environments", readRoles...),
	"POST /api/v1/tenants/:tenant/environments":                          need(tenantParam, "creating an environment", adminRoles...),
	"GET /api/v1/tenants/:tenant/environments/:env":                      need(tenantParam, "reading an environment", readRoles...),
	"POST /api/v1/tenants/:tenant/environments/:env/hosts":               need(tenantParam, "authorising hosts", adminRoles...),
	"POST /api/v1/tenants/:tenant/environments/:env/gates":               need(tenantParam, "starting an approval gate", deployRoles...),
	"GET /api/v1/tenants/:tenant/environments/:env/applications":         need(tenantParam, "reading applications", readRoles...),
	"POST /api/v1/tenants/:tenant/environments/:env/applications":        need(tenantParam, "deploying", deployRoles...),
	"GET /api/v1/tenants/:tenant/environments/:env/applications/:app":    need(tenantParam, "reading an application", readRoles...),
	"DELETE /api/v1/tenants/:tenant/environments/:env/applications/:app": need(tenantParam, "deleting an application", deployRoles...),

	"GET /api/v1/services/:id":               need(serviceParam, "reading a service", readRoles...),
	"GET /api/v1/services/:id/pool":          need(serviceParam, "reading a pool", readRoles...),
	"POST /api/v1/services/:id/scale":        need(serviceParam, "scaling", deployRoles...),
	"GET /api/v1/services/:id/releases":      need(serviceParam, "reading releases", readRoles...),
	"POST /api/v1/services/:id/releases":     need(serviceParam, "releasing", deployRoles...),
	"POST /api/v1/services/:id/rollback":     need(serviceParam, "rolling back", rollbackRoles...),
	"POST /api/v1/services/:id/grey":         need(serviceParam, "starting a grey release", deployRoles...),
	"GET /api/v1/services/:id/grey":          need(serviceParam, "reading a grey release", readRoles...),
	"POST /api/v1/services/:id/grey/:action": need(serviceParam, "promoting, aborting or pausing a grey release", rollbackRoles...),
	"POST /api/v1/services/:id/clone":        need(serviceParam, "cloning a service", deployRoles...),
	"GET /api/v1/releases/:id":               need(releaseScope, "reading a release", readRoles...),
	"POST /api/v1/instances/:name/commit":    need(instanceParam, "committing an instance", deployRoles...),
	"GET /api/v1/firewall/openings":          need(platform, "reading firewall openings", readRoles...),
	"GET /api/v1/cmdb":                       need(platform, "reading the CMDB", readRoles...),
	"POST /api/v1/cmdb/sync":                 need(platform, "syncing the CMDB", adminRoles...),
	"GET /api/v1/runs":                       anyone, // narrowed in the handler
	"GET /api/v1/runs/:id":                   need(runScope, "reading a run", readRoles...),
	"GET /api/v1/runs/:id/events":            need(runScope, "following a run", readRoles...),
	"GET /api/v1/runs/:id/history":           need(runScope, "reading a run's history", readRoles...),
	"POST /api/v1/runs/:id/retry":            retryPolicy,
	"GET /api/v1/services/:id/history":       need(serviceParam, "reading a service's history", readRoles...),
	"GET /api/v1/instances/:name/stats":      need(instanceParam, "reading an instance's stats", readRoles...),
	"GET /api/v1/instances/:name/logs":       need(instanceParam, "reading an instance's logs", readRoles...),
	"POST /api/v1/runs/:id/cancel":           cancelPolicy,
	"POST /api/v1/runs/:id/firewall/confirm": need(runScope, "confirming a firewall ticket", ticketRoles...),
	"GET /api/v1/audit":                      need(platform, "reading the audit log", auditRoles...),

	"GET /api/v1/approvals":             anyone, // narrowed in the handler
	"GET /api/v1/approvals/:id":         anyone, // checked in the handler
	"POST /api/v1/approvals/:id/decide": anyone, // the store checks the approval's roles
	"GET /api/v1/me":                    anyone,
	"GET /api/v1/users":                 need(platform, "listing users", adminRoles...),
	"POST /api/v1/users":                need(platform, "creating users", adminRoles...),
	"POST /api/v1/users/:name/roles":    anyone, // needs admin on the tenant in the body; checked in the handler
	"GET /api/v1/tokens":                anyone,
	"POST /api/v1/tokens":               anyone,
	"DELETE /api/v1/tokens/:id":         anyone, // own tokens; admins any
}

// authorize applies the route's policy.
func (s *Server) authorize(c *gin.Context) {
	p := principalOf(c)
	if p == nil {
		s.fail(c, &berth.Error{Code: berth.EUnauthorized, Message: "sign in, or send Authorization: Bearer <token>"})
		return
	}
	pol, ok := policies[c.Request.Method+" "+c.FullPath()]
	if !ok {
		pol = need(platform, c.Request.Method+" "+c.FullPath(), adminRoles...)
	}
	if err := pol(s, c, p); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}

// ----- users, roles, tokens -----

type userRequest struct {
	Name     string        `json:"name"`
	Password string        `json:"password"`
	Roles    []roleRequest `json:"roles"`
}

type roleRequest struct {
	// Tenant is a tenant's name; empty grants the role platform-wide.
	Tenant string     `json:"tenant"`
	Role   berth.Role `json:"role"`
}

// userView is a user as the API shows it: never the password hash.
type userView struct {
	*store.User
	Roles []roleView `json:"roles"`
}

type roleView struct {
	Tenant string     `json:"tenant"` // "" is platform-wide
	Role   berth.Role `json:"role"`
}

func (s *Server) view(ctx context.Context, u *store.User, bs []store.RoleBinding) userView {
	v := userView{User: u, Roles: []roleView{}}
	for _, b := range bs {
		rv := roleView{Role: b.Role}
		if b.TenantID != 0 {
			if t, err := s.store.TenantByID(ctx, b.TenantID); err == nil {
				rv.Tenant = t.Name
			}
		}
		v.Roles = append(v.Roles, rv)
	}
	return v
}

func (s *Server) createUser(c *gin.Context) {
	ctx := c.Request.Context()
	var req userRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := checkName("user", req.Name); err != nil {
		s.fail(c, err)
		return
	}
	tids := make([]uint, len(req.Roles))
	for i, r := range req.Roles {
		tid, err := s.roleTenant(c, r)
		if err != nil {
			s.fail(c, err)
			return
		}
		tids[i] = tid
	}
	u, err := s.store.CreateUser(ctx, req.Name, req.Password)
	if err != nil {
		s.fail(c, err)
		return
	}
	for i, r := range req.Roles {
		if err := s.store.GrantRole(ctx, u.ID, tids[i], r.Role); err != nil {
			s.fail(c, err)
			return
		}
	}
	bs, err := s.store.RoleBindings(ctx, u.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "user "+u.Name)
	c.JSON(http.StatusCreated, s.view(ctx, u, bs))
}

func (s *Server) listUsers(c *gin.Context) {
	ctx := c.Request.Context()
	us, err := s.store.Users(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := []userView{}
	for i := range us {
		bs, err := s.store.RoleBindings(ctx, us[i].ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		out = append(out, s.view(ctx, &us[i], bs))
	}
	c.JSON(http.StatusOK, gin.H{"users": out})
}

// roleTenant checks a role request and that the caller is an admin where
// the role would apply: platform admins grant anywhere, a tenant's admins
// grant on their tenant.
func (s *Server) roleTenant(c *gin.Context, r roleRequest) (uint, error) {
	if !berth.IsRole(string(r.Role)) {
		return 0, badRequest(fmt.Sprintf("role %q must be one of %s", r.Role, strings.Join(berth.Names(berth.Roles), ", ")))
	}
	var tid uint
	if r.Tenant != "" {
		t, err := s.store.TenantByName(c.Request.Context(), r.Tenant)
		if err != nil {
			return 0, err
		}
		tid = t.ID
	}
	if !principalOf(c).has(tid, berth.RoleAdmin) {
		return 0, denied(s, c, tid, "granting roles", nil)
	}
	return tid, nil
}

func (s *Server) grantRole(c *gin.Context) {
	ctx := c.Request.Context()
	var req roleRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	u, err := s.store.UserByName(ctx, c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	tid, err := s.roleTenant(c, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.GrantRole(ctx, u.ID, tid, req.Role); err != nil {
		s.fail(c, err)
		return
	}
	bs, err := s.store.RoleBindings(ctx, u.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", fmt.Sprintf("%s %s on %q", u.Name, req.Role, req.Tenant))
	c.JSON(http.StatusOK, s.view(ctx, u, bs))
}

func (s *Server) me(c *gin.Context) {
	p := principalOf(c)
	c.JSON(http.StatusOK, s.view(c.Request.Context(), p.User, p.Bindings))
}

type tokenRequest struct {
	Name     string `json:"name"`
	TTLHours int    `json:"ttlHours"`
}

// createToken makes a token for the caller; its secret is in this answer only.
func (s *Server) createToken(c *gin.Context) {
	var req tokenRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Name == "" || len(req.Name) > 64 {
		s.fail(c, badRequest("name must be 1-64 characters, saying what the token is for"))
		return
	}
	if req.TTLHours < 0 || req.TTLHours > 24*366 {
		s.fail(c, badRequest("ttlHours must be between 0 (never expires) and 8784"))
		return
	}
	p := principalOf(c)
	secret, t, err := s.store.CreateToken(c.Request.Context(), p.User.ID, req.Name, time.Duration(req.TTLHours)*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "token "+strconv.FormatUint(uint64(t.ID), 10))
	c.JSON(http.StatusCreated, gin.H{"token": t, "secret": secret, "note": "the secret is shown only now; berth keeps only its hash"})
}

func (s *Server) listTokens(c *gin.Context) {
	ts, err := s.store.Tokens(c.Request.Context(), principalOf(c).User.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": ts})
}

func (s *Server) revokeToken(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := idParam(c, "token")
	if err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.Token(ctx, uint(id))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := principalOf(c)
	if t.UserID != p.User.ID && !p.has(0, berth.RoleAdmin) {
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "you may revoke only your own tokens"})
		return
	}
	if err := s.store.RevokeToken(ctx, t.ID); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": t.ID, "revoked": true})
}

// ----- browser sign-in -----

type loginRequest struct {
	Name     string `json:"name" form:"name"`
	Password string `json:"password" form:"password"`
	Next     string `json:"next" form:"next"`
}

// login checks a password and starts a session. The Origin check stops a
// foreign page from signing a victim in as the attacker (login CSRF).
func (s *Server) login(c *gin.Context) {
	ctx := c.Request.Context()
	form := !strings.HasPrefix(c.ContentType(), "application/json")
	var req loginRequest
	if err := c.ShouldBind(&req); err != nil {
		s.fail(c, badRequest("name and password are required"))
		return
	}
	if !sameOrigin(c.Request) {
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "cross-origin sign-in refused"})
		return
	}
	// The peer's own address: X-Forwarded-For is the client's to choose.
	addr := c.RemoteIP()
	if wait := s.logins.blocked(req.Name, addr); wait > 0 {
		secs, msg := retryText(wait)
		c.Header("Retry-After", strconv.Itoa(secs))
		s.auditEvent(c, req.Name, "POST /login", "429", "too many failed sign-ins")
		if form {
			s.render(c, http.StatusTooManyRequests, "login", "Sign in", "", struct{ Name, Next, Error string }{req.Name, req.Next, msg})
			return
		}
		s.fail(c, &berth.Error{Code: berth.ERateLimited, Reason: "too_many_requests", Message: msg})
		return
	}
	u, err := s.store.CheckPassword(ctx, req.Name, req.Password)
	if errors.Is(err, store.ErrBadCredentials) {
		s.logins.failed(req.Name, addr)
	} else if err == nil {
		s.logins.succeeded(req.Name, addr)
	}
	outcome := "200"
	if err != nil {
		outcome = "401"
	}
	s.auditEvent(c, req.Name, "POST /login", outcome, "")
	if errors.Is(err, store.ErrBadCredentials) {
		if form {
			c.Status(http.StatusUnauthorized)
			s.renderLogin(c, req.Name, req.Next, "Unknown user or wrong password. Check both and try again.")
			return
		}
		s.fail(c, &berth.Error{Code: berth.EUnauthorized, Message: "unknown user or wrong password"})
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	secret, _, err := s.store.CreateSession(ctx, u.ID, sessionTTL)
	if err != nil {
		s.fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true,
		Secure: c.Request.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL / time.Second)})
	if form {
		c.Redirect(http.StatusSeeOther, safeNext(req.Next))
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": u.Name})
}

// safeNext keeps redirects after sign-in on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/inbox"
	}
	return next
}

func (s *Server) logout(c *gin.Context) {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		_ = s.store.DeleteSession(c.Request.Context(), ck)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, "/login")
}

// auditEvent appends one audit event outside the audit middleware (sign-ins).
func (s *Server) auditEvent(c *gin.Context, who, action, outcome, detail string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Second)
	defer cancel()
	ev := store.AuditEvent{Actor: who, Action: action, Target: c.Request.URL.Path, Remote: c.ClientIP(), Outcome: outcome, Detail: detail}
	if err := s.store.Audit(ctx, ev); err != nil {
		s.log.Error("audit not recorded", "error", err, "action", action)
	}
}

// visibleTenants keeps the tenants the caller holds a role on.
func visibleTenants(ts []store.Tenant, p *principal) []store.Tenant {
	out := []store.Tenant{}
	for _, t := range ts {
		if p.has(t.ID, readRoles...) {
			out = append(out, t)
		}
	}
	return out
}
