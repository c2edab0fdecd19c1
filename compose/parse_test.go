package compose

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testdataDir = "../testdata/compose"

// testOptions allow one bind root so that the bind tests exercise the
// "outside the allowed roots" path, not just "binds are off".
func testOptions() Options {
	o := DefaultOptions()
	o.AllowedBindRoots = []string{"/srv/berth"}
	return o
}

func readTestdata(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, rel))
	require.NoError(t, err)
	return b
}

func parseOK(t *testing.T, body string, opts Options) *Spec {
	t.Helper()
	spec, err := Parse(context.Background(), "demo", []byte(body), opts)
	require.NoError(t, err)
	require.NotNil(t, spec)
	return spec
}

func requireRefused(t *testing.T, err error, wants ...string) *ValidationError {
	t.Helper()
	require.Error(t, err)
	var verr *ValidationError
	require.True(t, errors.As(err, &verr), "want *ValidationError, got %T: %v", err, err)
	require.NotEmpty(t, verr.Problems)
	for _, w := range wants {
		require.Contains(t, verr.Error(), w)
	}
	return verr
}

func TestParseValidTestdata(t *testing.T) {
	sampleHealth := &HealthSpec{HTTPPath: "/healthz"}
	sampleEnv := []string{"APP_VERSION=v1", "LISTEN=:8080"}
	port8080 := []PortSpec{{ContainerPort: 8080, Protocol: "tcp"}}

	tests := []struct {
		file string
		want []ServiceSpec
	}{
		{
			file: "web-api.yaml",
			// api first: web depends on it, although web is written first.
			want: []ServiceSpec{
				{Name: "api", Image: "berth-sample:v1", Replicas: 2, Env: sampleEnv, Ports: port8080, Health: sampleHealth},
				{Name: "web", Image: "berth-sample:v1", Replicas: 3, Env: sampleEnv, Ports: port8080, DependsOn: []string{"api"}, Health: sampleHealth},
			},
		},
		{
			file: "single.yaml",
			want: []ServiceSpec{
				{Name: "app", Image: "berth-sample:v1", Replicas: 1, Env: []string{"LISTEN=:8080"}, Ports: port8080, Health: sampleHealth},
			},
		},
		{
			file: "fixed-port.yaml",
			want: []ServiceSpec{{
				Name: "app", Image: "berth-sample:v1", Replicas: 1, Env: []string{"LISTEN=:8080"}, Ports: port8080, Health: sampleHealth,
				Notes: []string{"port 8080: fixed host port 80 ignored; the platform allocates host ports"},
			}},
		},
		{
			file: "missing-image.yaml",
			want: []ServiceSpec{
				{Name: "app", Image: "berth-missing:nope", Replicas: 1, Env: []string{"LISTEN=:8080"}, Ports: port8080, Health: sampleHealth},
			},
		},
	}

	files, err := filepath.Glob(filepath.Join(testdataDir, "*.yaml"))
	require.NoError(t, err)
	require.Len(t, files, len(tests), "every valid testdata file needs a case here")

	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			spec, err := Parse(context.Background(), "sample", readTestdata(t, tc.file), testOptions())
			require.NoError(t, err)
			require.Equal(t, "sample", spec.Project)
			require.Equal(t, tc.want, spec.Services)

			sum, err := hex.DecodeString(spec.Hash)
			require.NoError(t, err)
			require.Len(t, sum, 32)
		})
	}
}

