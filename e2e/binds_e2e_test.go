package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

// Bind mounts are folders of the environment's own root: a tenant binds
// <root>/<tenant>/<env>/<name> and nothing else, not another tenant's
// folder and not a path inside a folder, where a container could have made
// a link to the host's /.
func TestBindsStayInTheEnvironmentsRoot(t *testing.T) {
	hs := needHarness(t)
	root := filepath.Join(hs.logDir, "binds")
	mine, theirs := hs.tenant+"-bindme", hs.tenant+"-bindyou"
	apps := hs.newEnvOn(t, mine, hs.hosts[0].Name)
	other := hs.newEnvOn(t, theirs, hs.hosts[0].Name)
	withBind := func(src string) []byte {
		return []byte(fmt.Sprintf(`services:
  web:
    image: %s
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    volumes: ["%s:/data"]
    x-berth: {health: {http: /healthz}}
`, sampleImage, src))
	}
	own := filepath.Join(root, mine, "dev", "data")
	var started struct {
		runStartedBody
		Error struct{ Message string }
	}
	code := hs.api(t, "POST", apps+"?name=shop", "application/yaml", withBind(own), &started)
	require.Equal(t, http.StatusAccepted, code, started.Error.Message)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	info, err := os.Stat(own)
	require.NoError(t, err, "the engine made the environment's folder")
	require.True(t, info.IsDir())
	// What a container with the folder mounted rw could do.
	require.NoError(t, os.Symlink("/", filepath.Join(own, "link")))

	for _, tc := range []struct {
		apps, src string
	}{
		{apps, filepath.Join(own, "link")},
		{other, own},
		{apps, filepath.Join(root, "data")},
		{apps, "/etc"},
	} {
		var e struct{ Error struct{ Message string } }
		code := hs.api(t, "POST", tc.apps+"?name=evil", "application/yaml", withBind(tc.src), &e)
		require.Equal(t, http.StatusBadRequest, code, tc.src)
		require.Contains(t, e.Error.Message, "is not a folder directly in an allowed root", tc.src)
	}
	require.Zero(t, countAll(hs.containersOf(t, theirs)))
}
