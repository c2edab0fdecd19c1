package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func TestCreateHost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()

		// A caller cannot smuggle a host straight into ready: it must be checked first.
		h := &store.Host{Name: "zeta", Region: "eu-west", Endpoint: "unix:///var/run/docker.sock", IP: "127.0.0.1", VolumeRoot: "/srv/berth", State: berth.HostReady}
		require.NoError(t, st.CreateHost(ctx, h))
		require.NotZero(t, h.ID)
		require.Equal(t, berth.HostPending, h.State)

		// The second host in the same region must reuse the region, not fail on it.
		h2 := &store.Host{Name: "alpha", Region: "eu-west", Endpoint: "tcp://10.0.0.2:2376", IP: "10.0.0.2", VolumeRoot: "/data"}
		require.NoError(t, st.CreateHost(ctx, h2))
		h3 := &store.Host{Name: "mid", Region: "us-east", Endpoint: "tcp://10.1.0.3:2376", IP: "10.1.0.3"}
		require.NoError(t, st.CreateHost(ctx, h3))

		var regions []store.Region
		require.NoError(t, st.DB().Order("name").Find(&regions).Error)
		require.Len(t, regions, 2)
		require.Equal(t, "eu-west", regions[0].Name)
		require.Equal(t, "us-east", regions[1].Name)

		got, err := st.Host(ctx, h.ID)
		require.NoError(t, err)
		require.Equal(t, "zeta", got.Name)
		require.Equal(t, "eu-west", got.Region)
		require.Equal(t, "unix:///var/run/docker.sock", got.Endpoint)
		require.Equal(t, "127.0.0.1", got.IP)
		require.Equal(t, "/srv/berth", got.VolumeRoot)
		require.Equal(t, berth.HostPending, got.State)
		require.Nil(t, got.CheckedAt)

		byName, err := st.HostByName(ctx, "alpha")
		require.NoError(t, err)
		require.Equal(t, h2.ID, byName.ID)

		hosts, err := st.Hosts(ctx)
		require.NoError(t, err)
		require.Len(t, hosts, 3)
		require.Equal(t, []string{"alpha", "mid", "zeta"}, []string{hosts[0].Name, hosts[1].Name, hosts[2].Name})

		dup := &store.Host{Name: "zeta", Region: "ap-south", Endpoint: "unix:///other.sock"}
		requireConflict(t, st.CreateHost(ctx, dup))
		// The failed insert must not leave its new region behind.
		require.EqualValues(t, 2, countRows(t, st, &store.Region{}, ""))
		require.EqualValues(t, 3, countRows(t, st, &store.Host{}, ""))
	})
}

func TestHostNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		_, err := st.Host(ctx, 4242)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = st.HostByName(ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		err = st.SetHostFacts(ctx, 4242, berth.HostFacts{State: berth.HostReady})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestSetHostFacts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := newHost(t, st, "h1", "127.0.0.1", false)
		before := time.Now().Add(-time.Second)

		facts := berth.HostFacts{State: berth.HostReady, EngineVersion: "27.1.1", APIVersion: "1.46", CPUs: 8, MemoryBytes: 16 << 30}
		require.NoError(t, st.SetHostFacts(ctx, h.ID, facts))
		got, err := st.Host(ctx, h.ID)
		require.NoError(t, err)
		require.Equal(t, berth.HostReady, got.State)
		require.Equal(t, "27.1.1", got.EngineVersion)
		require.Equal(t, "1.46", got.APIVersion)
		require.Equal(t, 8, got.CPUs)
		require.EqualValues(t, 16<<30, got.MemoryBytes)
		require.Empty(t, got.Reason)
		require.NotNil(t, got.CheckedAt)
		require.True(t, got.CheckedAt.After(before), "CheckedAt %s should be after %s", got.CheckedAt, before)
		require.WithinDuration(t, time.Now(), *got.CheckedAt, time.Minute)
		firstCheck := *got.CheckedAt

		// A failed check must overwrite with zero values too, or a down host
		// would keep advertising the CPUs it had when it was last up.
		require.NoError(t, st.SetHostFacts(ctx, h.ID, berth.HostFacts{State: berth.HostDown, Reason: "connection refused"}))
		got, err = st.Host(ctx, h.ID)
		require.NoError(t, err)
		require.Equal(t, berth.HostDown, got.State)
		require.Equal(t, "connection refused", got.Reason)
		require.Empty(t, got.EngineVersion)
		require.Empty(t, got.APIVersion)
		require.Zero(t, got.CPUs)
		require.Zero(t, got.MemoryBytes)
		require.False(t, got.CheckedAt.Before(firstCheck))

		// Workers repeat Finish on retry: recording the same facts again,
		// however quickly, must not claim the host has vanished.
		for i := 0; i < 25; i++ {
			require.NoError(t, st.SetHostFacts(ctx, h.ID, facts), "repeat %d", i)
		}
		got, err = st.Host(ctx, h.ID)
		require.NoError(t, err)
		require.Equal(t, berth.HostReady, got.State)
		require.Equal(t, "eu-west", got.Region, "facts must not touch the host's identity")
		require.Equal(t, "h1", got.Name)
	})
}

func TestHostRef(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		h := &store.Host{Name: "remote", Region: "eu-west", Endpoint: "tcp://10.0.0.7:2376", IP: "10.0.0.7", VolumeRoot: "/var/lib/berth",
			TLSCA: "/etc/berth/ca.pem", TLSCert: "/etc/berth/cert.pem", TLSKey: "/etc/berth/key.pem", Labels: "ssd=true"}
		require.NoError(t, st.CreateHost(ctx, h))
		want := berth.HostRef{ID: h.ID, Name: "remote", Region: "eu-west", Endpoint: "tcp://10.0.0.7:2376", IP: "10.0.0.7",
			VolumeRoot: "/var/lib/berth", TLSCA: "/etc/berth/ca.pem", TLSCert: "/etc/berth/cert.pem", TLSKey: "/etc/berth/key.pem"}
		require.Equal(t, want, h.Ref())

		// Workers get the ref from the database, so it must survive the round trip.
		got, err := st.HostByName(ctx, "remote")
		require.NoError(t, err)
		require.Equal(t, want, got.Ref())
	})
}