// hostile maps every file in testdata/compose/hostile to words its refusal
// must contain. A new hostile file without an entry fails the test.
var hostile = map[string][]string{
	"bad-service-name.yaml":        {`service "Web_App"`, "must match"},
	"billion-laughs.yaml":          {"aliases are expanded"},
	"bind-etc.yaml":                {`bind mount source "/etc" is not a folder directly in an allowed root`},
	"bind-traversal.yaml":          {`bind mount source "/srv/berth/../../etc" is not a folder directly in an allowed root`},
	"build-only.yaml":              {`service "app"`, "build is not supported"},
	"cap-all.yaml":                 {`cap_add "ALL" is not allowed`},
	"cap-sys-admin.yaml":           {`cap_add "SYS_ADMIN" is not allowed`},
	"cgroup-parent.yaml":           {"cgroup_parent is not allowed"},
	"configs-environment.yaml":     {`config "token": environment sources are not allowed`},
	"cycle.yaml":                   {"dependency cycle: a -> b -> c -> a"},
	"devices.yaml":                 {`service "app": devices are not allowed`},
	"docker-sock-dir.yaml":         {`"/var/run" would expose the Docker socket`},
	"docker-sock.yaml":             {`"/var/run/docker.sock" would expose the Docker socket`},
	"env-file.yaml":                {`service "app": env_file is not allowed`},
	"extends-file.yaml":            {"extends with a file is not allowed"},
	"external-volume.yaml":         {`volume "other": external volumes are not allowed`},
	"hook-privileged.yaml":         {"hooks are not supported", "privileged hooks are not allowed"},
	"include.yaml":                 {"include is not allowed"},
	"ipc-host.yaml":                {`ipc "host" is not allowed`},
	"label-file.yaml":              {"label_file is not allowed"},
	"malformed.yaml":               {"compose file is not valid", "line 3"},
	"many-problems.yaml":           {`service "web": privileged is not allowed`, `service "web": pid "host" is not allowed`, `service "web": depends on unknown service "db"`, `service "worker": build is not supported`, `service "worker": cap_add "NET_ADMIN" is not allowed`},
	"network-container.yaml":       {`network_mode "container:berth-proxy" is not allowed`},
	"network-host.yaml":            {`service "app": network_mode "host" is not allowed`},
	"no-image.yaml":                {`service "app": image is required`},
	"pid-host.yaml":                {`service "app": pid "host" is not allowed`},
	"port-range-interpolated.yaml": {"publishes 65535 ports"},
	"port-range.yaml":              {`port range "1-65535" publishes 65535 ports; at most 100`},
	"privileged.yaml":              {`service "app": privileged is not allowed`},
	"relative-bind.yaml":           {`bind mount source "./data" must be an absolute path`},
	"secrets-file.yaml":            {`secret "key": file, environment and content sources are not allowed`, "POST /api/v1/tenants/{tenant}/secrets", "external: true"},
	"security-opt-apparmor.yaml":   {`security_opt "apparmor=unconfined" is not allowed`, `security_opt "label=disable" is not allowed`},
	"security-opt-unconfined.yaml": {`security_opt "seccomp=unconfined" is not allowed`},
	"sysctls.yaml":                 {"sysctls are not allowed"},
	"too-many-ports.yaml":          {"publishes 1200 ports; the limit is 1000"},
	"too-many-replicas.yaml":       {"replicas 500 is more than the maximum 100"},
	"too-many-services.yaml":       {"51 services; the limit is 50"},
	"unknown-dependency.yaml":      {`service "web": depends on unknown service "db"`},
	"use-api-socket.yaml":          {"use_api_socket is not allowed"},
	"userns-host.yaml":             {`userns_mode "host" is not allowed`},
	"uts-host.yaml":                {`uts "host" is not allowed`},
	"volume-custom-name.yaml":      {`volume "data": a custom name ("otherapp_data") is not allowed`},
	"volume-driver-opts.yaml":      {`volume "etc": driver_opts other than size are not allowed`},
	"volumes-from.yaml":            {"volumes_from is not allowed"},
	"x-berth-bad-path.yaml":        {`x-berth.health.http: health path "/healthz now" may contain only`},
	"x-berth-haproxy-path.yaml":    {`x-berth.health.http: health path "/health#ready" may contain only`},
}

func TestParseRefusesHostileTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdataDir, "hostile", "*.yaml"))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			wants, ok := hostile[name]
			require.True(t, ok, "no expectation for hostile file %s", name)
			_, err := Parse(context.Background(), "demo", readTestdata(t, filepath.Join("hostile", name)), testOptions())
			requireRefused(t, err, wants...)
		})
	}
	for name := range hostile {
		require.True(t, seen[name], "expectation for missing hostile file %s", name)
	}
}

