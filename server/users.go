package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

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
