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
	Name string `json:"name"`
	// TTLHours is the token's lifetime: 0 is the deployment's longest, -1 is
	// never expiring (only where the deployment allows it).
	TTLHours int `json:"ttlHours"`
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
	maxHours := int(s.cfg.MaxTokenTTL / time.Hour)
	ttl := time.Duration(req.TTLHours) * time.Hour
	switch {
	case req.TTLHours == -1 && s.cfg.AllowEternalTokens:
		ttl = 0
	case req.TTLHours == -1:
		s.fail(c, badRequest(fmt.Sprintf("tokens that never expire are not allowed here; ttlHours must be 1-%d (0: %d)", maxHours, maxHours)))
		return
	case req.TTLHours == 0:
		ttl = s.cfg.MaxTokenTTL
	case req.TTLHours < 0 || req.TTLHours > maxHours:
		s.fail(c, badRequest(fmt.Sprintf("ttlHours must be 1-%d, the longest a token lives here (0: %d)", maxHours, maxHours)))
		return
	}
	p := principalOf(c)
	secret, t, err := s.store.CreateToken(c.Request.Context(), p.User.ID, req.Name, ttl)
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

// userParam is the user a /users/:name route names.
func (s *Server) userParam(c *gin.Context) (*store.User, error) {
	return s.store.UserByName(c.Request.Context(), c.Param("name"))
}

// setUserDisabled: POST /users/:name/disable and /enable. Disabling ends
// every session and token of the user at once.
func (s *Server) setUserDisabled(disabled bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, err := s.userParam(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		if disabled && u.ID == principalOf(c).User.ID {
			s.fail(c, &berth.Error{Code: berth.EConflict, Message: "you cannot disable yourself; ask another admin"})
			return
		}
		if err := s.store.SetUserDisabled(c.Request.Context(), u.ID, disabled); err != nil {
			s.fail(c, err)
			return
		}
		c.Set("berth.audit", fmt.Sprintf("user %s disabled=%t", u.Name, disabled))
		c.JSON(http.StatusOK, gin.H{"user": u.Name, "disabled": disabled})
	}
}

// revokeRole: DELETE /users/:name/roles/:role?tenant=NAME; the same admins
// who may grant a role may remove it.
func (s *Server) revokeRole(c *gin.Context) {
	u, err := s.userParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	req := roleRequest{Tenant: c.Query("tenant"), Role: berth.Role(c.Param("role"))}
	tid, err := s.roleTenant(c, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.RevokeRole(c.Request.Context(), u.ID, tid, req.Role); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", fmt.Sprintf("%s loses %s on %q", u.Name, req.Role, req.Tenant))
	c.JSON(http.StatusOK, gin.H{"user": u.Name, "role": req.Role, "tenant": req.Tenant, "removed": true})
}

type passwordRequest struct {
	Current  string `json:"current"`
	Password string `json:"password"`
}

// changePassword: PUT /me/password. The current password is asked for, so
// a session left open on someone's desk cannot lock its owner out.
func (s *Server) changePassword(c *gin.Context) {
	var req passwordRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	p := principalOf(c)
	if _, err := s.store.CheckPassword(c.Request.Context(), p.User.Name, req.Current); err != nil {
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "the current password is wrong"})
		return
	}
	if err := s.store.SetPassword(c.Request.Context(), p.User.ID, req.Password); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": p.User.Name, "changed": true, "note": "every session of yours has ended; sign in again"})
}

// resetPassword: POST /users/:name/password, for platform admins: a new
// password for someone who lost theirs; their sessions end.
func (s *Server) resetPassword(c *gin.Context) {
	var req passwordRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	u, err := s.userParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.SetPassword(c.Request.Context(), u.ID, req.Password); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "password reset for "+u.Name)
	c.JSON(http.StatusOK, gin.H{"user": u.Name, "reset": true})
}

// userTokens: GET /users/:name/tokens, for platform admins: anyone's tokens
// (never their secrets), to find one to revoke.
func (s *Server) userTokens(c *gin.Context) {
	u, err := s.userParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ts, err := s.store.Tokens(c.Request.Context(), u.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": u.Name, "tokens": ts})
}