func TestParseRefusesBeforeParsing(t *testing.T) {
	tests := []struct {
		name    string
		project string
		body    []byte
		want    string
	}{
		{"too big", "demo", []byte("services: {}\n" + strings.Repeat("#", MaxBodyBytes)), "256 KiB"},
		{"empty", "demo", nil, "compose file is empty"},
		{"blank", "demo", []byte(" \n\t\n"), "compose file is empty"},
		{"bad project name", "Demo App", readTestdata(t, "single.yaml"), `project name "Demo App" must match`},
		{"project name too long", strings.Repeat("a", 64), readTestdata(t, "single.yaml"), "project name"},
		{"no services", "demo", []byte("x-nothing: 1\n"), "no services"},
		{"only profiled services", "demo", []byte("services:\n  debug:\n    image: busybox\n    profiles: [debug]\n"), "every service is behind a profile"},
		{"not a mapping", "demo", []byte("- a\n- b\n"), "compose file is not valid"},
		{"required variable", "demo", []byte("services:\n  app:\n    image: ${IMAGE:?set IMAGE}\n"), "compose file is not valid"},
		{"self-referencing alias", "demo", []byte("a: &a [*a]\nservices:\n  app:\n    image: x\n"), "compose file is not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(context.Background(), tc.project, tc.body, DefaultOptions())
			requireRefused(t, err, tc.want)
		})
	}
}

func TestParseCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Parse(ctx, "demo", readTestdata(t, "single.yaml"), DefaultOptions())
	require.ErrorIs(t, err, context.Canceled)
}

// The server's environment holds its secrets; interpolation must behave as
// if it were empty.
func TestParseDoesNotReadServerEnvironment(t *testing.T) {
	t.Setenv("HOME", "/home/berth-secret-home")
	t.Setenv("BERTH_TEST_SECRET", "s3cret")
	t.Setenv("IMAGE", "evil:latest")

	spec := parseOK(t, `
services:
  app:
    image: ${IMAGE:-berth-sample:v1}
    environment:
      HOME_DIR: ${HOME}
      SECRET: $BERTH_TEST_SECRET
      WITH_DEFAULT: ${BERTH_TEST_SECRET:-fallback}
      PROJECT: ${COMPOSE_PROJECT_NAME}
      BERTH_TEST_SECRET:
`, DefaultOptions())

	app := spec.Service("app")
	require.NotNil(t, app)
	require.Equal(t, "berth-sample:v1", app.Image)
	require.Equal(t, []string{"HOME_DIR=", "PROJECT=demo", "SECRET=", "WITH_DEFAULT=fallback"}, app.Env)
	require.NotContains(t, strings.Join(app.Env, " "), "s3cret")
	require.NotContains(t, strings.Join(app.Env, " "), "berth-secret-home")
}

func TestParseIsDeterministic(t *testing.T) {
	body := readTestdata(t, "web-api.yaml")
	first, err := Parse(context.Background(), "sample", body, DefaultOptions())
	require.NoError(t, err)
	for range 5 {
		again, err := Parse(context.Background(), "sample", body, DefaultOptions())
		require.NoError(t, err)
		require.Equal(t, first, again)
	}

	// Reordering keys does not change the Spec, changing a value does.
	reordered := parseOK(t, `
services:
  api:
    x-berth: {health: {http: /healthz}}
    environment: {LISTEN: ":8080", APP_VERSION: v1}
    ports: ["8080"]
    deploy: {replicas: 2}
    image: berth-sample:v1
  web:
    environment: [LISTEN=:8080, APP_VERSION=v1]
    x-berth: {health: {http: /healthz}}
    ports: ["8080"]
    depends_on: [api]
    deploy: {replicas: 3}
    image: berth-sample:v1
`, DefaultOptions())
	require.Equal(t, first.Hash, reordered.Hash)

	changed, err := Parse(context.Background(), "sample", []byte(strings.Replace(string(body), "replicas: 3", "replicas: 4", 1)), DefaultOptions())
	require.NoError(t, err)
	require.NotEqual(t, first.Hash, changed.Hash)
}

