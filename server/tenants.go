package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

type nameRequest struct {
	Name string `json:"name"`
}

func (s *Server) createTenant(c *gin.Context) {
	var req nameRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := checkName("tenant", req.Name); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.CreateTenant(c.Request.Context(), req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

func (s *Server) listTenants(c *gin.Context) {
	ts, err := s.store.Tenants(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if p := principalOf(c); p != nil && !p.platformWide() {
		ts = visibleTenants(ts, p)
	}
	c.JSON(http.StatusOK, gin.H{"tenants": ts})
}

type environmentRequest struct {
	Name             string `json:"name"`
	Firewall         string `json:"firewall"`
	TicketTimeoutSec int    `json:"ticketTimeoutSec"`
	// The approval policy; when absent, on for an environment named prod.
	RequireComment *bool `json:"requireComment"`
	SeparateDuties *bool `json:"separateDuties"`
	// ApproveReleases makes every release and rollback wait for an
	// approver first; on by default for an environment named prod.
	ApproveReleases *bool `json:"approveReleases"`
	// Production marks the environment as production: a terminal into
	// its instances needs a release manager. On by default for prod.
	Production *bool `json:"production"`
	// Limits are the services' resource defaults and maximums; when absent,
	// defaultLimits.
	Limits *berth.Limits `json:"limits"`
}

// defaultLimits keep one service from taking a whole shared host when its
// file says nothing: half a GiB, one CPU, 512 processes and threads.
var defaultLimits = berth.Limits{DefaultMemoryBytes: 512 << 20, DefaultNanoCPUs: 1_000_000_000, DefaultPids: 512}

func (s *Server) createEnvironment(c *gin.Context) {
	ctx := c.Request.Context()
	var req environmentRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := checkName("environment", req.Name); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if req.Firewall != "" && req.Firewall != "ticket" && req.Firewall != "change" && req.Firewall != "none" {
		s.fail(c, badRequest("firewall must be empty (the platform's driver), ticket, change (the network team's change API) or none"))
		return
	}
	if req.TicketTimeoutSec < 0 || req.TicketTimeoutSec > 30*24*3600 {
		s.fail(c, badRequest("ticketTimeoutSec must be between 0 and 30 days"))
		return
	}
	limits := defaultLimits
	if req.Limits != nil {
		limits = *req.Limits
	}
	if err := limits.Check(); err != nil {
		s.fail(c, badRequest("limits: "+err.Error()))
		return
	}
	e, err := s.store.CreateEnvironment(ctx, t.ID, req.Name, func(e *store.Environment) {
		e.Firewall, e.TicketTimeoutSec, e.Limits = req.Firewall, req.TicketTimeoutSec, limits
		e.RequireComment, e.SeparateDuties = req.Name == "prod", req.Name == "prod"
		if req.RequireComment != nil {
			e.RequireComment = *req.RequireComment
		}
		if req.SeparateDuties != nil {
			e.SeparateDuties = *req.SeparateDuties
		}
		e.ApproveReleases = req.Name == "prod"
		if req.ApproveReleases != nil {
			e.ApproveReleases = *req.ApproveReleases
		}
		e.Prod = req.Name == "prod"
		if req.Production != nil {
			e.Prod = *req.Production
		}
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, e)
}

func (s *Server) listEnvironments(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	es, err := s.store.Environments(ctx, t.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"environments": es})
}

func (s *Server) environment(c *gin.Context) (*store.Environment, error) {
	return s.store.Environment(c.Request.Context(), c.Param("tenant"), c.Param("env"))
}

func (s *Server) getEnvironment(c *gin.Context) {
	e, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

type authoriseRequest struct {
	Hosts []string `json:"hosts"`
}

// authoriseHosts lets an environment place instances on the named hosts.
func (s *Server) authoriseHosts(c *gin.Context) {
	ctx := c.Request.Context()
	var req authoriseRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Hosts) == 0 {
		s.fail(c, badRequest("hosts must name at least one host"))
		return
	}
	e, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ids := make([]uint, 0, len(req.Hosts))
	for _, name := range req.Hosts {
		h, err := s.store.HostByName(ctx, name)
		if err != nil {
			s.fail(c, err)
			return
		}
		ids = append(ids, h.ID)
	}
	if err := s.store.AuthoriseHosts(ctx, e.ID, ids); err != nil {
		s.fail(c, err)
		return
	}
	e, err = s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// setLimits replaces an environment's resource defaults and maximums
// (admins): running instances keep theirs until their next change.
func (s *Server) setLimits(c *gin.Context) {
	l, ok := bindPolicy[berth.Limits](s, c, "limits")
	if !ok {
		return
	}
	s.setEnvironmentPolicy(c, func(e *store.Environment) error {
		e.Limits = l
		return s.store.SetEnvironmentLimits(c.Request.Context(), e.ID, l)
	})
}

// bindPolicy reads a limits or quota body and checks it, answering 400 when
// it is not valid.
func bindPolicy[T interface{ Check() error }](s *Server, c *gin.Context, what string) (T, bool) {
	var v T
	if err := bind(c, &v); err != nil {
		s.fail(c, err)
		return v, false
	}
	if err := v.Check(); err != nil {
		s.fail(c, badRequest(what+": "+err.Error()))
		return v, false
	}
	return v, true
}

// setEnvironmentPolicy applies a change to the environment in the path and
// answers with the environment.
func (s *Server) setEnvironmentPolicy(c *gin.Context, set func(*store.Environment) error) {
	e, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := set(e); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// setTenantQuota: PUT /api/v1/tenants/:tenant/quota (platform admins: a
// tenant's own admins may not raise what bounds them).
func (s *Server) setTenantQuota(c *gin.Context) {
	q, ok := bindPolicy[berth.Quota](s, c, "quota")
	if !ok {
		return
	}
	t, err := s.store.TenantByName(c.Request.Context(), c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.SetTenantQuota(c.Request.Context(), t.ID, q); err != nil {
		s.fail(c, err)
		return
	}
	t.Quota = q
	c.JSON(http.StatusOK, t)
}

// setEnvironmentQuota: PUT …/environments/:env/quota (the tenant's admins;
// the tenant's own quota still bounds it).
func (s *Server) setEnvironmentQuota(c *gin.Context) {
	q, ok := bindPolicy[berth.Quota](s, c, "quota")
	if !ok {
		return
	}
	s.setEnvironmentPolicy(c, func(e *store.Environment) error {
		e.Quota = q
		return s.store.SetEnvironmentQuota(c.Request.Context(), e.ID, q)
	})
}

// getCapacity: GET /api/v1/capacity is used against allocatable per host
// (platform readers) and against quotas per tenant and environment (the
// caller's tenants).
func (s *Server) getCapacity(c *gin.Context) {
	p := principalOf(c)
	capa, err := s.store.Capacity(c.Request.Context(), p.tenantIDs(), p.platformWide())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, capa)
}
