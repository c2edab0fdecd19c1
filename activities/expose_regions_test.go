package activities_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/store/storetest"
)

// A service placed in two regions gets a pool in each, holding that
// region's instances only, so each region's load balancer serves its own;
// taking instances out names the pool of each one's region.
func TestExposeAcrossRegions(t *testing.T) {
	for _, b := range storetest.Backends(os.Getenv("BERTH_TEST_MYSQL_DSN")) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st := b.Open(t)
			var hostIDs []uint
			for i, region := range []string{"eu-1", "eu-2"} {
				h := &store.Host{Name: "h-" + region, Region: region, Endpoint: "unix:///var/run/docker.sock",
					IP: fmt.Sprintf("10.0.%d.1", i), VolumeRoot: "/srv/berth"}
				require.NoError(t, st.CreateHost(ctx, h))
				require.NoError(t, st.SetHostFacts(ctx, h.ID, berth.HostFacts{State: berth.HostReady, CPUs: 4, MemoryBytes: 8 << 30}))
				hostIDs = append(hostIDs, h.ID)
			}
			tn, err := st.CreateTenant(ctx, "acme")
			require.NoError(t, err)
			env, err := st.CreateEnvironment(ctx, tn.ID, "prod")
			require.NoError(t, err)
			require.NoError(t, st.AuthoriseHosts(ctx, env.ID, hostIDs))
			run := &store.Run{Kind: "deploy", WorkflowID: "deploy-shop-" + storetest.RandHex(4), TenantID: tn.ID,
				EnvironmentID: env.ID, Subject: "shop", StartedBy: "alice"}
			app, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {}", "h", run, fmt.Sprintf("app:%d/shop", env.ID))
			require.NoError(t, err)
			plan, err := st.PlanDeploy(ctx, berth.PlanRequest{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: env.ID,
				NamePrefix: "acme-prod-shop", PortMin: 31000, PortMax: 31099, Services: []berth.ServiceRequest{{Name: "web",
					Image: "web:1", Replicas: 4, Spec: "{}", Ports: []berth.PortRequest{{ContainerPort: 80, Protocol: "tcp"}}}}})
			require.NoError(t, err)

			a := activities.NewStore(st, st, st)
			ep, err := a.PlanExpose(ctx, activities.ExposeInput{RunID: run.ID, ApplicationID: app.ID, Subject: "acme/prod/shop",
				Services: []activities.ExposeService{{Name: "web"}}, Instances: plan.Instances,
				LB: berth.LBSettings{Enabled: true, ListenIP: "127.0.0.1", PortMin: 32000, PortMax: 32099, Weight: 100}})
			require.NoError(t, err)
			regionOf := map[string]string{}
			for _, pi := range plan.Instances {
				regionOf[pi.Name] = pi.Host.Region
			}
			require.Len(t, ep.Pools, 2)
			seen := map[string]bool{}
			for _, pp := range ep.Pools {
				seen[pp.Region] = true
				require.Equal(t, "acme-prod-shop-web", pp.Backend.Name)
				require.Len(t, pp.Add, 2, "the region's two instances")
				for _, s := range pp.Add {
					require.Equal(t, pp.Region, regionOf[s.Name], "%s is served by its own region's load balancer", s.Name)
				}
			}
			require.Equal(t, map[string]bool{"eu-1": true, "eu-2": true}, seen)

			// Again, as a retried activity would: the same pools.
			again, err := a.PlanExpose(ctx, activities.ExposeInput{RunID: run.ID, ApplicationID: app.ID, Subject: "acme/prod/shop",
				Services: []activities.ExposeService{{Name: "web"}}, Instances: plan.Instances,
				LB: berth.LBSettings{Enabled: true, ListenIP: "127.0.0.1", PortMin: 32000, PortMax: 32099, Weight: 100}})
			require.NoError(t, err)
			require.Equal(t, ep.Pools, again.Pools)

			up, err := a.PlanUnexpose(ctx, activities.UnexposeInput{ApplicationID: app.ID, Subject: "acme/prod/shop",
				Instances: []berth.PlannedInstance{plan.Instances[0], plan.Instances[1]}})
			require.NoError(t, err)
			require.Len(t, up.Pools, 2, "one instance in each region: both pools lose one")
			for _, pr := range up.Pools {
				require.Len(t, pr.Names, 1)
				require.Equal(t, pr.Region, regionOf[pr.Names[0]])
			}
		})
	}
}
