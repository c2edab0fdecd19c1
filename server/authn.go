package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
		if !s.sameOrigin(c.Request) {
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

// sameOrigin says the request names this site as its origin: the public
// URL when one is set (behind a proxy the request's own host and scheme are
// the proxy's), else the host the request came to. Browsers send Origin on
// every cross-origin and same-origin POST; Referer is the fallback. Neither
// present is refused: a browser always sends one of them here.
func (s *Server) sameOrigin(r *http.Request) bool {
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
	if pub := s.publicURL(); pub != nil {
		return u.Scheme == pub.Scheme && strings.EqualFold(u.Host, pub.Host)
	}
	want := "http"
	if r.TLS != nil {
		want = "https"
	}
	return u.Scheme == want && strings.EqualFold(u.Host, r.Host)
}

// publicURL is the configured public URL, or nil (New checked it parses).
func (s *Server) publicURL() *url.URL {
	if s.cfg.PublicURL == "" {
		return nil
	}
	u, _ := url.Parse(s.cfg.PublicURL)
	return u
}

// secureCookies says session cookies need HTTPS: the request came over TLS,
// or people reach berth over https through a proxy.
func (s *Server) secureCookies(r *http.Request) bool {
	pub := s.publicURL()
	return r.TLS != nil || (pub != nil && pub.Scheme == "https")
}
