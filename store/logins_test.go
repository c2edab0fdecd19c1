package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

// The sign-in limiter's shared count: newest failures of a key within the
// window, oldest first; old ones pruned; a key cleared alone.
func TestLoginFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		for i := range 4 {
			at := t0.Add(time.Duration(i) * time.Second)
			require.NoError(t, st.AddLoginFailures(ctx, at, t0.Add(-time.Hour), "pair", "addr"))
		}
		got, err := st.LoginFailures(ctx, "pair", t0.Add(-time.Minute), 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		require.WithinDuration(t, t0.Add(time.Second), got[0], time.Millisecond, "the third newest first")
		require.WithinDuration(t, t0.Add(3*time.Second), got[2], time.Millisecond)
		got, err = st.LoginFailures(ctx, "pair", t0.Add(1500*time.Millisecond), 10)
		require.NoError(t, err)
		require.Len(t, got, 2, "only those after since")

		require.NoError(t, st.ClearLoginFailures(ctx, "pair"))
		got, err = st.LoginFailures(ctx, "pair", t0.Add(-time.Minute), 10)
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = st.LoginFailures(ctx, "addr", t0.Add(-time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, got, 4, "another key is kept")

		// A failure a minute later prunes the ones that left the window.
		require.NoError(t, st.AddLoginFailures(ctx, t0.Add(2*time.Minute), t0.Add(2*time.Minute-time.Minute), "other"))
		got, err = st.LoginFailures(ctx, "addr", t0.Add(-time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}
