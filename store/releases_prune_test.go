package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// The artifact store keeps the packages of each live service's current,
// last-good and newest release and of releases under way; the package
// quotas count those, each package once, per tenant and per environment.
func TestPackagesInUseAndPackageUsage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		empty, err := st.PackagesInUse(ctx)
		require.NoError(t, err)
		require.Empty(t, empty)

		dev, test := newEnv(t, st, "acme", "dev"), newEnv(t, st, "acme", "test")
		other := newEnv(t, st, "globex", "dev")
		service := func(env *store.Environment, app string, state berth.State, name string) uint {
			t.Helper()
			a := store.Application{EnvironmentID: env.ID, Name: app, State: state}
			require.NoError(t, st.DB().Where(store.Application{EnvironmentID: env.ID, Name: app}).FirstOrCreate(&a).Error)
			svc := store.Service{ApplicationID: a.ID, Name: name, Image: "img:1", Replicas: 1}
			require.NoError(t, st.DB().Create(&svc).Error)
			return svc.ID
		}
		release := func(svc uint, sha string, size int64, outcome berth.ReleaseOutcome) {
			t.Helper()
			r := store.Release{ServiceID: svc, Kind: berth.ReleaseFile, Version: sha, PackageSHA256: sha, PackageSize: size, Outcome: berth.ReleaseRunning}
			require.NoError(t, st.DB().Create(&r).Error)
			if outcome != berth.ReleaseRunning {
				require.NoError(t, st.FinishRelease(ctx, r.ID, outcome, ""))
			}
		}
		web := service(dev, "shop", berth.StateRunning, "web")
		release(web, "aa", 100, berth.ReleaseSucceeded) // superseded: pruned
		release(web, "bb", 200, berth.ReleaseSucceeded) // current and last good
		release(web, "cc", 300, berth.ReleaseFailed)    // newest: may be retried
		worker := service(dev, "shop", berth.StateRunning, "worker")
		release(worker, "aa", 100, berth.ReleaseRunning) // under way
		gone := service(test, "old", berth.StateDeleted, "web")
		release(gone, "dd", 400, berth.ReleaseSucceeded) // its application is deleted
		api := service(test, "api", berth.StateRunning, "api")
		release(api, "bb", 200, berth.ReleaseSucceeded) // the same package as web's
		theirs := service(other, "shop", berth.StateRunning, "web")
		release(theirs, "ee", 1000, berth.ReleaseSucceeded)

		got, err := st.PackagesInUse(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]bool{"aa": true, "bb": true, "cc": true, "ee": true}, got)

		tenant, env, err := st.PackageUsage(ctx, dev.TenantID, dev.ID)
		require.NoError(t, err)
		require.Equal(t, [2]int64{600, 600}, [2]int64{tenant, env}, "aa, bb and cc, each once")
		tenant, env, err = st.PackageUsage(ctx, test.TenantID, test.ID)
		require.NoError(t, err)
		require.Equal(t, [2]int64{600, 200}, [2]int64{tenant, env}, "test keeps bb only")

		// The room of an upload is the tighter of the two quotas.
		room, err := st.PackageRoom(ctx, test.ID)
		require.NoError(t, err)
		require.Equal(t, store.PackageRoom{Bytes: -1}, room, "no quota, no bound")
		require.NoError(t, st.SetTenantQuota(ctx, test.TenantID, berth.Quota{MaxPackageBytes: 1000}))
		require.NoError(t, st.SetEnvironmentQuota(ctx, test.ID, berth.Quota{MaxPackageBytes: 500}))
		room, err = st.PackageRoom(ctx, test.ID)
		require.NoError(t, err)
		require.Equal(t, store.PackageRoom{Bytes: 300, Why: "environment acme/test's package quota: 200 bytes of 500 bytes kept for its releases"}, room)
		room, err = st.PackageRoom(ctx, dev.ID)
		require.NoError(t, err)
		require.Equal(t, store.PackageRoom{Bytes: 400, Why: "tenant acme's package quota: 600 bytes of 1000 bytes kept for its releases"}, room)
		_, err = st.PackageRoom(ctx, 9999)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// Hosts keep the images of each live service's current, last-good and
