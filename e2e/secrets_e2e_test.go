package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/berth-dev/berth/store"
)

// secretFile is what the sample app's /file says about a mounted secret.
type secretFile struct {
	Mode    string `json:"mode"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Content string `json:"content"`
}

func readSecretFile(t testing.TB, base, path string) (int, secretFile, string) {
	t.Helper()
	code, body := httpGet(t, base+"/file?path="+url.QueryEscape(path))
	var f secretFile
	if code == http.StatusOK {
		require.NoError(t, json.Unmarshal([]byte(body), &f), body)
	}
	return code, f, body
}

// Secrets stored through the API are mounted as files under /run/secrets
// with their content and mode, readable by the service's user; the value is
// nowhere else: not in the Temporal history (raw, through berth's history
// view, or decoded by the Temporal CLI with the key), not in any row of the
// database, not in the server's and worker's logs, not in an image made by
// commit. A missing secret is refused before anything starts.
func TestSecretsMountedAndNowhereElse(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-sec"
	apps := hs.newEnvOn(t, tenant)
	other := hs.newEnvOn(t, hs.tenant+"-sec2")
	value := "pw-" + randHex(12)
	key := "key-" + randHex(12)
	put := func(tenant, name, v string) {
		t.Helper()
		var got store.Secret
		require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/secrets",
			map[string]string{"name": name, "value": v}, &got))
		require.NotZero(t, got.Version)
	}
	put(tenant, "db_password", "first-"+randHex(4))
	put(tenant, "db_password", value) // the newest version is mounted
	put(tenant, "api_key", key)

	body := []byte(fmt.Sprintf(`services:
  web:
    image: %[1]s
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
    secrets:
      - db_password
      - source: api_key
        target: key.txt
        mode: 0440
  worker:
    image: %[1]s
    user: "1000:1001"
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
    secrets: [db_password]
secrets:
  db_password:
    external: true
  api_key:
    external: true
`, sampleImage))

	// Another tenant has no such secrets: refused before any run starts,
	// naming both.
	var refused struct {
		Error struct{ Message string } `json:"error"`
	}
	code := hs.api(t, "POST", other+"?name=vault", "application/yaml", body, &refused)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, refused.Error.Message, "api_key, db_password")
	require.Empty(t, hs.containersOf(t, hs.tenant+"-sec2"), "nothing started")

	run := hs.deployOK(t, apps, "vault", body)
	ab := hs.app(t, apps, "vault")
	web, worker := instanceURL(t, serviceOf(t, ab, "web")), instanceURL(t, serviceOf(t, ab, "worker"))

	code, f, raw := readSecretFile(t, web, "/run/secrets/db_password")
	require.Equal(t, http.StatusOK, code, raw)
	require.Equal(t, value, f.Content)
	require.Equal(t, "0400", f.Mode)
	require.Equal(t, 0, f.UID)
	code, f, raw = readSecretFile(t, web, "/run/secrets/key.txt")
	require.Equal(t, http.StatusOK, code, raw)
	require.Equal(t, key, f.Content)
	require.Equal(t, "0440", f.Mode)
	code, f, raw = readSecretFile(t, worker, "/run/secrets/db_password")
	require.Equal(t, http.StatusOK, code, "a service running as a user reads its secret: %s", raw)
	require.Equal(t, value, f.Content)
	require.Equal(t, "0444", f.Mode, "not root: readable by the service's user")
	require.Equal(t, 0, f.UID)
	code, _, _ = readSecretFile(t, worker, "/run/secrets/key.txt")
	require.Equal(t, http.StatusNotFound, code, "a service sees only the secrets it names")

	secrets := []string{value, key}
	requireAbsent := func(where string, data []byte) {
		t.Helper()
		for _, s := range secrets {
			require.False(t, bytes.Contains(data, []byte(s)), "%s holds a secret value", where)
		}
	}

	// The Temporal history: raw events, berth's decoded view, the CLI
	// decoding with the key.
	it := hs.tc.GetWorkflowHistory(context.Background(), run.WorkflowID, run.TemporalRunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events := 0
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		b, err := proto.Marshal(ev)
		require.NoError(t, err)
		requireAbsent(fmt.Sprintf("history event %d", ev.EventId), b)
		events++
	}
	require.Greater(t, events, 10)
	var page json.RawMessage
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d/history?size=500", run.ID), nil, &page))
	require.Contains(t, string(page), "StartInstance for instance", "berth's view decodes the history")
	requireAbsent("berth's history view", page)
	out, err := exec.Command(hs.temporal, "workflow", "show", "--address", hs.temporalAddr, "--namespace", hs.namespace,
		"-w", run.WorkflowID, "-r", run.TemporalRunID, "-o", "json",
		"--codec-endpoint", hs.apiURL+"/api/v1/codec", "--codec-auth", "Bearer "+hs.token).Output()
	require.NoError(t, err, "%s", out)
	decoded := payloadText(t, out)
	require.Contains(t, decoded, "db_password", "the CLI decodes the history")
	requireAbsent("the decoded history", []byte(decoded))

	// Every row of every table of the database.
	db := hs.store.DB()
	tables, err := db.Migrator().GetTables()
	require.NoError(t, err)
	require.Contains(t, tables, "secrets")
	for _, table := range tables {
		rows, err := db.Table(table).Rows()
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			requireAbsent("table "+table, []byte(fmt.Sprint(vals...)))
		}
		require.NoError(t, rows.Close())
	}

	// The run (its steps, errors and request) and the logs of the server
	// and worker.
	var runBody json.RawMessage
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), nil, &runBody))
	requireAbsent("the run", runBody)
	logs, err := filepath.Glob(filepath.Join(hs.logDir, "*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, logs)
	for _, l := range logs {
		b, err := os.ReadFile(l)
		require.NoError(t, err)
		requireAbsent(l, b)
	}

	// An image committed from the running instance, as a file release
	// commits one, holds no secret: they live in a volume.
	inst := serviceOf(t, ab, "web").Instances[0]
	var eng *client.Client
	for _, th := range hs.hosts {
		if th.Name == inst.Host {
			eng = th.Engine
		}
	}
	require.NotNil(t, eng, inst.Host)
	ctx := context.Background()
	img, err := eng.ContainerCommit(ctx, inst.Name, client.ContainerCommitOptions{Reference: "berth-e2e-commit:" + randHex(4)})
	require.NoError(t, err)
	defer func() { _, _ = eng.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true}) }()
	saved, err := eng.ImageSave(ctx, []string{img.ID})
	require.NoError(t, err)
	tarball, err := io.ReadAll(saved)
	require.NoError(t, err)
	require.NoError(t, saved.Close())
	require.Greater(t, len(tarball), 1<<20, "the image was saved")
	requireAbsent("the committed image", tarball)

	// Delete takes the secret volumes with the instances.
	insp, err := eng.ContainerInspect(ctx, inst.Name, client.ContainerInspectOptions{})
	require.NoError(t, err)
	var vol string
	for _, m := range insp.Container.Mounts {
		if m.Destination == "/run/secrets" {
			vol = m.Name
		}
	}
	require.NotEmpty(t, vol, "the secrets live in their own volume")
	hs.deleteOK(t, apps, "vault")
	_, err = eng.VolumeInspect(ctx, vol, client.VolumeInspectOptions{})
	require.True(t, cerrdefs.IsNotFound(err), "the secrets volume %s is gone: %v", vol, err)
}
