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

func TestParseLogRotation(t *testing.T) {
	spec := parseOK(t, `services:
  plain:
    image: x
  quiet:
    image: x
    logging:
      driver: json-file
      options: {max-size: 1m, max-file: "2", compress: "true"}
  local:
    image: x
    logging: {driver: local, options: {max-file: "5"}}
`, DefaultOptions())
	plain, quiet, local := spec.Service("plain"), spec.Service("quiet"), spec.Service("local")
	size, files := plain.LogRotation()
	require.Equal(t, [2]int64{10 << 20, 3}, [2]int64{size, int64(files)}, "the default rotation")
	require.Equal(t, int64(berth.DefaultLogBytes), plain.Resources().LogBytes)
	require.Zero(t, plain.LogFileBytes, "the default stays out of the spec, so older specs keep their hash")
	require.Equal(t, int64(2<<20), quiet.Resources().LogBytes)
	require.Contains(t, quiet.Notes, `logging option "compress" ignored; the platform sets only max-size and max-file`)
	require.Equal(t, int64(50<<20), local.LogBytes())
	require.Contains(t, local.Notes[0], "logging driver local kept as json-file")

	_, err := Parse(t.Context(), "demo", []byte(`services:
  a:
    image: x
    logging: {driver: syslog, options: {syslog-address: "tcp://203.0.113.9:514"}}
  b:
    image: x
    logging: {options: {max-size: 1k}}
  c:
    image: x
    logging: {options: {max-file: "0"}}
  d:
    image: x
    logging: {options: {max-size: 512m, max-file: "4"}}
`), DefaultOptions())
	requireRefused(t, err,
		`service "a": logging driver "syslog" is not allowed`,
		`service "b": logging max-size "1k" must be a size from 1m to 1g`,
		`service "c": logging max-file "0" must be a number from 1 to 20`,
		`service "d": logging keeps 2GiB (max-size times max-file); at most 1GiB per instance`)
}

func TestParseVolumeSizes(t *testing.T) {
	spec := parseOK(t, `services:
  db:
    image: x
    volumes: [data:/var/lib/db, data:/again, scratch:/tmp/s]
  plain:
    image: x
volumes:
  data:
    driver_opts: {size: 10m}
  scratch: {}
`, DefaultOptions())
	db := spec.Service("db")
	require.Equal(t, int64(10<<20), db.Volumes[0].SizeBytes)
	require.Zero(t, db.Volumes[2].SizeBytes, "no size declared: the default counts, and the spec stays as before")
	require.Equal(t, int64(10<<20+berth.DefaultVolumeBytes), db.Resources().VolumeBytes, "each volume once, the undeclared one at the default")
	require.Zero(t, spec.Service("plain").Resources().VolumeBytes)

	_, err := Parse(t.Context(), "demo", []byte(`services:
  a:
    image: x
    volumes: [tiny:/t, odd:/o, both:/b]
volumes:
  tiny: {driver_opts: {size: 10k}}
  odd: {driver_opts: {size: lots}}
  both: {driver_opts: {size: 1g, type: tmpfs}}
`), DefaultOptions())
	requireRefused(t, err,
		`volume "tiny": size "10k" must be a size from 1m to 1t`,
		`volume "odd": size "lots" must be a size from 1m to 1t`,
		`volume "both": driver_opts other than size are not allowed`)
}
