package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestPackagesInUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		empty, err := st.PackagesInUse(ctx)
		require.NoError(t, err)
		require.Empty(t, empty)
		for i, r := range []store.Release{
			{ServiceID: 1, Kind: berth.ReleaseFile, Version: "1", PackageSHA256: "aa", Outcome: berth.ReleaseSucceeded},
			{ServiceID: 1, Kind: berth.ReleaseFile, Version: "2", PackageSHA256: "bb", Outcome: berth.ReleaseFailed},
			{ServiceID: 2, Kind: berth.ReleaseFile, Version: "1", PackageSHA256: "aa", Outcome: berth.ReleaseSucceeded},
			{ServiceID: 2, Kind: berth.ReleaseImage, Version: "3", Image: "web:3", Outcome: berth.ReleaseSucceeded},
		} {
			r := r
			require.NoError(t, st.DB().Create(&r).Error, "release %d", i)
		}
		got, err := st.PackagesInUse(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]bool{"aa": true, "bb": true}, got, "a failed release's package may still be retried or compared")
	})
}
