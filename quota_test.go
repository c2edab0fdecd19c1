package berth

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuotaShortNamesEachBound(t *testing.T) {
	q := Quota{MaxMemoryBytes: 1 << 30, MaxNanoCPUs: 2e9, MaxInstances: 3}
	require.Empty(t, q.Short(Usage{}, Usage{}.Add(Resources{MemoryBytes: 512 << 20, NanoCPUs: 1e9}, 2)), "exactly full fits")
	require.Equal(t, "memory: 1536MiB asked, 0 of 1GiB in use; cpus: 3 asked, 0 of 2 in use; instances: 3 asked, 1 of 3 in use",
		q.Short(Usage{Instances: 1}, Usage{}.Add(Resources{MemoryBytes: 512 << 20, NanoCPUs: 1e9}, 3)))
	require.Empty(t, Quota{}.Short(Usage{Instances: 1000}, Usage{Instances: 1000}), "no quota, no bound")
	require.Error(t, Quota{MaxInstances: -1}.Check())
	a := Allocatable(2, 1<<30)
	require.Equal(t, int64(1<<30-256<<20), a.MemoryReserved, "at least 256 MiB stays for the system")
	require.Equal(t, int64(1_800_000_000), a.NanoCPUsReserved)
	require.Zero(t, Allocatable(0, 0).MemoryReserved)
}

func TestPackageRoom(t *testing.T) {
	require.Equal(t, int64(-1), Quota{}.PackageRoom(1<<40), "no bound")
	q := Quota{MaxPackageBytes: 1000}
	require.Equal(t, int64(663), q.PackageRoom(337))
	require.Zero(t, q.PackageRoom(1200), "over (the quota came down): no room, never negative")
	require.Equal(t, "337 bytes of 1000 bytes", q.PackageText(337))
	require.Equal(t, "0 of 1GiB", Quota{MaxPackageBytes: 1 << 30}.PackageText(0))
	require.Error(t, Quota{MaxPackageBytes: -1}.Check())
}

func TestLogQuotaCountsEachInstancesRotation(t *testing.T) {
	q := Quota{MaxLogBytes: 100 << 20}
	three := Usage{}.Add(Resources{LogBytes: DefaultLogBytes}, 3)
	require.Equal(t, int64(90<<20), three.LogBytes)
	require.Empty(t, q.Short(Usage{}, three), "three default rotations fit 100 MiB")
	require.Equal(t, "logs: 30MiB asked, 90MiB of 100MiB in use", q.Short(three, Usage{}.Add(Resources{LogBytes: DefaultLogBytes}, 1)))
	require.Empty(t, q.Short(three, Usage{}.Add(Resources{LogBytes: 2 << 20}, 5)), "small rotations fit beside them")
	require.Error(t, Quota{MaxLogBytes: -1}.Check())
}
