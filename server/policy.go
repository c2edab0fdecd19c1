package server

import (
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

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
	// operateRoles restart, stop and start instances: a release manager
	// may, as the one who can force it on a service's last instance.
	operateRoles = []berth.Role{berth.RoleDeveloper, berth.RoleReleaseManager}
	adminRoles   = []berth.Role{berth.RoleAdmin}
	ticketRoles  = []berth.Role{berth.RoleApprover, berth.RoleReleaseManager}
	auditRoles   = []berth.Role{berth.RoleReleaseManager}
)

// policy says who may use a route. A public route is served to anyone,
// signed in or not, so it must hold no secrets; every other route signs the
// caller in first and then asks check.
type policy struct {
	public bool
	check  func(s *Server, c *gin.Context, p *principal) error
}

// scope finds the tenant a route's resource belongs to (0: the platform).
type scope func(s *Server, c *gin.Context) (uint, error)

var (
	// public needs no sign-in: for what holds no secret (health, the API's
	// description, static files) and for signing in itself.
	public = policy{public: true}
	// anyone signed in; what a list shows is narrowed in its handler.
	anyone = policy{check: func(*Server, *gin.Context, *principal) error { return nil }}
	// cancelPolicy and retryPolicy depend on the run, not only its tenant.
	cancelPolicy = policy{check: mayCancel}
	retryPolicy  = policy{check: mayRetry}
)

func need(sc scope, what string, roles ...berth.Role) policy {
	return policy{check: func(s *Server, c *gin.Context, p *principal) error {
		tid, err := sc(s, c)
		if err != nil {
			return err
		}
		if !p.has(tid, roles...) {
			return denied(s, c, tid, what, roles)
		}
		return nil
	}}
}

// readable guards a page of one resource (kind names it): any role on its
// tenant may see it. Unlike need, the refusal says whose the resource is
// rather than which roles would do, as every role reads.
func readable(sc scope, kind string) policy {
	return policy{check: func(s *Server, c *gin.Context, p *principal) error {
		tid, err := sc(s, c)
		if err != nil {
			return err
		}
		if !p.has(tid, readRoles...) {
			id, _ := idParam(c, kind)
			return &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("%s %d belongs to a tenant you hold no role on", kind, id)}
		}
		return nil
	}}
}

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

// mayCancel: release managers and admins cancel any run; a developer
// cancels the runs they started.
func mayCancel(s *Server, c *gin.Context, p *principal) error {
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

// allow applies a route's policy to the signed-in caller.
func (s *Server) allow(c *gin.Context, pol policy) error {
	p := principalOf(c)
	if p == nil {
		return &berth.Error{Code: berth.EUnauthorized, Message: "sign in, or send Authorization: Bearer <token>"}
	}
	return pol.check(s, c, p)
}

// authorize applies an API route's policy.
func (s *Server) authorize(pol policy) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.allow(c, pol); err != nil {
			s.fail(c, err)
			return
		}
		c.Next()
	}
}

// authorizePage applies a page's policy; a refusal is an error page.
func (s *Server) authorizePage(pol policy) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.allow(c, pol); err != nil {
			s.renderError(c, err)
			c.Abort()
			return
		}
		c.Next()
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
