package compose

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

func TestLimitsFromTheFile(t *testing.T) {
	spec := parseOK(t, `services:
  a:
    image: x
    mem_limit: 256m
    pids_limit: 100
    cpus: 0.5
    mem_reservation: 64m
  b:
    image: x
    deploy:
      resources:
        limits: {memory: 1g, cpus: "2", pids: 50}
        reservations: {memory: 128m, cpus: "0.25"}
`, DefaultOptions())
	a, b := spec.Service("a"), spec.Service("b")
	require.Equal(t, int64(256<<20), a.MemoryBytes)
	require.Equal(t, int64(100), a.PidsLimit)
	require.Equal(t, int64(500_000_000), a.NanoCPUs)
	require.Equal(t, int64(64<<20), a.MemoryReservation)
	require.Equal(t, int64(1<<30), b.MemoryBytes)
	require.Equal(t, int64(50), b.PidsLimit)
	require.Equal(t, int64(250_000_000), b.NanoCPUsReserved)

	_, err := Parse(t.Context(), "demo", []byte("services:\n  a:\n    image: x\n    pids_limit: 10\n    deploy:\n      resources:\n        limits: {pids: 20}\n"), DefaultOptions())
	require.ErrorContains(t, err, "pids_limit and deploy.resources.limits.pids disagree")
	_, err = Parse(t.Context(), "demo", []byte("services:\n  a:\n    image: x\n    mem_limit: 64m\n    mem_reservation: 128m\n"), DefaultOptions())
	require.ErrorContains(t, err, "above the memory limit")
}

func TestApplyLimits(t *testing.T) {
	env := berth.Limits{DefaultMemoryBytes: 512 << 20, DefaultNanoCPUs: 1e9, DefaultPids: 512, MaxMemoryBytes: 1 << 30, MaxPids: 1024}
	require.NoError(t, env.Check())

	spec := parseOK(t, "services:\n  plain:\n    image: x\n  sized:\n    image: x\n    mem_limit: 1g\n    pids_limit: 64\n", DefaultOptions())
	require.NoError(t, ApplyLimits(spec, env))
	plain, sized := spec.Service("plain"), spec.Service("sized")
	require.Equal(t, int64(512<<20), plain.MemoryBytes, "the default fills in")
	require.Equal(t, int64(1e9), plain.NanoCPUs)
	require.Equal(t, int64(512), plain.PidsLimit)
	require.Equal(t, int64(1<<30), sized.MemoryBytes, "the file's own limit stays")
	require.Equal(t, int64(64), sized.PidsLimit)

	over := parseOK(t, "services:\n  big:\n    image: x\n    mem_limit: 2g\n  forks:\n    image: x\n    pids_limit: -1\n", DefaultOptions())
	err := ApplyLimits(over, env)
	var verr *ValidationError
	require.ErrorAs(t, err, &verr)
	require.ErrorContains(t, err, `service "big": memory limit 2GiB is over this environment's maximum of 1GiB`)
	require.ErrorContains(t, err, `service "forks": pids limit unlimited is over this environment's maximum of 1024`)

	require.Error(t, berth.Limits{DefaultMemoryBytes: 2 << 30, MaxMemoryBytes: 1 << 30}.Check())
	require.Error(t, berth.Limits{DefaultMemoryBytes: 1 << 20}.Check())
	require.Error(t, berth.Limits{MaxPids: -1}.Check())
}
