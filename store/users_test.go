package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func init() { store.SetBcryptCostForTests(bcrypt.MinCost) }

func TestUsersPasswordsAndRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		u, err := st.CreateUser(ctx, "alice", "correct horse")
		require.NoError(t, err)
		require.NotContains(t, u.PasswordHash, "correct horse")

		_, err = st.CreateUser(ctx, "alice", "another one")
		requireConflict(t, err)
		_, err = st.CreateUser(ctx, "bob", "short")
		var inv *store.InvalidError
		require.ErrorAs(t, err, &inv)

		got, err := st.CheckPassword(ctx, "alice", "correct horse")
		require.NoError(t, err)
		require.Equal(t, u.ID, got.ID)
		_, err = st.CheckPassword(ctx, "alice", "wrong horse")
		require.ErrorIs(t, err, store.ErrBadCredentials)
		_, err = st.CheckPassword(ctx, "nobody", "correct horse")
		require.ErrorIs(t, err, store.ErrBadCredentials, "an unknown name looks like a wrong password")

		require.NoError(t, st.GrantRole(ctx, u.ID, 3, berth.RoleApprover))
		require.NoError(t, st.GrantRole(ctx, u.ID, 3, berth.RoleApprover), "granting twice is harmless")
		require.NoError(t, st.GrantRole(ctx, u.ID, 0, berth.RoleReleaseManager))
		require.ErrorAs(t, st.GrantRole(ctx, u.ID, 3, "root"), &inv)
		rbs, err := st.RoleBindings(ctx, u.ID)
		require.NoError(t, err)
		require.Len(t, rbs, 2)
		require.Equal(t, berth.RoleReleaseManager, rbs[0].Role)
		require.Equal(t, uint(0), rbs[0].TenantID)
	})
}

func TestTokensExpireAndRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		u, err := st.CreateUser(ctx, "ci-bot", "a long password")
		require.NoError(t, err)
		secret, tok, err := st.CreateToken(ctx, u.ID, "ci", 0)
		require.NoError(t, err)
		require.NotContains(t, tok.Hash, secret)
		require.Equal(t, store.HashSecret(secret), tok.Hash)

		who, used, err := st.UserByToken(ctx, secret)
		require.NoError(t, err)
		require.Equal(t, "ci-bot", who.Name)
		require.NotNil(t, used.LastUsedAt)

		_, _, err = st.UserByToken(ctx, secret+"x")
		require.ErrorIs(t, err, store.ErrNotFound)

		require.NoError(t, st.RevokeToken(ctx, tok.ID))
		_, _, err = st.UserByToken(ctx, secret)
		require.ErrorIs(t, err, store.ErrCredentialExpired)

		short, _, err := st.CreateToken(ctx, u.ID, "short", time.Millisecond)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, _, err := st.UserByToken(ctx, short)
			return err == store.ErrCredentialExpired
		}, 5*time.Second, 5*time.Millisecond)

		// The bootstrap token: a new secret under the same name retires the old one.
		require.NoError(t, st.EnsureToken(ctx, u.ID, "bootstrap", "first-secret-0123456789"))
		require.NoError(t, st.EnsureToken(ctx, u.ID, "bootstrap", "first-secret-0123456789"), "idempotent")
		_, _, err = st.UserByToken(ctx, "first-secret-0123456789")
		require.NoError(t, err)
		require.NoError(t, st.EnsureToken(ctx, u.ID, "bootstrap", "second-secret-0123456789"))
		_, _, err = st.UserByToken(ctx, "first-secret-0123456789")
		require.ErrorIs(t, err, store.ErrCredentialExpired)
		_, _, err = st.UserByToken(ctx, "second-secret-0123456789")
		require.NoError(t, err)
	})
}

func TestSessionsAndBootstrapAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		admin, pw, err := st.EnsureAdmin(ctx, "admin", "")
		require.NoError(t, err)
		require.Len(t, pw, 24, "a random password is made and reported once")
		again, pw2, err := st.EnsureAdmin(ctx, "admin", "")
		require.NoError(t, err)
		require.Empty(t, pw2, "the second start shows no password")
		require.Equal(t, admin.ID, again.ID)
		_, err = st.CheckPassword(ctx, "admin", pw)
		require.NoError(t, err)
		rbs, err := st.RoleBindings(ctx, admin.ID)
		require.NoError(t, err)
		require.Equal(t, []berth.Role{berth.RoleAdmin}, []berth.Role{rbs[0].Role})

		secret, ses, err := st.CreateSession(ctx, admin.ID, time.Hour)
		require.NoError(t, err)
		require.NotEqual(t, secret, ses.ID)
		who, got, err := st.UserBySession(ctx, secret)
		require.NoError(t, err)
		require.Equal(t, "admin", who.Name)
		require.Equal(t, ses.CSRF, got.CSRF)
		require.NoError(t, st.DeleteSession(ctx, secret))
		_, _, err = st.UserBySession(ctx, secret)
		require.ErrorIs(t, err, store.ErrNotFound)

		old, _, err := st.CreateSession(ctx, admin.ID, -time.Second)
		require.NoError(t, err)
		_, _, err = st.UserBySession(ctx, old)
		require.Error(t, err)
	})
}

// TestUnknownNamesCostAsMuchAsKnownOnes: a sign-in for a name that does not
// exist compares against a hash of the same bcrypt cost as real passwords, so
// timing cannot tell which names exist.
func TestUnknownNamesCostAsMuchAsKnownOnes(t *testing.T) {
	// A cost other than the tests' usual one, so a fixed dummy cost shows.
	store.SetBcryptCostForTests(bcrypt.MinCost + 1)
	t.Cleanup(func() { store.SetBcryptCostForTests(bcrypt.MinCost) })
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		u, err := st.CreateUser(ctx, "costly", "a-long-enough-password")
		require.NoError(t, err)
		real, err := bcrypt.Cost([]byte(u.PasswordHash))
		require.NoError(t, err)
		require.Equal(t, bcrypt.MinCost+1, real)
		require.Equal(t, real, store.DummyHashCost())
		_, err = st.CheckPassword(ctx, "no-such-user", "whatever")
		require.ErrorIs(t, err, store.ErrBadCredentials)
	})
}