// newest release and the image it runs; a deleted application's go.
func TestKeptImages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		dev := newEnv(t, st, "acme", "dev")
		service := func(app string, state berth.State) uint {
			t.Helper()
			a := store.Application{EnvironmentID: dev.ID, Name: app, State: state}
			require.NoError(t, st.DB().Create(&a).Error)
			svc := store.Service{ApplicationID: a.ID, Name: "web", Image: app + ":1", Replicas: 1}
			require.NoError(t, st.DB().Create(&svc).Error)
			return svc.ID
		}
		release := func(svc uint, image string, outcome berth.ReleaseOutcome) {
			t.Helper()
			r := store.Release{ServiceID: svc, Kind: berth.ReleaseImage, Version: image, Image: image, Outcome: berth.ReleaseRunning}
			require.NoError(t, st.DB().Create(&r).Error)
			require.NoError(t, st.FinishRelease(ctx, r.ID, outcome, ""))
		}
		web := service("shop", berth.StateRunning)
		release(web, "shop:2", berth.ReleaseSucceeded) // superseded
		release(web, "shop:3", berth.ReleaseSucceeded) // current, last good, run by the service
		release(web, "shop:4", berth.ReleaseFailed)    // newest
		old := service("old", berth.StateDeleted)
		release(old, "old:2", berth.ReleaseSucceeded)

		got, err := st.KeptImages(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"shop:3", "shop:4"}, got)
	})
}

// Two uploads to two applications of one tenant each read the same room
// before their upload; when both have arrived only one may open its
// release, because together they would pass the tenant's package quota.
func TestPackageQuotaHoldsAgainstRacingUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		env := newEnv(t, st, "acme", "dev")
		require.NoError(t, st.SetTenantQuota(ctx, env.TenantID, berth.Quota{MaxPackageBytes: 1000}))
		type upload struct {
			app uint
			svc uint
		}
		var ups []upload
		for _, name := range []string{"shop", "blog"} {
			a := store.Application{EnvironmentID: env.ID, Name: name, State: berth.StateRunning}
			require.NoError(t, st.DB().Create(&a).Error)
			svc := store.Service{ApplicationID: a.ID, Name: "web", Image: "img:1", Replicas: 1}
			require.NoError(t, st.DB().Create(&svc).Error)
			ups = append(ups, upload{a.ID, svc.ID})
		}
		room, err := st.PackageRoom(ctx, env.ID)
		require.NoError(t, err)
		require.EqualValues(t, 1000, room.Bytes, "each upload alone fits")

		errs := make(chan error, len(ups))
		for i, u := range ups {
			go func() {
				run := &store.Run{Kind: berth.KindRelease, Subject: "acme/dev/" + []string{"shop", "blog"}[i], StartedBy: "dev"}
				rel := &store.Release{ServiceID: u.svc, Kind: berth.ReleaseFile, Version: "1", PackageSHA256: []string{"aa", "bb"}[i], PackageSize: 700}
				errs <- st.BeginRelease(ctx, u.app, run, rel, "app/"+[]string{"shop", "blog"}[i])
			}()
		}
		var refused []error
		for range ups {
			if err := <-errs; err != nil {
				refused = append(refused, err)
			}
		}
		require.Len(t, refused, 1, "exactly one of the two releases opens")
		var be *berth.Error
		require.ErrorAs(t, refused[0], &be)
		require.Equal(t, "package_quota", be.Reason)
		require.Contains(t, be.Message, "tenant acme's package quota would hold 1400 bytes of 1000 bytes")
		tenant, _, err := st.PackageUsage(ctx, env.TenantID, env.ID)
		require.NoError(t, err)
		require.EqualValues(t, 700, tenant)
		var runs int64
		require.NoError(t, st.DB().Model(&store.Run{}).Count(&runs).Error)
		require.EqualValues(t, 1, runs, "the refused release leaves no run behind")

		// The same package again takes no more room.
		run := &store.Run{Kind: berth.KindRelease, Subject: "acme/dev/other", StartedBy: "dev"}
		a := store.Application{EnvironmentID: env.ID, Name: "other", State: berth.StateRunning}
		require.NoError(t, st.DB().Create(&a).Error)
		svc := store.Service{ApplicationID: a.ID, Name: "web", Image: "img:1", Replicas: 1}
		require.NoError(t, st.DB().Create(&svc).Error)
		var won store.Release
		require.NoError(t, st.DB().Where("run_id > 0").First(&won).Error)
		rel := &store.Release{ServiceID: svc.ID, Kind: berth.ReleaseFile, Version: "1", PackageSHA256: won.PackageSHA256, PackageSize: 700}
		require.NoError(t, st.BeginRelease(ctx, a.ID, run, rel, "app/other"))
	})
}
