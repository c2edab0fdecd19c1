package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

func TestSecretsAreVersionedAndEnvironmentsOverride(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		acme, err := st.CreateTenant(ctx, "acme")
		require.NoError(t, err)
		globex, err := st.CreateTenant(ctx, "globex")
		require.NoError(t, err)

		add := func(tenant uint, env, name, sealed string) *store.Secret {
			t.Helper()
			sec := &store.Secret{TenantID: tenant, Env: env, Name: name, KeyID: "k1", Sealed: []byte(sealed), Size: len(sealed), CreatedBy: "alice"}
			require.NoError(t, st.AddSecretVersion(ctx, sec))
			return sec
		}
		require.Equal(t, 1, add(acme.ID, "", "db_password", "v1").Version)
		require.Equal(t, 2, add(acme.ID, "", "db_password", "v2").Version)
		require.Equal(t, 1, add(acme.ID, "prod", "db_password", "prod-v1").Version)
		add(globex.ID, "", "api_key", "g1")

		got, err := st.SecretFor(ctx, acme.ID, "dev", "db_password")
		require.NoError(t, err)
		require.Equal(t, "v2", string(got.Sealed), "the tenant default, newest version")
		got, err = st.SecretFor(ctx, acme.ID, "prod", "db_password")
		require.NoError(t, err)
		require.Equal(t, "prod-v1", string(got.Sealed), "the environment's own wins")
		_, err = st.SecretFor(ctx, acme.ID, "dev", "api_key")
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's secret is not found")

		missing, err := st.MissingSecrets(ctx, acme.ID, "dev", []string{"db_password", "api_key", "zz"})
		require.NoError(t, err)
		require.Equal(t, []string{"api_key", "zz"}, missing)

		list, err := st.Secrets(ctx, acme.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "", list[0].Env)
		require.Equal(t, 2, list[0].Version)
		require.Nil(t, list[0].Sealed, "the list never carries values")
		require.Equal(t, "prod", list[1].Env)

		// Racing writers each get their own version.
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sec := &store.Secret{TenantID: acme.ID, Name: "race", KeyID: "k1", Sealed: []byte("x")}
				require.NoError(t, st.AddSecretVersion(ctx, sec))
			}()
		}
		wg.Wait()
		got, err = st.SecretFor(ctx, acme.ID, "dev", "race")
		require.NoError(t, err)
		require.Equal(t, 4, got.Version)
	})
}
