package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/berth-dev/berth/workflows"
)

// unit is the [Service] section of a systemd unit, as far as starting its
// process goes.
type unit struct {
	name     string
	settings map[string][]string
}

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unit{name: filepath.Base(path), settings: map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", path, line)
			u.settings[section+k] = append(u.settings[section+k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

func (u unit) get(key string) []string { return u.settings["[Service]"+key] }

// envFile reads KEY=VALUE lines as systemd's EnvironmentFile does (no
// quoting is used in ours).
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: %q", path, line)
		out[k] = v
	}
	return out
}

// command is what systemd would run for u, as instance inst with
// credentials in creds: its Environment= lines over the environment
// files' values, specifiers expanded, the binary replaced by the one
// under test.
func (hs *harness) command(t *testing.T, u unit, key string, env map[string]string, creds, inst string) *exec.Cmd {
	t.Helper()
	expand := strings.NewReplacer("%d", creds, "%i", inst)
	vars := map[string]string{}
	for k, v := range env {
		vars[k] = v
	}
	for _, line := range u.get("Environment") {
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = expand.Replace(v)
		}
	}
	lines := u.get(key)
	require.Len(t, lines, 1, "%s has one %s", u.name, key)
	argv := strings.Fields(expand.Replace(lines[0]))
	require.Equal(t, "/usr/local/bin/berth", argv[0], "%s runs the installed binary", u.name)
	cmd := exec.Command(hs.bin, argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// The production layout in deploy/systemd: systemd accepts every unit
// without a warning, each is hardened, and the processes its ExecStart
// lines start, with its environment file and credentials, come up on this
// machine: the migration, an API server that answers, and a regional
// worker that serves its metrics. Only what differs on a test machine is
// changed (addresses, database, data folder, the nftables table), and
// systemd is not PID 1 here, so the lines are run by the test.
func TestSystemdLayoutBoots(t *testing.T) {
	hs := needHarness(t)
	dir := filepath.Join(hs.root, "deploy", "systemd")
	names := []string{"berth-migrate.service", "berth-server.service", "berth-worker.service", "berth-region-worker@.service"}
	units := map[string]unit{}
	for _, n := range names {
		units[n] = readUnit(t, filepath.Join(dir, n))
	}

	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		skipOrFail(t, "no systemd-analyze to check the units with")
	} else {
		tmp := t.TempDir()
		var paths []string
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			require.NoError(t, err)
			target := n
			if strings.HasSuffix(n, "@.service") {
				target = strings.Replace(n, "@.service", "@eu-2.service", 1)
			}
			// verify checks that ExecStart's binary exists.
			require.NoError(t, os.WriteFile(filepath.Join(tmp, target), []byte(strings.ReplaceAll(string(b), "/usr/local/bin/berth", hs.bin)), 0o644))
			paths = append(paths, filepath.Join(tmp, target))
		}
		// The Temporal server's unit, when its binary is built (make
		// test-prod builds it).
		bin := filepath.Join(hs.root, "bin", "temporal-server")
		if _, err := os.Stat(bin); err == nil {
			b, err := os.ReadFile(filepath.Join(dir, "temporal-server.service"))
			require.NoError(t, err)
			target := filepath.Join(tmp, "temporal-server.service")
			require.NoError(t, os.WriteFile(target, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/temporal-server", bin)), 0o644))
			paths = append(paths, target)
		}
		out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")
	}
	for _, n := range names {
		u := units[n]
		for _, want := range [][2]string{{"NoNewPrivileges", "yes"}, {"ProtectSystem", "strict"}, {"ProtectHome", "yes"},
			{"PrivateTmp", "yes"}, {"UMask", "0077"}} {
			require.Equal(t, []string{want[1]}, u.get(want[0]), "%s: %s", n, want[0])
		}
		require.NotEmpty(t, u.get("CapabilityBoundingSet"), "%s bounds its capabilities", n)
		require.NotEmpty(t, u.get("LoadCredential"), "%s takes its secrets as credentials", n)
	}
	tu := readUnit(t, filepath.Join(dir, "temporal-server.service"))
	for _, want := range [][2]string{{"NoNewPrivileges", "yes"}, {"ProtectSystem", "strict"}, {"ProtectHome", "yes"},
		{"PrivateTmp", "yes"}, {"UMask", "0077"}, {"CapabilityBoundingSet", ""}, {"WorkingDirectory", "/etc/temporal"}} {
		require.Equal(t, []string{want[1]}, tu.get(want[0]), "temporal-server.service: %s", want[0])
	}
	// The config's relative paths (config/dynamicconfig/…) are read from
	// the working folder, as deploy/local/temporal-server.sh runs it.
	require.Equal(t, []string{"/usr/local/bin/temporal-server --root /etc/temporal --config config --env berth --allow-no-auth start"}, tu.get("ExecStart"))
	for _, n := range []string{"berth-migrate.service", "berth-server.service"} {
		require.Equal(t, []string{"yes"}, units[n].get("DynamicUser"), n)
		require.Equal(t, []string{""}, units[n].get("CapabilityBoundingSet"), "%s has no capability", n)
	}

	// The credentials the units load, and the environment file with what
	// differs here.
	creds := t.TempDir()
	key, err := os.ReadFile(filepath.Join(hs.logDir, "payload.key"))
	require.NoError(t, err)
	for name, value := range map[string]string{"db-dsn": hs.dbDSN, "api-token": hs.token, "payload.key": string(key)} {
		require.NoError(t, os.WriteFile(filepath.Join(creds, name), []byte(value), 0o600))
	}
	env := envFile(t, filepath.Join(dir, "berth.env.example"))
	table := "berth_" + hs.tenant + "_sd"
	t.Cleanup(func() { _ = dropFirewallTables(t.Context(), table) })
	for k, v := range map[string]string{
		"BERTH_DB_DRIVER": hs.dbDriver, "BERTH_TEMPORAL_ADDRESS": hs.temporalAddr, "BERTH_TEMPORAL_NAMESPACE": hs.namespace,
		"BERTH_DATA": t.TempDir(), "BERTH_REGISTRY": hs.registry, "BERTH_LISTEN": freeAddr(t), "BERTH_PUBLIC_URL": "",
		"BERTH_METRICS_LISTEN": freeAddr(t), "BERTH_HAPROXY_STATS": freeAddr(t), "BERTH_FIREWALL_TABLE": table,
		"BERTH_PORT_MIN": fmt.Sprint(hs.portMin), "BERTH_PORT_MAX": fmt.Sprint(hs.portMax),
	} {
		_, known := env[k]
		require.True(t, known || k == "BERTH_FIREWALL_TABLE", "the example sets %s", k)
		env[k] = v
	}
	if hs.temporalTLS != "" {
		// make test-prod: the production server takes only mutual TLS.
		for _, kv := range hs.temporalTLSEnv() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}

	migrate := hs.command(t, units["berth-migrate.service"], "ExecStart", env, creds, "")
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, "berth migrate: %s", out)

	server := hs.command(t, units["berth-server.service"], "ExecStart", env, creds, "")
	hs.spawnFor(t, "systemd-server", server)
	region := "sd" + randHex(3)
	worker := hs.command(t, units["berth-region-worker@.service"], "ExecStart", env, creds, region)
	require.Contains(t, worker.Args, "-regions")
	require.Contains(t, worker.Args, region)
	hs.spawnFor(t, "systemd-worker", worker)
	for what, u := range map[string]string{"the API": "http://" + env["BERTH_LISTEN"] + "/healthz",
		"the regional worker's metrics":               "http://" + env["BERTH_METRICS_LISTEN"] + "/metrics",
		"the region's HAProxy, which the worker runs": "http://" + env["BERTH_HAPROXY_STATS"] + "/metrics"} {
		require.Eventually(t, func() bool {
			resp, err := http.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 30*time.Second, 100*time.Millisecond, "%s never answered at %s; see %s/systemd-*.log", what, u, hs.logDir)
	}
	// The worker is up once it polls its region's task queue.
	require.Eventually(t, func() bool {
		resp, err := hs.tc.DescribeTaskQueue(t.Context(), workflows.RegionTaskQueue(region), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		return err == nil && len(resp.Pollers) > 0
	}, 30*time.Second, 100*time.Millisecond, "the regional worker never polled %s", workflows.RegionTaskQueue(region))
}
