package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

// uploadRelease posts a package as a multipart file release.
func (hs *harness) uploadRelease(t testing.TB, serviceID uint, fixture string, fields map[string]string) (int, []byte) {
	t.Helper()
	return hs.upload(t, fmt.Sprintf("/api/v1/services/%d/releases", serviceID), fixture, fields)
}

// uploadGrey posts a package with a grey release's document.
func (hs *harness) uploadGrey(t testing.TB, serviceID uint, fixture string, fields map[string]string) (int, []byte) {
	t.Helper()
	return hs.upload(t, fmt.Sprintf("/api/v1/services/%d/grey", serviceID), fixture, fields)
}

func (hs *harness) upload(t testing.TB, path, fixture string, fields map[string]string) (int, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "testdata", "packages", fixture))
	require.NoError(t, err)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, k := range []string{"version", "sha256", "batchSize", "build", "command", "grey"} {
		if v, ok := fields[k]; ok {
			require.NoError(t, mw.WriteField(k, v))
		}
	}
	fw, err := mw.CreateFormFile("package", fixture)
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest("POST", hs.apiURL+path, &body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+hs.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func fileSHA(t testing.TB, fixture string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(), "testdata", "packages", fixture))
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// A file release installs the package into every instance's package volume
// through the Docker API and restarts them in batches: every instance then
// serves the package's content, and its checksum is on every host.
func TestFileRelease(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "file")
	front := "http://" + hs.pool(t, svc.ID).Backend.ListenAddr + "/version"
	l := startLoad(t, front)
	sha := fileSHA(t, "good.tar.gz")
	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0", "sha256": sha, "batchSize": "2"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during the file release: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Equal(t, []string{"v9", "v9", "v9", "v9"}, hs.versions(t, apps))
	// The same checksum sits in every instance's package volume on its host.
	for _, in := range hs.app(t, apps, "shop").Services[0].Instances {
		vol, err := hs.engineOf(t, in.Host).VolumeInspect(context.Background(), in.Name+".package", client.VolumeInspectOptions{})
		require.NoError(t, err, in.Name)
		b, err := os.ReadFile(filepath.Join(vol.Volume.Mountpoint, ".berth-package"))
		require.NoError(t, err, in.Name)
		require.Equal(t, sha, strings.TrimSpace(string(b)), in.Name)
	}
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseFile, rb.Releases[0].Kind)
	require.Equal(t, sha, rb.Releases[0].PackageSHA256)
	require.Equal(t, berth.ReleaseSucceeded, rb.Releases[0].Outcome)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version-file")

	// The next package replaces the folder's content: a file only the
	// earlier package had is gone, not left beside the new ones.
	code, body = hs.uploadRelease(t, svc.ID, "good.zip", map[string]string{"version": "9.1.0", "batchSize": "2"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &rs))
	run = hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	for _, in := range hs.app(t, apps, "shop").Services[0].Instances {
		vol, err := hs.engineOf(t, in.Host).VolumeInspect(context.Background(), in.Name+".package", client.VolumeInspectOptions{})
		require.NoError(t, err, in.Name)
		require.FileExists(t, filepath.Join(vol.Volume.Mountpoint, "css", "site.css"), in.Name)
		require.NoFileExists(t, filepath.Join(vol.Volume.Mountpoint, "bin", "start.sh"), "%s: a file of the earlier package stayed", in.Name)
		require.NoDirExists(t, filepath.Join(vol.Volume.Mountpoint, "static"), in.Name)
	}
	for _, h := range hs.hosts {
		helpers, err := h.Engine.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", "berth.helper").Add("name", "berth-empty-"+hs.tenant+"-file-")})
		require.NoError(t, err)
		require.Empty(t, helpers.Items, "the helpers that emptied the folders on %s are gone", h.Name)
	}
}

// Hostile packages are refused with 4xx before any run starts, and nothing
// is left in the artifact store's staging folder.
func TestHostilePackagesRefused(t *testing.T) {
	hs := needHarness(t)
	_, svc := hs.deployForRelease(t, "evilpkg")
	tenant := hs.tenant + "-evilpkg"
	hostile := map[string]string{
		"traversal.tar.gz": "element", "traversal.zip": "element", "absolute.tar.gz": "absolute",
		"symlink.tar.gz": "symbolic link", "hardlink.tar.gz": "hard link", "device.tar.gz": "device",
		"symlink.zip": "symbolic link", "notazip.war": "not a valid zip", "encrypted.zip": "encrypted",
		"zipbomb.zip": "more data than", "bomb.tar.gz": "limit",
	}
	for name, why := range hostile {
		code, body := hs.uploadRelease(t, svc.ID, name, map[string]string{"version": "1"})
		require.Equal(t, http.StatusUnprocessableEntity, code, "%s: %s", name, body)
		require.Contains(t, string(body), why, name)
	}
	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"sha256": strings.Repeat("0", 64)})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%s", body)
	require.Contains(t, string(body), "checksum")
	staging, err := os.ReadDir(filepath.Join(hs.logDir, "artifacts", "staging"))
	require.NoError(t, err)
	require.Empty(t, staging, "nothing is left in staging")
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=release&tenant="+tenant, nil, &runs))
	require.Zero(t, runs.Total, "no release run was started")
}

// Package quotas: an upload that would pass the tenant's or the
// environment's package quota is refused with 413 as it arrives, naming
// the quota, and nothing is stored or started; the packages kept for the
// service's releases count against it.
func TestPackageQuota(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "pkgquota")
	tenant := hs.tenant + "-pkgquota"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	quota := func(path string, max int64) {
		t.Helper()
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "PUT", path, map[string]int64{"maxPackageBytes": max}, nil))
	}
	tenantQuota, envQuota := "/api/v1/tenants/"+tenant+"/quota", "/api/v1/tenants/"+tenant+"/environments/dev/quota"
	stored := hs.artifactCount(t)
	refused := func(fixture, why string) {
		t.Helper()
		code, body := hs.uploadRelease(t, svc.ID, fixture, map[string]string{"version": "q"})
		require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)
		require.Contains(t, string(body), "package_quota")
		require.Contains(t, string(body), why)
		require.Equal(t, stored, hs.artifactCount(t), "nothing is stored")
		staging, err := os.ReadDir(filepath.Join(hs.logDir, "artifacts", "staging"))
		require.NoError(t, err)
		require.Empty(t, staging, "nothing is left in staging")
	}

	quota(tenantQuota, 300) // good.tar.gz is 337 bytes
	refused("good.tar.gz", "tenant "+tenant+"'s package quota: 0 of 300 bytes")
	quota(tenantQuota, 1000)
	quota(envQuota, 200)
	refused("good.tar.gz", "environment "+tenant+"/dev's package quota: 0 of 200 bytes")
	quota(envQuota, 0)

	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	// 337 bytes are kept for the release now: good.zip (669) no longer fits.
	stored = hs.artifactCount(t)
	refused("good.zip", "tenant "+tenant+"'s package quota: 337 bytes of 1000 bytes")
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=release&tenant="+tenant, nil, &runs))
	require.Equal(t, 1, runs.Total, "only the release that fitted started")
}

// artifactCount is how many packages the server's artifact store holds.
func (hs *harness) artifactCount(t testing.TB) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(hs.logDir, "artifacts", "sha256", "*.json"))
	require.NoError(t, err)
	return len(files)
}
