package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A port the host refused is kept as held outside berth, the instance gets
// the next free one, and a retry of the move changes nothing more.
func TestMovePortsSkipsHeldPorts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := newHost(t, st, "h1", "10.0.0.1", true)
		env := newEnv(t, st, "acme", "dev", h)
		run := &store.Run{Kind: berth.KindDeploy, WorkflowID: "deploy-shop", EnvironmentID: env.ID}
		app, err := st.BeginDeploy(ctx, env.ID, "shop", "services: {}\n", "h-shop", run, appKey(env.ID, "shop"))
		require.NoError(t, err)
		plan, err := st.PlanDeploy(ctx, berth.PlanRequest{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: env.ID,
			NamePrefix: "acme-dev-shop", PortMin: 20000, PortMax: 20009,
			Services: []berth.ServiceRequest{{Name: "web", Image: "img:1", Replicas: 2, Add: true,
				Ports: []berth.PortRequest{{ContainerPort: 8080, Protocol: "tcp"}}}}})
		require.NoError(t, err)
		require.Equal(t, 20000, plan.Instances[0].Ports[0].HostPort)
		require.Equal(t, 20001, plan.Instances[1].Ports[0].HostPort)

		name := plan.Instances[0].Name
		moved, err := st.MovePorts(ctx, name, []int{20000}, 20000, 20009)
		require.NoError(t, err)
		require.Equal(t, 20002, moved.Ports[0].HostPort)
		require.Equal(t, 8080, moved.Ports[0].ContainerPort)
		again, err := st.MovePorts(ctx, name, []int{20000}, 20000, 20009)
		require.NoError(t, err)
		require.Equal(t, moved.Ports, again.Ports, "a retried move moves nothing")

		pas, err := st.PortAllocations(ctx, h.ID)
		require.NoError(t, err)
		byPort := map[int]string{}
		for _, pa := range pas {
			byPort[pa.Port] = pa.InstanceName
		}
		require.Equal(t, map[int]string{20000: store.HeldOutside, 20001: plan.Instances[1].Name, 20002: name}, byPort)

		// The released instance frees its new port, never the held one.
		require.NoError(t, st.ReleaseInstances(ctx, []string{name}))
		pas, err = st.PortAllocations(ctx, h.ID)
		require.NoError(t, err)
		require.Len(t, pas, 2)
		require.Equal(t, store.HeldOutside, pas[0].InstanceName)

		_, err = st.MovePorts(ctx, "acme-dev-shop-nope-1", []int{20001}, 20000, 20009)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
