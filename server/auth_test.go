package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/mocks"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// apiFixture is the real handler on a real SQLite store; only Temporal is
// mocked, which these tests of the HTTP layer never need for real (the
// integration tests in e2e/ use a real server).
type apiFixture struct {
	t     *testing.T
	s     *Server
	srv   *httptest.Server
	st    *store.Store
	tc    *mocks.Client
	token string
}

func newAPI(t *testing.T) *apiFixture {
	t.Helper()
	return newAPIWith(t, nil)
}

// newAPIWith is newAPI with the server's config changed by tune first.
func newAPIWith(t *testing.T, tune func(*Config)) *apiFixture {
	t.Helper()
	store.SetBcryptCostForTests(bcrypt.MinCost)
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "berth.db"))
	require.NoError(t, err)
	require.NoError(t, st.Migrate(context.Background()))
	t.Cleanup(func() { _ = st.Close() })
	tc := &mocks.Client{}
	cfg := Config{Token: "bootstrap-token-0123456789abcdef", AdminPassword: "admin-password"}
	if tune != nil {
		tune(&cfg)
	}
	s := New(cfg, st, tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pw, err := s.Bootstrap(context.Background())
	require.NoError(t, err)
	require.Empty(t, pw, "a chosen password is not shown")
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return &apiFixture{t: t, s: s, srv: srv, st: st, tc: tc, token: "bootstrap-token-0123456789abcdef"}
}

// call sends a request with a bearer token (or none) and decodes the JSON answer.
func (f *apiFixture) call(method, path, token string, body any, out any) (int, errorBody) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb errorBody
	if resp.StatusCode >= 400 {
		require.NoError(f.t, json.Unmarshal(data, &eb), "error body: %s", data)
		require.NotEmpty(f.t, eb.Error.Code)
	} else if out != nil {
		require.NoError(f.t, json.Unmarshal(data, out), "body: %s", data)
	}
	return resp.StatusCode, eb
}

// user makes a user with roles and returns a token of theirs.
func (f *apiFixture) user(name string, roles ...roleRequest) string {
	f.t.Helper()
	code, eb := f.call("POST", "/api/v1/users", f.token, userRequest{Name: name, Password: name + "-password", Roles: roles}, nil)
	require.Equal(f.t, http.StatusCreated, code, eb.Error.Message)
	var tok struct{ Secret string }
	code, eb = f.call("POST", "/api/v1/tokens", f.login(name), tokenRequest{Name: "test"}, &tok)
	require.Equal(f.t, http.StatusCreated, code, eb.Error.Message)
	return tok.Secret
}

// login returns a bearer-less marker: tokens are made with a session below.
func (f *apiFixture) login(name string) string {
	f.t.Helper()
	u, err := f.st.UserByName(context.Background(), name)
	require.NoError(f.t, err)
	secret, _, err := f.st.CreateToken(context.Background(), u.ID, "fixture", 0)
	require.NoError(f.t, err)
	return secret
}

