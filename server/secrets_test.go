package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/codec"
	"github.com/berth-dev/berth/store"
)

func TestSecretsAreWriteOnlyVersionedAndAuthorised(t *testing.T) {
	sealer, err := codec.New(bytes.Repeat([]byte{7}, codec.KeySize))
	require.NoError(t, err)
	f := newAPIWith(t, func(c *Config) { c.Secrets = sealer })
	for _, tn := range []string{"shop", "other"} {
		code, eb := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: tn}, nil)
		require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	}
	code, eb := f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	approver := f.user("abe", roleRequest{Tenant: "shop", Role: berth.RoleApprover})

	const value = "s3cr3t-value-never-shown"
	var got store.Secret
	code, eb = f.call("POST", "/api/v1/tenants/shop/secrets", dev, secretRequest{Name: "db_password", Value: value}, &got)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	require.Equal(t, 1, got.Version)
	require.Equal(t, len(value), got.Size)
	code, eb = f.call("POST", "/api/v1/tenants/shop/secrets", dev, secretRequest{Name: "db_password", Env: "dev", Value: value + "2"}, &got)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	require.Equal(t, "dev", got.Env)

	// Refusals: a role that may not write, another tenant, bad names,
	// empty and oversized values, an unknown environment.
	code, _ = f.call("POST", "/api/v1/tenants/shop/secrets", approver, secretRequest{Name: "x", Value: "v"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = f.call("POST", "/api/v1/tenants/other/secrets", dev, secretRequest{Name: "x", Value: "v"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = f.call("GET", "/api/v1/tenants/other/secrets", dev, nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	for _, bad := range []secretRequest{{Name: "../etc", Value: "v"}, {Name: "ok"}, {Name: "ok", Value: strings.Repeat("x", maxSecretBytes+1)}, {Name: "ok", Env: "nope", Value: "v"}} {
		code, eb = f.call("POST", "/api/v1/tenants/shop/secrets", dev, bad, nil)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, code, "%+v: %s", bad.Name, eb.Error.Message)
	}

	// Reading shows names and versions only.
	req, err := http.NewRequest("GET", f.srv.URL+"/api/v1/tenants/shop/secrets", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+approver)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var list struct{ Secrets []map[string]any }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	require.Len(t, list.Secrets, 2)
	for _, s := range list.Secrets {
		require.NotContains(t, s, "sealed")
		require.NotContains(t, s, "value")
	}

	// The database holds the value sealed, and it opens with the key.
	shop, err := f.st.TenantByName(context.Background(), "shop")
	require.NoError(t, err)
	sec, err := f.st.SecretFor(context.Background(), shop.ID, "dev", "db_password")
	require.NoError(t, err)
	require.NotContains(t, string(sec.Sealed), value)
	plain, err := sealer.Open(sec.KeyID, sec.Sealed, store.SecretAAD(sec.TenantID, sec.Env, sec.Name))
	require.NoError(t, err)
	require.Equal(t, value+"2", string(plain))

	// The audit row says what happened, never the value.
	var audit struct{ Events []store.AuditEvent }
	code, _ = f.call("GET", "/api/v1/audit?actor=dana", f.token, nil, &audit)
	require.Equal(t, http.StatusOK, code)
	var seen bool
	for _, ev := range audit.Events {
		require.NotContains(t, ev.Detail+ev.Target, value)
		seen = seen || strings.Contains(ev.Detail, "secret db_password version 1")
	}
	require.True(t, seen, "the write is audited")

	// A compose file naming a secret the environment lacks is refused
	// before anything starts.
	compose := "services:\n  api:\n    image: x\n    secrets: [db_password, api_key]\nsecrets:\n  db_password:\n    external: true\n  api_key:\n    external: true\n"
	code, eb = f.call("POST", "/api/v1/tenants/shop/environments/dev/applications", dev, deployRequest{Name: "web", Compose: compose}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, eb.Error.Message, "api_key")
	require.NotContains(t, eb.Error.Message, "db_password")
	require.Contains(t, eb.Error.Message, "POST /api/v1/tenants/shop/secrets")
}

func TestEnvironmentLimitsAreAdminsAndChecked(t *testing.T) {
	f := newAPI(t)
	code, eb := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	var env store.Environment
	code, eb = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, &env)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	require.Equal(t, defaultLimits, env.Limits, "an environment created without limits gets the defaults")

	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	l := berth.Limits{DefaultMemoryBytes: 64 << 20, MaxMemoryBytes: 128 << 20}
	code, _ = f.call("PUT", "/api/v1/tenants/shop/environments/dev/limits", dev, l, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, eb = f.call("PUT", "/api/v1/tenants/shop/environments/dev/limits", f.token, berth.Limits{DefaultMemoryBytes: 1 << 30, MaxMemoryBytes: 1 << 20}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, eb.Error.Message, "above the maximum")
	var changed store.Environment
	code, eb = f.call("PUT", "/api/v1/tenants/shop/environments/dev/limits", f.token, l, &changed)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.Equal(t, l, changed.Limits)
	stored, err := f.st.Environment(context.Background(), "shop", "dev")
	require.NoError(t, err)
	require.Equal(t, l, stored.Limits)
	code, _ = f.call("PUT", "/api/v1/tenants/shop/environments/nope/limits", f.token, l, nil)
	require.Equal(t, http.StatusNotFound, code)
}
