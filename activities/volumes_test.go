package activities

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// An instance's folders and its anonymous volumes are its own; a named
// volume is the application's, scoped by tenant, environment and app.
func TestContainerOptionsVolumes(t *testing.T) {
	in := StartInstanceInput{
		Instance: berth.PlannedInstance{Name: "acme-dev-shop-db-1", UID: "u1", Host: berth.HostRef{Name: "h1", IP: "10.0.0.1"}},
		Service: compose.ServiceSpec{Name: "db", Image: "x", Volumes: []compose.VolumeSpec{
			{Type: "volume", Source: "data", Target: "/var/lib/db"},
			{Type: "volume", Target: "/scratch"},
			{Type: "bind", Source: "/srv/binds/acme/dev/in", Target: "/in", ReadOnly: true},
		}},
		Labels: map[string]string{"berth.tenant": "acme", "berth.env": "dev", "berth.app": "shop"},
	}
	opts, err := containerOptions(in, nil)
	require.NoError(t, err)
	require.Equal(t, []string{
		"acme-dev-shop-db-1.package:/berth/package", "acme-dev-shop-db-1.logs:/berth/logs", "acme-dev-shop-db-1.files:/berth/files",
		"acme.dev.shop.data:/var/lib/db", "/srv/binds/acme/dev/in:/in:ro",
	}, opts.HostConfig.Binds)
	require.Equal(t, map[string]struct{}{"/scratch": {}}, opts.Config.Volumes, "anonymous: made and removed with the container")
}
