package server

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
)

// SecretSealer encrypts secret values before they reach the database, with a
// key the server reads from a file or the environment.
type SecretSealer interface {
	Seal(plain, aad []byte) (keyID string, sealed []byte, err error)
}

// maxSecretBytes bounds one value: secrets are passwords, keys and
// certificates, and each is copied into every instance that mounts it.
const maxSecretBytes = 32 << 10

type secretRequest struct {
	Name string `json:"name"`
	// Env, when set, makes the value the environment's own; empty is the
	// tenant's default for every environment.
	Env   string `json:"env"`
	Value string `json:"value"`
}

// putSecret stores a new version of a secret. The value is write-only: no
// answer, log or audit row ever holds it.
func (s *Server) putSecret(c *gin.Context) {
	ctx := c.Request.Context()
	if s.cfg.Secrets == nil {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: "this server has no secret key configured"})
		return
	}
	var req secretRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := berth.CheckSecretName(req.Name); err != nil {
		s.fail(c, badRequest(err.Error()))
		return
	}
	switch {
	case req.Value == "":
		s.fail(c, badRequest("value is empty"))
		return
	case len(req.Value) > maxSecretBytes:
		s.fail(c, badRequest(fmt.Sprintf("value is %d bytes; at most %d", len(req.Value), maxSecretBytes)))
		return
	case !utf8.ValidString(req.Value):
		s.fail(c, badRequest("value must be UTF-8 text (encode binary values, e.g. as base64)"))
		return
	}
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if req.Env != "" {
		if _, err := s.store.Environment(ctx, t.Name, req.Env); err != nil {
			s.fail(c, err)
			return
		}
	}
	keyID, sealed, err := s.cfg.Secrets.Seal([]byte(req.Value), store.SecretAAD(t.ID, req.Env, req.Name))
	if err != nil {
		s.fail(c, err)
		return
	}
	sec := &store.Secret{TenantID: t.ID, Env: req.Env, Name: req.Name, KeyID: keyID, Sealed: sealed,
		Size: len(req.Value), CreatedBy: actor(c)}
	if err := s.store.AddSecretVersion(ctx, sec); err != nil {
		s.fail(c, err)
		return
	}
	scope := "every environment"
	if req.Env != "" {
		scope = "environment " + req.Env
	}
	c.Set("berth.audit", fmt.Sprintf("secret %s version %d for %s", sec.Name, sec.Version, scope))
	sec.Sealed = nil
	c.JSON(http.StatusCreated, sec)
}

// listSecrets shows the newest version of each secret: names, sizes, who
// and when, never values.
func (s *Server) listSecrets(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	secs, err := s.store.Secrets(ctx, t.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"secrets": secs})
}

// checkSecrets refuses, before anything starts, a compose file that mounts
// a secret the environment does not have.
func (s *Server) checkSecrets(c *gin.Context, env *store.Environment, spec *compose.Spec) error {
	names := spec.SecretNames()
	if len(names) == 0 {
		return nil
	}
	missing, err := s.store.MissingSecrets(c.Request.Context(), env.TenantID, env.Name, names)
	if err != nil || len(missing) == 0 {
		return err
	}
	return badRequest(fmt.Sprintf("the compose file mounts secrets that tenant %s has no value for in environment %s: %s; store each with POST /api/v1/tenants/%s/secrets {\"name\": ..., \"value\": ...}",
		env.Tenant.Name, env.Name, strings.Join(missing, ", "), env.Tenant.Name))
}
