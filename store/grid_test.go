package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestGrid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		db := st.DB()
		tn, err := st.CreateTenant(ctx, "shop")
		require.NoError(t, err)
		other, err := st.CreateTenant(ctx, "other")
		require.NoError(t, err)
		dev, err := st.CreateEnvironment(ctx, tn.ID, "dev")
		require.NoError(t, err)
		prod, err := st.CreateEnvironment(ctx, tn.ID, "prod")
		require.NoError(t, err)
		oenv, err := st.CreateEnvironment(ctx, other.ID, "dev")
		require.NoError(t, err)
		mk := func(envID uint, app, image string) (*store.Application, *store.Service) {
			a := &store.Application{EnvironmentID: envID, Name: app, State: berth.StateRunning}
			require.NoError(t, db.Create(a).Error)
			s := &store.Service{ApplicationID: a.ID, Name: "web", Image: image, Replicas: 1, State: berth.StateRunning}
			require.NoError(t, db.Create(s).Error)
			return a, s
		}
		devApp, _ := mk(dev.ID, "web", "registry/web:1.4.1")
		prodApp, prodSvc := mk(prod.ID, "web", "registry/web:1.4.0")
		mk(oenv.ID, "api", "registry/api:2")

		// prod's current release says which version it runs.
		rel := &store.Release{ServiceID: prodSvc.ID, Kind: berth.ReleaseImage, Version: "1.4.0-hotfix", Outcome: berth.ReleaseSucceeded}
		require.NoError(t, db.Create(rel).Error)
		require.NoError(t, db.Create(&store.ServiceReleases{ServiceID: prodSvc.ID, CurrentID: rel.ID, LastGoodID: rel.ID}).Error)
		// dev: two runs, the last one by bob; prod: a run waiting on approval.
		for _, by := range []string{"ann", "bob"} {
			require.NoError(t, st.CreateRun(ctx, &store.Run{Kind: "deploy", TenantID: tn.ID, ApplicationID: devApp.ID, Status: berth.RunSucceeded, StartedBy: by}, ""))
		}
		waitRun := &store.Run{Kind: "release", TenantID: tn.ID, ApplicationID: prodApp.ID, Status: berth.RunRunning, StartedBy: "dana"}
		require.NoError(t, st.CreateRun(ctx, waitRun, ""))
		_, err = st.CreateApproval(ctx, &store.Approval{RunID: waitRun.ID, Step: "approval", TenantID: tn.ID, RoleList: []berth.Role{berth.RoleApprover}, StartedBy: "dana"})
		require.NoError(t, err)

		cells, envs, err := st.Grid(ctx, []uint{tn.ID})
		require.NoError(t, err)
		require.Len(t, envs, 2, "only the tenant's environments")
		require.Len(t, cells, 2)
		byEnv := map[string]store.GridCell{}
		for _, c := range cells {
			byEnv[c.Environment] = c
		}
		require.Equal(t, "1.4.1", byEnv["dev"].Version, "without a release, the image's tag")
		require.Equal(t, "bob", byEnv["dev"].By)
		require.Zero(t, byEnv["dev"].Waiting)
		require.Equal(t, "1.4.0-hotfix", byEnv["prod"].Version)
		require.Equal(t, 1, byEnv["prod"].Waiting)
		require.Equal(t, waitRun.ID, byEnv["prod"].WaitingRunID)
		require.Equal(t, "dana", byEnv["prod"].By)

		all, envs, err := st.Grid(ctx, nil)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Len(t, envs, 3)
	})
}
