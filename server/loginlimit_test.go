package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestLoginLimiterWindow(t *testing.T) {
	ctx := context.Background()
	l := newLoginLimiter(nil)
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := 0; i < loginMaxFailures; i++ {
		require.Zero(t, l.blocked(ctx, "Dana", "10.0.0.1"))
		require.NoError(t, l.failed(ctx, "Dana", "10.0.0.1"))
		now = now.Add(5 * time.Second)
	}
	wait := l.blocked(ctx, "dana", "10.0.0.1")
	require.Equal(t, 35*time.Second, wait, "until the oldest of the five failures is a minute old")
	require.Zero(t, l.blocked(ctx, "dana", "10.0.0.2"), "another address is not held back")
	require.Zero(t, l.blocked(ctx, "bob", "10.0.0.1"), "another user is not held back")
	now = now.Add(wait)
	require.Zero(t, l.blocked(ctx, "dana", "10.0.0.1"))
	require.NoError(t, l.failed(ctx, "dana", "10.0.0.1"))
	require.NotZero(t, l.blocked(ctx, "dana", "10.0.0.1"), "four failures are still in the window")
	require.NoError(t, l.succeeded(ctx, "dana", "10.0.0.1"))
	require.Zero(t, l.blocked(ctx, "dana", "10.0.0.1"))
	secs, msg := retryText(1500 * time.Millisecond)
	require.Equal(t, 2, secs)
	require.Contains(t, msg, "Try again in 2 seconds")
}

// TestLoginRateLimit: the sixth failed sign-in within a minute, by the form
// or by JSON, is refused with 429 and says when to try again; even the
// right password waits; other users are not affected.
func TestLoginRateLimit(t *testing.T) {
	f := newAPI(t)
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})

	login := func(name, password string, form bool) (*http.Response, string) {
		var req *http.Request
		if form {
			req, _ = http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(url.Values{"name": {name}, "password": {password}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			b, _ := json.Marshal(loginRequest{Name: name, Password: password})
			req, _ = http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Origin", f.srv.URL)
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for i := 0; i < loginMaxFailures; i++ {
		resp, _ := login("dana", "wrong", i%2 == 0)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, body := login("dana", "dana-password", false)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "even the right password waits")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, "too_many_requests")
	require.Contains(t, body, "Try again in")
	resp, body = login("dana", "wrong", true)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Contains(t, body, "Too many failed sign-ins", "the form says it on the page")

	resp, _ = login("bob", "bob-password", true)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "another user signs in")

	var audit struct{ Events []store.AuditEvent }
	code, _ = f.call("GET", "/api/v1/audit?actor=dana&sort=-at", f.token, nil, &audit)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "429", audit.Events[0].Outcome, "refused sign-ins are audited")
}

// One address trying many user names is held back as a whole once it
// passes the address-wide cap, though no single name reached its own.
func TestLoginLimiterCapsAnAddressAcrossNames(t *testing.T) {
	ctx := context.Background()
	l := newLoginLimiter(nil)
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	for i := 0; i < loginMaxAddrFailures; i++ {
		name := "user" + strconv.Itoa(i)
		require.Zero(t, l.blocked(ctx, name, "10.0.0.9"))
		require.NoError(t, l.failed(ctx, name, "10.0.0.9"))
	}
	require.NotZero(t, l.blocked(ctx, "somebody-new", "10.0.0.9"), "the address is held back for every name")
	require.Zero(t, l.blocked(ctx, "somebody-new", "10.0.0.8"), "another address is not")
	require.NoError(t, l.succeeded(ctx, "user1", "10.0.0.9"))
	require.NotZero(t, l.blocked(ctx, "user1", "10.0.0.9"), "one success does not clear the address")
	now = now.Add(loginWindow)
	require.Zero(t, l.blocked(ctx, "somebody-new", "10.0.0.9"))
}

// A flood of sign-ins refused by the limiter does not fill the audit log one
// row per attempt: the first refusal is recorded, and the count of the rest
// once the address is let through again.
func TestRefusedSignInsAreAuditedInAggregate(t *testing.T) {
	f := newAPI(t)
	clock := time.Now()
	f.s.logins.now = func() time.Time { return clock }
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	login := func(password string) int {
		t.Helper()
		b, _ := json.Marshal(loginRequest{Name: "dana", Password: password})
		req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", f.srv.URL)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	refusedRows := func() []store.AuditEvent {
		t.Helper()
		evs, _, err := f.st.QueryAudit(context.Background(), store.AuditFilter{Actor: "dana", Sort: "at"})
		require.NoError(t, err)
		var out []store.AuditEvent
		for _, e := range evs {
			if e.Outcome == "429" {
				out = append(out, e)
			}
		}
		return out
	}

	for i := 0; i < loginMaxFailures; i++ {
		require.Equal(t, http.StatusUnauthorized, login("wrong"))
	}
	for i := 0; i < 40; i++ {
		require.Equal(t, http.StatusTooManyRequests, login("wrong"))
	}
	rows := refusedRows()
	require.Len(t, rows, 1, "40 refusals, one row")
	require.Contains(t, rows[0].Detail, "counted, not recorded one by one")

	clock = clock.Add(loginWindow)
	require.Equal(t, http.StatusOK, login("dana-password"))
	rows = refusedRows()
	require.Len(t, rows, 2)
	require.Contains(t, rows[1].Detail, "39 more sign-in attempts from 127.0.0.1 were refused")
}
