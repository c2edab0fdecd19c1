package server

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

// lastRemote is the address the audit log recorded for the newest event.
func lastRemote(t *testing.T, f *apiFixture) string {
	t.Helper()
	evs, _, err := f.st.QueryAudit(context.Background(), store.AuditFilter{Sort: "-at", Limit: 1})
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	return evs[0].Remote
}

func postForwarded(t *testing.T, f *apiFixture, name, forwardedFor string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/tenants", strings.NewReader(`{"name":"`+name+`"}`))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", forwardedFor)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
}

// Without a trusted proxy, a client cannot choose the address the audit log
// (and the sign-in limiter) records it under; behind a trusted one, the
// client's address is the one the proxy forwards.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	f := newAPI(t)
	postForwarded(t, f, "direct", "203.0.113.9")
	require.Equal(t, "127.0.0.1", lastRemote(t, f))

	p := newAPIWith(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	postForwarded(t, p, "proxied", "203.0.113.9")
	require.Equal(t, "203.0.113.9", lastRemote(t, p))
}

// Behind an HTTPS proxy the request reaches berth over plain HTTP on an
// inner address: the Origin check holds the browser to the public URL, and
// the session cookie is Secure.
func TestPublicURLBehindAProxy(t *testing.T) {
	f := newAPIWith(t, func(c *Config) { c.PublicURL = "https://berth.example.com" })
	signIn := func(origin string) *http.Response {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(url.Values{"name": {"admin"}, "password": {"admin-password"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := cl.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := signIn("https://berth.example.com")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	require.NotNil(t, session)
	require.True(t, session.Secure, "the cookie never travels over plain HTTP")

	require.Equal(t, http.StatusForbidden, signIn(f.srv.URL).StatusCode, "the inner address is not the site people use")
	require.Equal(t, http.StatusForbidden, signIn("http://berth.example.com").StatusCode, "nor is plain HTTP")
}
