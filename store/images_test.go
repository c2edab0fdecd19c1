package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// ImageUses finds a registry's images where services run them (with their
// live instances) or keep them for a rollback, for one tenant or all, and
// who had berth build which; LIKE's wildcards in the prefix match only
// themselves.
func TestImageUses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, _, _, _ := w.startedAPI(t, "shop", 4)
		svc, err := st.ServiceNamed(ctx, app.ID, "api")
		require.NoError(t, err)
		_, err = st.Baseline(ctx, svc, "alice")
		require.NoError(t, err)
		require.NoError(t, st.DB().Model(svc).Update("image", "registry.local/api:2").Error)
		require.NoError(t, st.DB().Create(&store.Release{ServiceID: svc.ID, Kind: berth.ReleaseImage, Version: "9", Image: "registry.local/api:9",
			PackageSHA256: "ab12", StartedBy: "bob", Outcome: berth.ReleaseSucceeded}).Error)
		require.NoError(t, st.DB().Create(&store.Release{ServiceID: svc.ID, Kind: berth.ReleaseImage, Version: "c1", Image: "registry.local/api:c1",
			Strategy: "commit", StartedBy: "cy", Outcome: berth.ReleaseSucceeded}).Error)
		require.NoError(t, st.DB().Create(&store.Release{ServiceID: svc.ID, Kind: berth.ReleaseImage, Version: "7", Image: "registry.local/api:7",
			StartedBy: "dee", Outcome: berth.ReleaseSucceeded}).Error)

		uses, pushes, err := st.ImageUses(ctx, 0, "registry.local/")
		require.NoError(t, err)
		got := map[string]store.ImageUse{}
		for _, u := range uses {
			got[u.Image+" "+u.How] = u
		}
		require.Len(t, got, 2, "one use per service and image: %v", uses)
		require.Equal(t, store.ImageUse{Image: "registry.local/api:2", TenantID: w.env.TenantID, Tenant: "acme", Env: "dev", App: "shop", Service: "api",
			How: "runs"}, got["registry.local/api:2 runs"], "the service's image, no instance on it yet")
		require.Equal(t, 4, got["registry.local/api:1 runs"].Instances, "the live instances' image")
		require.Len(t, pushes, 2, "a build and a commit pushed; a plain image release did not: %v", pushes)
		require.Equal(t, store.ImagePush{Image: "registry.local/api:9", StartedBy: "bob", ReleaseID: pushes[0].ReleaseID}, pushes[0])
		require.Equal(t, "cy", pushes[1].StartedBy)

		mine, _, err := st.ImageUses(ctx, w.env.TenantID, "registry.local/api")
		require.NoError(t, err)
		require.Len(t, mine, 2)
		other, _, err := st.ImageUses(ctx, w.env.TenantID+1000, "registry.local/")
		require.NoError(t, err)
		require.Empty(t, other, "another tenant's uses are not shown")
		// Once no instance runs it, the release a rollback returns to still keeps it.
		require.NoError(t, st.DB().Model(&store.Instance{}).Where("service_id = ?", svc.ID).Update("version", "registry.local/api:2").Error)
		uses, _, err = st.ImageUses(ctx, 0, "registry.local/")
		require.NoError(t, err)
		got = map[string]store.ImageUse{}
		for _, u := range uses {
			got[u.Image+" "+u.How] = u
		}
		require.Equal(t, 4, got["registry.local/api:2 runs"].Instances)
		require.Contains(t, got, "registry.local/api:1 current release", "%v", uses)
		wild, _, err := st.ImageUses(ctx, 0, "registry_local/")
		require.NoError(t, err)
		require.Empty(t, wild, "_ is no wildcard")
	})
}