func TestParseOrdersByDependencyThenName(t *testing.T) {
	spec := parseOK(t, `
services:
  c: {image: x}
  b: {image: x, depends_on: [c, a]}
  a: {image: x}
  d: {image: x, depends_on: {b: {condition: service_healthy}}}
`, DefaultOptions())
	var names []string
	for _, s := range spec.Services {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"a", "c", "b", "d"}, names)
	require.Equal(t, []string{"a", "c"}, spec.Service("b").DependsOn)
	require.Nil(t, spec.Service("nope"))
}

func TestParseServiceDetails(t *testing.T) {
	spec := parseOK(t, `
services:
  app:
    image: berth-sample:v1
    scale: 4
    command: ["serve", "--port", "8080"]
    entrypoint: /bin/entry
    user: "1000:1000"
    working_dir: /app
    labels:
      team: web
    cap_add: [net_bind_service, CAP_CHOWN, NET_BIND_SERVICE]
    mem_limit: 256m
    cpus: 0.1
    ports:
      - "8080"
      - "127.0.0.1:9000:9090/udp"
      - target: 7000
        published: "7001"
    expose: ["5000"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/healthz"]
      interval: 10s
      timeout: 2s
      start_period: 1m30s
      retries: 5
    volumes:
      - data:/var/lib/app
      - /srv/berth/shared:/shared:ro
      - type: tmpfs
        target: /tmp
    x-berth:
      health:
        http: /ready?full=1
volumes:
  data: {}
`, testOptions())

	app := spec.Service("app")
	require.NotNil(t, app)
	require.Equal(t, 4, app.Replicas)
	require.Equal(t, []string{"serve", "--port", "8080"}, app.Command)
	require.Equal(t, []string{"/bin/entry"}, app.Entrypoint)
	require.Equal(t, "1000:1000", app.User)
	require.Equal(t, "/app", app.WorkingDir)
	require.Equal(t, map[string]string{"team": "web"}, app.Labels)
	require.Equal(t, []string{"CHOWN", "NET_BIND_SERVICE"}, app.CapAdd)
	require.Equal(t, int64(256<<20), app.MemoryBytes)
	require.Equal(t, int64(100_000_000), app.NanoCPUs)
	// expose: is not published.
	require.Equal(t, []PortSpec{
		{ContainerPort: 8080, Protocol: "tcp"},
		{ContainerPort: 9090, Protocol: "udp"},
		{ContainerPort: 7000, Protocol: "tcp"},
	}, app.Ports)
	require.Equal(t, &HealthSpec{
		Test:          []string{"CMD", "wget", "-qO-", "http://localhost:8080/healthz"},
		IntervalMs:    10_000,
		TimeoutMs:     2_000,
		StartPeriodMs: 90_000,
		Retries:       5,
		HTTPPath:      "/ready?full=1",
	}, app.Health)
	require.Equal(t, []VolumeSpec{
		{Type: "volume", Source: "data", Target: "/var/lib/app"},
		{Type: "bind", Source: "/srv/berth/shared", Target: "/shared", ReadOnly: true},
	}, app.Volumes)
	require.Equal(t, []string{
		"port 9090/udp: fixed host port 9000 ignored; the platform allocates host ports",
		"port 9090/udp: host_ip 127.0.0.1 ignored; the platform chooses the host address",
		"port 7000: fixed host port 7001 ignored; the platform allocates host ports",
		"tmpfs mount /tmp ignored",
	}, app.Notes)
}

func TestParseDeployResourcesAndDisabledHealthcheck(t *testing.T) {
	spec := parseOK(t, `
services:
  app:
    image: berth-sample:v1
    healthcheck:
      disable: true
    deploy:
      replicas: 0
      resources:
        limits:
          memory: 1g
          cpus: "1.5"
`, DefaultOptions())
	app := spec.Service("app")
	require.Equal(t, 0, app.Replicas)
	require.Nil(t, app.Health)
	require.Equal(t, int64(1<<30), app.MemoryBytes)
	require.Equal(t, int64(1_500_000_000), app.NanoCPUs)
}

