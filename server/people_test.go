package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

// Disabling a user ends their tokens and sessions at once, and enabling
// them again does not bring the old ones back.
func TestDisableUserEndsEverything(t *testing.T) {
	f := newAPI(t)
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	tok := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	b := f.browser("dana")
	code, _ = b.page(t, "/inbox")
	require.Equal(t, http.StatusOK, code)

	code, eb := f.call("POST", "/api/v1/users/dana/disable", tok, nil, nil)
	require.Equal(t, http.StatusForbidden, code, "only platform admins disable: %s", eb.Error.Message)
	code, eb = f.call("POST", "/api/v1/users/dana/disable", f.token, nil, nil)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	code, _ = f.call("GET", "/api/v1/me", tok, nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "the token is dead at once")
	code, _ = b.page(t, "/inbox")
	require.NotEqual(t, http.StatusOK, code, "so is the session")

	code, _ = f.call("POST", "/api/v1/users/dana/enable", f.token, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _ = f.call("GET", "/api/v1/me", tok, nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "an old token stays revoked")
	code, _ = f.call("POST", "/api/v1/users/admin/disable", f.token, nil, nil)
	require.Equal(t, http.StatusConflict, code, "nobody disables themselves")
	code, _ = f.call("POST", "/api/v1/users/nobody/disable", f.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
}

func TestRemoveRole(t *testing.T) {
	f := newAPI(t)
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	tok := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper}, roleRequest{Tenant: "shop", Role: berth.RoleApprover})

	code, _ = f.call("DELETE", "/api/v1/users/dana/roles/approver?tenant=shop", tok, nil, nil)
	require.Equal(t, http.StatusForbidden, code, "a developer does not remove roles")
	code, eb := f.call("DELETE", "/api/v1/users/dana/roles/approver?tenant=shop", f.token, nil, nil)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	var me userView
	code, _ = f.call("GET", "/api/v1/me", tok, nil, &me)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []roleView{{Tenant: "shop", Role: berth.RoleDeveloper}}, me.Roles)
	code, _ = f.call("DELETE", "/api/v1/users/dana/roles/approver?tenant=shop", f.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code, "a role that is not held is not silently 'removed'")
	code, _ = f.call("DELETE", "/api/v1/users/dana/roles/king?tenant=shop", f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
}

func TestPasswords(t *testing.T) {
	f := newAPI(t)
	tok := f.user("dana")
	b := f.browser("dana")

	code, _ := f.call("PUT", "/api/v1/me/password", tok, passwordRequest{Current: "wrong-password", Password: "a-new-password"}, nil)
	require.Equal(t, http.StatusForbidden, code, "the current password is required")
	code, _ = f.call("PUT", "/api/v1/me/password", tok, passwordRequest{Current: "dana-password", Password: "short"}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, eb := f.call("PUT", "/api/v1/me/password", tok, passwordRequest{Current: "dana-password", Password: "a-new-password"}, nil)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	code, _ = b.page(t, "/inbox")
	require.NotEqual(t, http.StatusOK, code, "the old session ended")
	_, err := f.st.CheckPassword(t.Context(), "dana", "a-new-password")
	require.NoError(t, err)

	code, _ = f.call("POST", "/api/v1/users/dana/password", tok, passwordRequest{Password: "another-password"}, nil)
	require.Equal(t, http.StatusForbidden, code, "only platform admins reset")
	code, _ = f.call("POST", "/api/v1/users/dana/password", f.token, passwordRequest{Password: "another-password"}, nil)
	require.Equal(t, http.StatusOK, code)
	_, err = f.st.CheckPassword(t.Context(), "dana", "another-password")
	require.NoError(t, err)
}

// Admins see and revoke anyone's tokens; tokens live at most the
// deployment's maximum, and never-expiring ones only where allowed.
func TestTokensOfOthersAndLifetimes(t *testing.T) {
	f := newAPIWith(t, func(c *Config) { c.MaxTokenTTL = 48 * time.Hour })
	tok := f.user("dana")
	var list struct {
		Tokens []struct {
			ID        uint       `json:"id"`
			Name      string     `json:"name"`
			ExpiresAt *time.Time `json:"expiresAt"`
		} `json:"tokens"`
	}
	code, _ := f.call("GET", "/api/v1/users/dana/tokens", tok, nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, eb := f.call("GET", "/api/v1/users/dana/tokens", f.token, nil, &list)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.Len(t, list.Tokens, 2, "the fixture's own and the one made through the API")
	made := list.Tokens[0] // newest first: the API's
	require.Equal(t, "test", made.Name)
	require.NotNil(t, made.ExpiresAt, "ttlHours 0 is the deployment's longest, not forever")
	require.WithinDuration(t, time.Now().Add(48*time.Hour), *made.ExpiresAt, time.Minute)
	code, _ = f.call("DELETE", "/api/v1/tokens/"+itoa(made.ID), f.token, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _ = f.call("GET", "/api/v1/me", tok, nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)

	other := f.user("erin")
	code, eb = f.call("POST", "/api/v1/tokens", other, tokenRequest{Name: "ci", TTLHours: 49}, nil)
	require.Equal(t, http.StatusBadRequest, code, "longer than the maximum")
	require.Contains(t, eb.Error.Message, "1-48")
	code, eb = f.call("POST", "/api/v1/tokens", other, tokenRequest{Name: "ci", TTLHours: -1}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, eb.Error.Message, "never expire are not allowed")

	eternal := newAPIWith(t, func(c *Config) { c.AllowEternalTokens = true })
	tk := eternal.user("fay")
	var forever struct {
		Token struct {
			ExpiresAt *time.Time `json:"expiresAt"`
		} `json:"token"`
	}
	code, eb = eternal.call("POST", "/api/v1/tokens", tk, tokenRequest{Name: "ci", TTLHours: -1}, &forever)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	require.Nil(t, forever.Token.ExpiresAt)
}
