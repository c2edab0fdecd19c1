package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

type loginRequest struct {
	Name     string `json:"name" form:"name"`
	Password string `json:"password" form:"password"`
	Next     string `json:"next" form:"next"`
}

// loginPage is the sign-in form; next is where to go once signed in.
func (s *Server) loginPage(c *gin.Context) { s.renderLogin(c, "", c.Query("next"), "") }

func (s *Server) renderLogin(c *gin.Context, name, next, msg string) {
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnauthorized
	}
	s.render(c, status, "login", "Sign in", "", struct{ Name, Next, Error string }{name, next, msg})
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
	if !s.sameOrigin(c.Request) {
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "cross-origin sign-in refused"})
		return
	}
	// The client's address: the peer's own, unless the peer is a trusted
	// proxy (TrustedProxies); otherwise X-Forwarded-For is the client's to choose.
	addr := c.ClientIP()
	if wait := s.logins.blocked(ctx, req.Name, addr); wait > 0 {
		secs, msg := retryText(wait)
		c.Header("Retry-After", strconv.Itoa(secs))
		if s.logins.refusedAttempt(addr) {
			s.auditEvent(c, req.Name, "POST /login", "429",
				"too many failed sign-ins; further refused attempts from this address are counted, not recorded one by one")
		}
		if form {
			s.render(c, http.StatusTooManyRequests, "login", "Sign in", "", struct{ Name, Next, Error string }{req.Name, req.Next, msg})
			return
		}
		s.fail(c, &berth.Error{Code: berth.ERateLimited, Reason: "too_many_requests", Message: msg})
		return
	}
	if n, since := s.logins.settle(addr); n > 0 {
		s.auditEvent(c, req.Name, "POST /login", "429",
			fmt.Sprintf("%d more sign-in attempts from %s were refused between %s and now", n, addr, since.UTC().Format(time.RFC3339)))
	}
	u, err := s.store.CheckPassword(ctx, req.Name, req.Password)
	if errors.Is(err, store.ErrBadCredentials) {
		if ferr := s.logins.failed(ctx, req.Name, addr); ferr != nil {
			s.log.Error("count a failed sign-in", "error", ferr)
		}
	} else if err == nil {
		if ferr := s.logins.succeeded(ctx, req.Name, addr); ferr != nil {
			s.log.Error("clear failed sign-ins", "error", ferr)
		}
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
		Secure: s.secureCookies(c.Request), SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL / time.Second)})
	if form {
		c.Redirect(http.StatusSeeOther, safeNext(req.Next))
		return
	}
	c.JSON(http.StatusOK, gin.H{"user": u.Name})
}

// safeNext keeps redirects after sign-in on this site: a path of this
// site only. Browsers drop tabs and newlines from URLs and read a backslash
// as a slash, so "/\t/evil.com" would become "//evil.com", another host;
// any control character, space or backslash sends the user to the inbox.
func safeNext(next string) string {
	const home = "/inbox"
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' || unicode.IsSpace(r) {
			return home
		}
	}
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return home
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return home
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