func TestParseBindRoots(t *testing.T) {
	body := func(src string) string {
		return "services:\n  app:\n    image: x\n    volumes:\n      - " + src + ":/data\n"
	}
	opts := testOptions()

	spec := parseOK(t, body("/srv/berth/app/../data"), opts)
	require.Equal(t, "/srv/berth/data", spec.Service("app").Volumes[0].Source)

	_, err := Parse(context.Background(), "demo", []byte(body("/srv/berth-other")), opts)
	requireRefused(t, err, "not a folder directly in an allowed root")

	// A container with /srv/berth/data mounted rw can make data/link -> /;
	// a later bind of data/link would mount the host's root. Only folders
	// directly in a root are accepted, so no bind goes through a link.
	_, err = Parse(context.Background(), "demo", []byte(body("/srv/berth/data/link")), opts)
	requireRefused(t, err, `bind mount source "/srv/berth/data/link" is not a folder directly in an allowed root`)
	_, err = Parse(context.Background(), "demo", []byte(body("/srv/berth")), opts)
	requireRefused(t, err, "not a folder directly in an allowed root")

	// Each environment has its own folder in each root.
	scoped := opts.ScopedTo("acme", "dev")
	require.Equal(t, []string{"/srv/berth/acme/dev"}, scoped.AllowedBindRoots)
	require.Equal(t, []string{"/srv/berth"}, opts.AllowedBindRoots, "scoping copies")
	spec = parseOK(t, body("/srv/berth/acme/dev/data"), scoped)
	require.Equal(t, "/srv/berth/acme/dev/data", spec.Service("app").Volumes[0].Source)
	_, err = Parse(context.Background(), "demo", []byte(body("/srv/berth/other/dev/data")), scoped)
	requireRefused(t, err, "not a folder directly in an allowed root (/srv/berth/acme/dev)")
	_, err = Parse(context.Background(), "demo", []byte(body("/srv/berth/data")), scoped)
	requireRefused(t, err, "not a folder directly in an allowed root")

	_, err = Parse(context.Background(), "demo", []byte(body("/srv/berth/data")), DefaultOptions())
	requireRefused(t, err, "bind mounts are disabled")

	opts.AllowedBindRoots = []string{"/"}
	_, err = Parse(context.Background(), "demo", []byte(body("/run")), opts)
	requireRefused(t, err, "Docker socket")
}

func TestParseReplicasAndPortLimits(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"negative replicas", "services:\n  app:\n    image: x\n    scale: -1\n", []string{"must not be negative"}},
		{"scale and replicas disagree", "services:\n  app:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n", []string{"disagree"}},
		{"sctp", "services:\n  app:\n    image: x\n    ports: [\"9000/sctp\"]\n", []string{`protocol "sctp" is not supported`}},
		{"range of 101", "services:\n  app:\n    image: x\n    ports: [\"8000-8100\"]\n", []string{"publishes 101 ports"}},
		{"health path without port", "services:\n  app:\n    image: x\n    x-berth: {health: {http: /healthz}}\n", []string{"needs a published port"}},
		{"unknown x-berth key", "services:\n  app:\n    image: x\n    x-berth: {helth: {http: /healthz}}\n", []string{`x-berth: unknown key "helth"`}},
		{"reserved label", "services:\n  app:\n    image: x\n    labels: {berth.app: other}\n", []string{`label "berth.app" is not allowed`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(context.Background(), "demo", []byte(tc.body), DefaultOptions())
			requireRefused(t, err, tc.want...)
		})
	}

	// A range of exactly 100 is fine and publishes every port.
	spec := parseOK(t, "services:\n  app:\n    image: x\n    ports: [\"8000-8099\"]\n", DefaultOptions())
	require.Len(t, spec.Service("app").Ports, 100)

	opts := DefaultOptions()
	opts.MaxReplicas = 5
	_, err := Parse(context.Background(), "demo", []byte("services:\n  app:\n    image: x\n    deploy: {replicas: 6}\n"), opts)
	requireRefused(t, err, "replicas 6 is more than the maximum 5")
}

