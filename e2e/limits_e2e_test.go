package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// An environment's resource policy: a file over a maximum is refused naming
// the service and the limit; a file that says nothing gets the defaults,
// which the engine and the kernel apply (read from docker inspect and from
// the container's own cgroup); a fork bomb inside stops at the pids limit
// while the instance and its engine keep answering; every container's log
// is rotated.
func TestResourceLimitsAreEnforced(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-lim"
	apps := hs.newEnvWith(t, tenant, map[string]any{"name": "dev", "limits": map[string]any{
		"defaultMemoryBytes": 128 << 20, "defaultNanoCPUs": 500_000_000, "defaultPids": 64, "maxMemoryBytes": 256 << 20}},
		hs.hosts[0].Name)

	var refused struct {
		Error struct{ Message string } `json:"error"`
	}
	big := []byte("services:\n  web:\n    image: " + sampleImage + "\n    mem_limit: 1g\n")
	require.Equal(t, http.StatusBadRequest, hs.api(t, "POST", apps+"?name=big", "application/yaml", big, &refused))
	require.Contains(t, refused.Error.Message, `service "web": memory limit 1GiB is over this environment's maximum of 256MiB`)
	require.Empty(t, hs.containersOf(t, tenant), "nothing started")

	hs.deployOK(t, apps, "small", webCompose("web", 1, ""))
	web := serviceOf(t, hs.app(t, apps, "small"), "web")
	insp, err := hs.hosts[0].Engine.ContainerInspect(context.Background(), web.Instances[0].Name, client.ContainerInspectOptions{})
	require.NoError(t, err)
	hc := insp.Container.HostConfig
	require.Equal(t, int64(128<<20), hc.Memory)
	require.Equal(t, int64(500_000_000), hc.NanoCPUs)
	require.NotNil(t, hc.PidsLimit)
	require.Equal(t, int64(64), *hc.PidsLimit)
	require.Equal(t, "json-file", hc.LogConfig.Type)
	require.Equal(t, "10m", hc.LogConfig.Config["max-size"])
	require.Equal(t, "3", hc.LogConfig.Config["max-file"])

	base := instanceURL(t, web)
	code, body := httpGet(t, base+"/cgroup")
	require.Equal(t, http.StatusOK, code, body)
	var cg struct{ Memory, Pids string }
	require.NoError(t, json.Unmarshal([]byte(body), &cg))
	require.Equal(t, strconv.Itoa(128<<20), cg.Memory, "the kernel applies the memory limit")
	require.Equal(t, "64", cg.Pids, "the kernel applies the pids limit")

	code, body = httpGet(t, base+"/forkbomb?n=1000")
	require.Equal(t, http.StatusOK, code, body)
	var fb struct {
		Started int
		Refused string
	}
	require.NoError(t, json.Unmarshal([]byte(body), &fb))
	t.Logf("fork bomb under pids limit 64: %d children started, then %q", fb.Started, fb.Refused)
	require.Less(t, fb.Started, 64, "the pids limit stops the bomb: %s", body)
	require.NotEmpty(t, fb.Refused, "the kernel refused a fork: %s", body)
	code, body = httpGet(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, "the instance still answers: %s", body)
	_, err = hs.hosts[0].Engine.Ping(context.Background(), client.PingOptions{})
	require.NoError(t, err, "the engine still answers")
}