func TestBearerTokens(t *testing.T) {
	f := newAPI(t)
	code, eb := f.call("GET", "/api/v1/runs", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "unauthorized", eb.Error.Code)
	code, _ = f.call("GET", "/api/v1/runs", "nope", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)

	var me userView
	code, _ = f.call("GET", "/api/v1/me", f.token, nil, &me)
	require.Equal(t, http.StatusOK, code, "BERTH_API_TOKEN is the admin's token")
	require.Equal(t, "admin", me.Name)

	var created struct {
		Token  store.APIToken
		Secret string
	}
	code, _ = f.call("POST", "/api/v1/tokens", f.token, tokenRequest{Name: "ci"}, &created)
	require.Equal(t, http.StatusCreated, code)
	require.True(t, strings.HasPrefix(created.Secret, "berth_"))
	code, _ = f.call("GET", "/api/v1/me", created.Secret, nil, &me)
	require.Equal(t, http.StatusOK, code)

	code, _ = f.call("DELETE", "/api/v1/tokens/"+itoa(created.Token.ID), f.token, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, eb = f.call("GET", "/api/v1/me", created.Secret, nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, eb.Error.Message, "revoked")

	var list struct{ Tokens []map[string]any }
	code, _ = f.call("GET", "/api/v1/tokens", f.token, nil, &list)
	require.Equal(t, http.StatusOK, code)
	for _, tk := range list.Tokens {
		require.NotContains(t, tk, "hash", "hashes never leave the server")
	}
}

func itoa(id uint) string { return strconv.FormatUint(uint64(id), 10) }

func TestRolesGateMutations(t *testing.T) {
	f := newAPI(t)
	for _, tn := range []string{"shop", "other"} {
		code, eb := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: tn}, nil)
		require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	}
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	code, eb := f.call("POST", "/api/v1/tenants", dev, nameRequest{Name: "mine"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, eb.Error.Message, "creating a tenant needs role admin platform-wide")

	code, eb = f.call("POST", "/api/v1/tenants/shop/environments", dev, environmentRequest{Name: "prod"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, eb.Error.Message, "on tenant shop")

	code, _ = f.call("GET", "/api/v1/tenants/other/environments", dev, nil, nil)
	require.Equal(t, http.StatusForbidden, code, "reads are scoped to the caller's tenants")
	var ts struct{ Tenants []store.Tenant }
	code, _ = f.call("GET", "/api/v1/tenants", dev, nil, &ts)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, ts.Tenants, 1)
	require.Equal(t, "shop", ts.Tenants[0].Name)

	code, _ = f.call("POST", "/api/v1/users/dana/roles", dev, roleRequest{Tenant: "shop", Role: berth.RoleAdmin}, nil)
	require.Equal(t, http.StatusForbidden, code, "nobody grants themselves roles")
	code, _ = f.call("POST", "/api/v1/users", dev, userRequest{Name: "eve", Password: "eve-password"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = f.call("GET", "/api/v1/audit", dev, nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, eb = f.call("POST", "/api/v1/users/dana/roles", f.token, roleRequest{Tenant: "shop", Role: "root"}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, eb.Error.Message, "must be one of")

	// The audit log names the real user, denied requests included.
	var audit struct{ Events []store.AuditEvent }
	code, _ = f.call("GET", "/api/v1/audit?actor=dana&sort=-at", f.token, nil, &audit)
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, audit.Events)
	require.Equal(t, "403", audit.Events[0].Outcome)
	code, _ = f.call("GET", "/api/v1/audit?sort=password", f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = f.call("GET", "/api/v1/runs?sort=id%20desc%3Bdrop", f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
}

// browser is a cookie-keeping client that signs in like the login form.
type browser struct {
	*http.Client
	base string
}

func (f *apiFixture) browser(name string) *browser {
	f.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, base: f.srv.URL}
	req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(url.Values{"name": {name}, "password": {name + "-password"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	resp, err := b.Do(req)
	require.NoError(f.t, err)
	resp.Body.Close()
	require.Equal(f.t, http.StatusSeeOther, resp.StatusCode)
	return b
}

func (b *browser) csrf(t *testing.T) string {
	t.Helper()
	resp, err := b.Get(b.base + "/inbox")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, rest, ok := strings.Cut(string(body), `<meta name="csrf-token" content="`)
	require.True(t, ok)
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func (b *browser) post(t *testing.T, path, origin, csrf, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	resp, err := b.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestSessionCSRFAndDecisions(t *testing.T) {
	f := newAPI(t)
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	f.user("carol", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	shop, err := f.st.TenantByName(context.Background(), "shop")
	require.NoError(t, err)
	run := &store.Run{Kind: "gate", WorkflowID: "gate/shop/prod/web", TenantID: shop.ID, Subject: "shop/prod/web", StartedBy: "dana"}
	require.NoError(t, f.st.CreateRun(context.Background(), run, ""))
	a, err := f.st.CreateApproval(context.Background(), &store.Approval{RunID: run.ID, Step: "approval", TenantID: shop.ID,
		WorkflowID: run.WorkflowID, RoleList: []berth.Role{berth.RoleApprover}, SeparateDuties: true, RequireComment: true, StartedBy: "dana"})
	require.NoError(t, err)
	decide := "/api/v1/approvals/" + itoa(a.ID) + "/decide"

	bob := f.browser("bob")
	tok := bob.csrf(t)
	require.Equal(t, http.StatusForbidden, bob.post(t, decide, "http://evil.example", tok, `{"decision":"approve","comment":"x"}`), "foreign Origin")
	require.Equal(t, http.StatusForbidden, bob.post(t, decide, f.srv.URL, "", `{"decision":"approve","comment":"x"}`), "no CSRF token")
	require.Equal(t, http.StatusForbidden, bob.post(t, decide, f.srv.URL, "wrong", `{"decision":"approve","comment":"x"}`), "wrong CSRF token")
	require.Equal(t, http.StatusForbidden, bob.post(t, decide, "", tok, `{"decision":"approve","comment":"x"}`), "neither Origin nor Referer")
	require.Equal(t, http.StatusBadRequest, bob.post(t, decide, f.srv.URL, tok, `{"decision":"approve","comment":""}`), "comment required")

	dana := f.browser("dana")
	require.Equal(t, http.StatusForbidden, dana.post(t, decide, f.srv.URL, dana.csrf(t), `{"decision":"approve","comment":"mine"}`), "own run")

	f.tc.On("SignalWorkflow", mock.Anything, run.WorkflowID, "", workflows.ApprovalSignal,
		berth.ApprovalDecision{ApprovalID: a.ID, State: berth.ApprovalApproved, By: []string{"bob"}, Comment: "looks right"}).Return(nil)
	require.Equal(t, http.StatusOK, bob.post(t, decide, f.srv.URL, tok, `{"decision":"approve","comment":"looks right"}`))
	carol := f.browser("carol")
	require.Equal(t, http.StatusConflict, carol.post(t, decide, f.srv.URL, carol.csrf(t), `{"decision":"reject","comment":"late"}`))
	// The late click re-sent the signal in case the first one was lost; the workflow ignores repeats.
	f.tc.AssertNumberOfCalls(t, "SignalWorkflow", 2)

	got, err := f.st.Approval(context.Background(), a.ID)
	require.NoError(t, err)
	require.Equal(t, berth.ApprovalApproved, got.State)
	require.Len(t, got.Decisions, 1)

	// Sign-out ends the session.
	require.Equal(t, http.StatusSeeOther, bob.post(t, "/logout", f.srv.URL, tok, ""))
	resp, err := bob.Get(f.srv.URL + "/inbox")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Location"), "/login")
}

func (b *browser) page(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := b.Get(b.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPagesRender renders every page with data in it, and shows that
// markup from the store is escaped.
func TestPagesRender(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("rm", roleRequest{Role: berth.RoleReleaseManager})
	f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	shop, err := f.st.TenantByName(ctx, "shop")
	require.NoError(t, err)
	run := &store.Run{Kind: "gate", WorkflowID: "gate/shop/prod/x", TenantID: shop.ID, Subject: "shop/prod/<b>x</b>", StartedBy: "dana", Status: berth.RunRunning}
	require.NoError(t, f.st.CreateRun(ctx, run, ""))
	require.NoError(t, f.st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "approval", State: berth.StepWaiting, At: time.Now().UTC()}))
	_, err = f.st.CreateApproval(ctx, &store.Approval{RunID: run.ID, Step: "approval", TenantID: shop.ID, WorkflowID: run.WorkflowID,
		RoleList: []berth.Role{berth.RoleApprover}, StartedBy: "dana", Summary: "<script>alert(1)</script>"})
	require.NoError(t, err)

	bob := f.browser("bob")
	for _, path := range []string{"/inbox", "/runs", "/runs?kind=gate&status=running&page=1", fmt.Sprintf("/runs/%d", run.ID), "/audit"} {
		code, body := bob.page(t, path)
		require.Equal(t, http.StatusOK, code, path)
		require.NotContains(t, body, "<script>alert(1)</script>", path)
		require.NotContains(t, body, "<b>x</b>", path)
	}
	_, body := bob.page(t, "/inbox")
	require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.Contains(t, body, fmt.Sprintf(`aria-label="Approve run %d gate &lt;b&gt;x&lt;/b&gt; to "`, run.ID)[:30])
	code, body = bob.page(t, "/runs?since=yesterday")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "since must be an RFC 3339 time")
	code, _ = bob.page(t, "/runs/999")
	require.Equal(t, http.StatusNotFound, code)

	rm := f.browser("rm")
	code, body = rm.page(t, "/audit")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "POST /api/v1/tenants")

	// The event stream sends the live part once, then the end when the run finishes.
	require.NoError(t, f.st.FinishRun(ctx, run.ID, berth.RunSucceeded, ""))
	code, body = bob.page(t, fmt.Sprintf("/api/v1/runs/%d/events", run.ID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "event: run\ndata: ")
	require.Contains(t, body, "event: end")
	_, rest, _ := strings.Cut(body, "id: ")
	id, _, _ := strings.Cut(rest, "\n")
	_, again := bob.page(t, fmt.Sprintf("/api/v1/runs/%d/events?last=%s", run.ID, id))
	require.NotContains(t, again, "event: run", "a client that has the latest state gets nothing again")
	require.Contains(t, again, "event: end")

	var csvBody string
	_, csvBody = bob.page(t, "/api/v1/runs?format=csv")
	require.Contains(t, csvBody, "id,kind,subject,status")
}