// An alias bomb must be refused before it is expanded: quickly and without
// allocating anything like its expanded size.
func TestParseAliasBombIsCheap(t *testing.T) {
	// The padding is there to dilute the alias ratio that the YAML library
	// checks on its own; the bomb expands to 8^6 = 262144 nodes.
	var sb strings.Builder
	sb.WriteString("x-pad: [" + strings.TrimSuffix(strings.Repeat("1,", 60000), ",") + "]\n")
	sb.WriteString("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 6; i++ {
		ref := "*a" + strconv.Itoa(i-1)
		sb.WriteString("x-a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [" + strings.TrimSuffix(strings.Repeat(ref+", ", 8), ", ") + "]\n")
	}
	sb.WriteString("services:\n  app:\n    image: x\n    command: *a6\n")

	for name, body := range map[string][]byte{
		"billion-laughs.yaml": readTestdata(t, "hostile/billion-laughs.yaml"),
		"padded":              []byte(sb.String()),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Parse(context.Background(), "demo", body, DefaultOptions())
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)

			requireRefused(t, err, "aliases are expanded")
			require.Less(t, elapsed, 2*time.Second)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "allocated too much")
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.yaml", "hostile/*.yaml"} {
		files, err := filepath.Glob(filepath.Join(testdataDir, pattern))
		require.NoError(f, err)
		for _, file := range files {
			b, err := os.ReadFile(file)
			require.NoError(f, err)
			f.Add(b)
		}
	}
	opts := testOptions()
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = Parse(context.Background(), "fuzz", body, opts)
	})
}

func TestParseNetworksAliasesAndExpose(t *testing.T) {
	spec := parseOK(t, string(readTestdata(t, "real/three-tier.yaml")), DefaultOptions())
	db, backend, front := spec.Service("db"), spec.Service("backend"), spec.Service("frontend")
	require.Equal(t, []NetworkAttach{{Name: "private", Aliases: []string{"database"}, Internal: true}}, db.Networks)
	require.Equal(t, []NetworkAttach{{Name: "private", Internal: true}, {Name: "public", Aliases: []string{"backend"}}}, backend.Networks)
	require.Equal(t, []NetworkAttach{{Name: "public"}}, front.Networks)
	require.Equal(t, []int{3306}, db.Expose)
	require.Equal(t, []int{3306}, db.ReachablePorts())
	require.Equal(t, []int{8080}, front.ReachablePorts())

	// A plain service stays out of the spec's networks (old specs keep
	// their hash) and joins the default network.
	plain := parseOK(t, "services:\n  web:\n    image: x\n", DefaultOptions()).Service("web")
	require.Empty(t, plain.Networks)
	require.Equal(t, []NetworkAttach{{Name: DefaultNetwork}}, plain.AppNetworks())

	none := parseOK(t, "services:\n  job:\n    image: x\n    network_mode: none\n", DefaultOptions()).Service("job")
	require.True(t, none.NoNetwork)
	require.Empty(t, none.AppNetworks())

	ranged := parseOK(t, "services:\n  w:\n    image: x\n    expose: [\"9000-9002\", \"53/udp\", 9000]\n", DefaultOptions()).Service("w")
	require.Equal(t, []int{9000, 9001, 9002}, ranged.Expose)
}

func TestParseRefusesWhatNetworksCannotDo(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"links", "services:\n  a:\n    image: x\n    links: [b]\n  b:\n    image: x\n", "links are not supported: services reach each other by service name"},
		{"external_links", "services:\n  a:\n    image: x\n    external_links: [other_db]\n", "external_links are not supported"},
		{"external network", "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    external: true\n", "external networks are not allowed"},
		{"overlay", "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    driver: overlay\n", `driver "overlay" is not allowed`},
		{"ipam", "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    ipam:\n      config:\n        - subnet: 10.9.0.0/16\n", "ipam is not allowed"},
		{"custom name", "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n    name: shared\n", "a custom name"},
		{"fixed address", "services:\n  a:\n    image: x\n    networks:\n      n:\n        ipv4_address: 10.9.0.5\nnetworks:\n  n: {}\n", "fixed addresses are not allowed"},
		{"bad alias", "services:\n  a:\n    image: x\n    networks:\n      n:\n        aliases: [\"x y\"]\nnetworks:\n  n: {}\n", "must be a DNS name"},
		{"host mode", "services:\n  a:\n    image: x\n    network_mode: host\n", `network_mode "host" is not allowed`},
		{"none with ports", "services:\n  a:\n    image: x\n    network_mode: none\n    ports: [\"80\"]\n", "network_mode none cannot publish ports"},
		{"dotted volume", "services:\n  a:\n    image: x\n    volumes: [\"v.x:/d\"]\nvolumes:\n  v.x: {}\n", `volume "v.x": the name must match`},
		{"expose range", "services:\n  a:\n    image: x\n    expose: [\"1-1000\"]\n", "at most 20 ports"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(context.Background(), "demo", []byte(c.body), DefaultOptions())
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestParseSecretsNameStoredSecrets(t *testing.T) {
	spec := parseOK(t, `services:
  api:
    image: x
    user: "1000:2000"
    secrets:
      - db_password
      - source: api_key
        target: /run/secrets/key.txt
        mode: 0440
  db:
    image: y
    secrets: [db_password]
secrets:
  db_password:
    external: true
  api_key:
    external: true
    name: globex-api-key
`, DefaultOptions())
	require.Equal(t, []SecretMount{
		{Name: "db_password", Target: "db_password", Mode: 0o444},
		{Name: "globex-api-key", Target: "key.txt", Mode: 0o440},
	}, spec.Service("api").Secrets)
	require.Equal(t, []SecretMount{{Name: "db_password", Target: "db_password", Mode: 0o400}}, spec.Service("db").Secrets)
	require.Equal(t, []string{"db_password", "globex-api-key"}, spec.SecretNames())

	// Specs without secrets keep their hash: the field is left out.
	plain := parseOK(t, "services:\n  web:\n    image: x\n", DefaultOptions())
	require.Empty(t, plain.SecretNames())
}

func TestParseRefusesSecretsThatReadTheServer(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"file", "services:\n  a:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./s.txt\n", `secret "s": file, environment and content sources are not allowed`},
		{"environment", "services:\n  a:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    environment: HOME\n", "declare the secret here as `external: true`"},
		{"undefined", "services:\n  a:\n    image: x\n    secrets: [nope]\n", `undefined secret "nope"`},
		{"target outside", "services:\n  a:\n    image: x\n    secrets:\n      - source: s\n        target: /etc/shadow\nsecrets:\n  s:\n    external: true\n", `target "/etc/shadow" must be a file name`},
		{"target climbs", "services:\n  a:\n    image: x\n    secrets:\n      - source: s\n        target: ../x\nsecrets:\n  s:\n    external: true\n", "must be a file name"},
		{"bad name", "services:\n  a:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    external: true\n    name: \"a/b\"\n", `secret name "a/b"`},
		{"uid", "services:\n  a:\n    image: x\n    secrets:\n      - source: s\n        uid: root\nsecrets:\n  s:\n    external: true\n", "uid and gid are not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(context.Background(), "demo", []byte(c.body), DefaultOptions())
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

// The real-world files deploy unchanged: they parse with the default
// policy, and what they mount comes from the secret store.
func TestParseRealFiles(t *testing.T) {
	want := map[string][]string{
		"three-tier.yaml":        nil,
		"wordpress-mysql.yaml":   {"db_password", "db_root_password"},
		"voting-app.yaml":        {"postgres_password"},
		"nginx-flask-mysql.yaml": {"db-password"},
	}
	files, err := filepath.Glob(filepath.Join(testdataDir, "real", "*.yaml"))
	require.NoError(t, err)
	require.Len(t, files, len(want))
	for _, f := range files {
		spec := parseOK(t, string(readTestdata(t, filepath.Join("real", filepath.Base(f)))), DefaultOptions())
		require.Equal(t, want[filepath.Base(f)], spec.SecretNames(), f)
		require.GreaterOrEqual(t, len(spec.Services), 2, f)
	}
}
