package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A disk pass's measurements replace the host's last ones; a volume over
// its size is returned once, until it is back under; the capacity view
// sums what each tenant's and environment's volumes hold.
func TestRecordVolumeUseSaysOverOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := newHost(t, st, "h1", "10.0.0.1", true)
		dev := newEnv(t, st, "acme", "dev", h)
		at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		data := berth.VolumeUse{Name: "acme.dev.shop.data", Tenant: "acme", Env: "dev", App: "shop", SizeBytes: 10 << 20, UsedBytes: 4 << 20}
		logs := berth.VolumeUse{Name: "acme.dev.shop.logs", Tenant: "acme", Env: "dev", App: "shop", SizeBytes: 10 << 20, UsedBytes: -1}
		over, err := st.RecordVolumeUse(ctx, h.ID, []berth.VolumeUse{data, logs}, at)
		require.NoError(t, err)
		require.Empty(t, over)

		data.UsedBytes = 15 << 20
		over, err = st.RecordVolumeUse(ctx, h.ID, []berth.VolumeUse{data, logs}, at.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []berth.VolumeUse{data}, over, "newly over")
		over, err = st.RecordVolumeUse(ctx, h.ID, []berth.VolumeUse{data, logs}, at.Add(2*time.Minute))
		require.NoError(t, err)
		require.Empty(t, over, "still over: said already")

		capa, err := st.Capacity(ctx, nil, false)
		require.NoError(t, err)
		require.Len(t, capa.Environments, 1)
		require.Equal(t, int64(15<<20), capa.Environments[0].VolumeBytes, "unknown sizes count nothing")
		require.Equal(t, int64(15<<20), capa.Tenants[0].VolumeBytes)

		data.UsedBytes = 1 << 20
		_, err = st.RecordVolumeUse(ctx, h.ID, []berth.VolumeUse{data}, at.Add(3*time.Minute))
		require.NoError(t, err)
		data.UsedBytes = 12 << 20
		over, err = st.RecordVolumeUse(ctx, h.ID, []berth.VolumeUse{data}, at.Add(4*time.Minute))
		require.NoError(t, err)
		require.Equal(t, []berth.VolumeUse{data}, over, "over again after it was back under")

		var kept []store.VolumeMeasure
		require.NoError(t, st.DB().Order("name").Find(&kept).Error)
		require.Len(t, kept, 1, "a volume gone from the host is forgotten")
		require.Equal(t, dev.Name, kept[0].Env)
	})
}
