package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func needRegistry(t testing.TB, hs *harness) {
	t.Helper()
	if hs.registry == "" {
		t.Skip("no registry (BERTH_TEST_REGISTRY unset); run make test")
	}
}

// registryTags lists a repository's tags through the registry's HTTP API.
func (hs *harness) registryTags(t testing.TB, repo string) []string {
	t.Helper()
	var out struct {
		Tags []string `json:"tags"`
	}
	req, err := http.NewRequest("GET", fmt.Sprintf("http://%s/v2/%s/tags/list", hs.registry, repo), nil)
	require.NoError(t, err)
	req.SetBasicAuth(hs.registryUser, hs.registryPass)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Tags
}

// instanceImages maps each live instance to the image its container runs,
// read from the engine of its host, and counts the hosts in use.
func (hs *harness) instanceImages(t testing.TB, apps string) (map[string]string, int) {
	t.Helper()
	out := map[string]string{}
	hosts := map[string]bool{}
	for _, in := range hs.app(t, apps, "shop").Services[0].Instances {
		insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
		require.NoError(t, err, in.Name)
		out[in.Name] = insp.Container.Config.Image
		hosts[in.Host] = true
	}
	return out, len(hosts)
}

// A build release turns an uploaded package into an image on a build host
// (the service's image plus the package under /opt/berth/package), pushes it
// to the registry, and rolls it out: every instance on both hosts runs the
// built image and serves the package's version.
func TestBuildRelease(t *testing.T) {
	hs := needHarness(t)
	needRegistry(t, hs)
	apps, svc := hs.deployForRelease(t, "build")
	tenant := hs.tenant + "-build"
	sha := fileSHA(t, "good.tar.gz")
	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0", "sha256": sha, "batchSize": "2", "build": "true"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version-build")

	ref := fmt.Sprintf("%s/%s/shop-web:9.0.0", hs.registry, tenant)
	require.Contains(t, hs.registryTags(t, tenant+"/shop-web"), "9.0.0", "the built image is in the registry")
	if hs.registryUser != "" {
		// Only the workers' credentials open the registry: the other host
		// pulled the image with them, and an anonymous reader is refused.
		resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/tags/list", hs.registry, tenant+"/shop-web"))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	require.Equal(t, []string{"v9", "v9", "v9", "v9"}, hs.versions(t, apps))
	images, nHosts := hs.instanceImages(t, apps)
	require.Equal(t, 2, nHosts, "instances on both hosts")
	for name, img := range images {
		require.Equal(t, ref, img, name)
	}
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseImage, rb.Releases[0].Kind)
	require.Equal(t, ref, rb.Releases[0].Image)
	require.Equal(t, sha, rb.Releases[0].PackageSHA256)
	require.Equal(t, berth.ReleaseSucceeded, rb.Releases[0].Outcome)
	// The catalogue says who had berth build and push it.
	var cat struct {
		Versions []struct {
			Image     string `json:"image"`
			PushedBy  string `json:"pushedBy"`
			ReleaseID uint   `json:"releaseId"`
		} `json:"versions"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/tenants/"+tenant+"/images", nil, &cat))
	found := false
	for _, v := range cat.Versions {
		if v.Image == ref {
			found = true
			require.Equal(t, rb.Releases[0].StartedBy, v.PushedBy)
			require.Equal(t, rb.Releases[0].ID, v.ReleaseID)
		}
	}
	require.True(t, found, "the built image is in the catalogue")
	names := []string{}
	for _, s := range run.Steps {
		names = append(names, s.Name)
	}
	require.Subset(t, names, []string{"build", "prefetch"})
}

// A build that cannot succeed (the service's base image is on no host and in
// no registry) fails the release before any instance is changed; a version
// that is no image tag is refused up front.
func TestBuildReleaseFailsBeforeInstances(t *testing.T) {
	hs := needHarness(t)
	needRegistry(t, hs)
	apps, svc := hs.deployForRelease(t, "badbuild")
	before := hs.containersOf(t, hs.tenant+"-badbuild")

	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "1.0+meta", "build": "true"})
	require.Equal(t, http.StatusBadRequest, code, "%s", body)

	require.NoError(t, hs.store.DB().Model(&store.Service{}).Where("id = ?", svc.ID).Update("image", "berth-sample:gone").Error)
	code, body = hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "2", "build": "true"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "base image")
	require.Contains(t, run.Error, "no instance was changed")
	require.Equal(t, before, hs.containersOf(t, hs.tenant+"-badbuild"), "no container was added or removed")
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps))
	require.Empty(t, hs.registryTags(t, hs.tenant+"-badbuild/shop-web"))
	require.False(t, strings.Contains(run.Error, "rolled back to"), run.Error)
}

// Commit to image: an instance that got a package by a file release is
// committed (with its package folder) as a new image version, pushed to the
// registry and recorded as a candidate; releasing that image puts every
// instance on both hosts on it, serving the package's version.
func TestCommitInstanceToImage(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	needRegistry(t, hs)
	apps, svc := hs.deployForRelease(t, "commit")
	tenant := hs.tenant + "-commit"
	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.0.0", "batchSize": "4"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)

	inst := hs.app(t, apps, "shop").Services[0].Instances[0]
	var cs struct {
		RunID     uint   `json:"runId"`
		ReleaseID uint   `json:"releaseId"`
		Image     string `json:"image"`
	}
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", "/api/v1/instances/"+inst.Name+"/commit", map[string]string{"version": "bad tag"}, nil))
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "POST", "/api/v1/instances/no-such-instance/commit", map[string]string{"version": "c1"}, nil))
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/instances/"+inst.Name+"/commit", map[string]string{"version": "c1", "comment": "debugged"}, &cs))
	run = hs.waitRun(t, cs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "commit-instance")
	ref := fmt.Sprintf("%s/%s/shop-web:c1", hs.registry, tenant)
	require.Equal(t, ref, cs.Image)
	require.Contains(t, hs.registryTags(t, tenant+"/shop-web"), "c1")

	rb := hs.releases(t, svc.ID)
	require.Equal(t, cs.ReleaseID, rb.Releases[0].ID)
	require.Equal(t, berth.ReleaseCandidate, rb.Releases[0].Outcome)
	require.Equal(t, berth.ReleaseImage, rb.Releases[0].Kind)
	require.Equal(t, ref, rb.Releases[0].Image)
	require.NotEqual(t, cs.ReleaseID, rb.CurrentID, "a candidate is not the current release")

	_, run = hs.release(t, svc.ID, map[string]any{"image": ref, "batchSize": 2})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, []string{"v9", "v9", "v9", "v9"}, hs.versions(t, apps))
	images, nHosts := hs.instanceImages(t, apps)
	require.Equal(t, 2, nHosts, "instances on both hosts")
	for name, img := range images {
		require.Equal(t, ref, img, name)
	}
	// The image keeps none of the deploy's environment values: they belong
	// to the service's spec, not to an image others may pull.
	for _, th := range hs.hosts {
		insp, err := th.Engine.ImageInspect(context.Background(), ref)
		require.NoError(t, err)
		require.NotNil(t, insp.Config)
		require.Contains(t, insp.Config.Env, "LISTEN=", "the key stays, its value does not")
		for _, kv := range insp.Config.Env {
			require.NotEqual(t, "LISTEN=:8080", kv)
		}
	}

	// Another tenant may not run this tenant's image, though it is in the
	// registry and cached on both hosts: deploy and release both refuse it.
	thief := hs.newEnv(t, "thief")
	code, _ = hs.deploy(t, thief, "steal", []byte("services:\n  web:\n    image: "+ref+"\n"))
	require.Equal(t, http.StatusForbidden, code, "another tenant's image")
	_, tsvc := hs.deployForRelease(t, "thief2")
	require.Equal(t, http.StatusForbidden, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", tsvc.ID), map[string]any{"image": ref}, nil))
}

type releaseWithOutputs struct {
	store.Release
	Outputs []store.ReleaseOutput `json:"outputs"`
}

// A file release's allowlisted post-upload command runs with exec in every
// instance; its output is kept with the release. A command off the allowlist
// is refused with 400 before any run starts; one that exits non-zero fails
// its batch and the release rolls back.
func TestFileReleaseCommand(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "exec")
	tenant := hs.tenant + "-exec"

	for _, bad := range []string{`["/bin/sh","-c","id"]`, `"/sampleapp"`, `[]`, `["/sampleapp","1","2","3","4","5","6","7","8"]`,
		`["/sampleapp","` + strings.Repeat("a", 257) + `"]`, `["/sampleapp","a\u0000b"]`} {
		code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9", "command": bad})
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", bad, body)
	}
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=release&tenant="+tenant, nil, &runs))
	require.Zero(t, runs.Total, "no release run was started")

	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9", "batchSize": "2",
		"command": `["/sampleapp","-print-version"]`})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var rs releaseStarted
	require.NoError(t, json.Unmarshal(body, &rs))
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	var rel releaseWithOutputs
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/releases/%d", rs.ReleaseID), nil, &rel))
	require.Len(t, rel.Outputs, 4)
	for _, o := range rel.Outputs {
		require.Zero(t, o.ExitCode, o.Instance)
		require.Equal(t, "v9\n", o.Output, o.Instance)
	}

	// A failing command (an unknown flag: exit 2) fails batch 1; the release
	// rolls back to the package before.
	code, body = hs.uploadRelease(t, svc.ID, "good.zip", map[string]string{"version": "10", "batchSize": "2",
		"command": `["/sampleapp","-no-such-flag"]`})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &rs))
	run = hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "exit code 2")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "release-version-command-failed")
	rel = releaseWithOutputs{}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/releases/%d", rs.ReleaseID), nil, &rel))
	require.Equal(t, berth.ReleaseRolledBack, rel.Outcome)
	require.Len(t, rel.Outputs, 2, "only batch 1 ran the command")
	for _, o := range rel.Outputs {
		require.Equal(t, 2, o.ExitCode, o.Instance)
		require.Contains(t, o.Output, "flag provided but not defined", o.Instance)
	}
	require.Equal(t, []string{"v9", "v9", "v9", "v9"}, hs.versions(t, apps))
}

// The reconciler frees hosts of the images berth built for releases older
// than a service's current, last-good and newest ones; the registry keeps
// them. Two build releases of different packages: after a pass, the first
// one's image is on no host, the second one's still runs, and images
// berth did not build are untouched.
func TestReconcilerPrunesOldBuiltImages(t *testing.T) {
	hs := needHarness(t)
	needRegistry(t, hs)
	apps := hs.newEnv(t, "prune")
	tenant := hs.tenant + "-prune"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	ref := func(v string) string { return fmt.Sprintf("%s/%s/shop-web:%s", hs.registry, tenant, v) }
	onHosts := func(image string) int {
		t.Helper()
		n := 0
		for _, th := range hs.hosts {
			if _, err := th.Engine.ImageInspect(context.Background(), image); err == nil {
				n++
			}
		}
		return n
	}
	for _, b := range []struct{ version, fixture string }{{"1.0.0", "good.tar.gz"}, {"2.0.0", "good.zip"}} {
		code, body := hs.uploadRelease(t, svc.ID, b.fixture, map[string]string{"version": b.version, "build": "true"})
		require.Equal(t, http.StatusAccepted, code, "%s", body)
		var rs releaseStarted
		require.NoError(t, json.Unmarshal(body, &rs))
		run := hs.waitRun(t, rs.RunID)
		require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	}
	require.Positive(t, onHosts(ref("1.0.0")), "the first build is on a host")

	rb := hs.reconcile(t)
	pruned := findingsAbout(rb, hs.registry+"/"+tenant+"/")
	require.Equal(t, map[string]berth.FindingKind{ref("1.0.0"): berth.FindingImagePruned}, pruned)
	require.Zero(t, onHosts(ref("1.0.0")), "the superseded build is on no host")
	require.Positive(t, onHosts(ref("2.0.0")), "the current build stays")
	require.Equal(t, len(hs.hosts), onHosts(sampleImage), "images berth did not build stay")
	require.Contains(t, hs.registryTags(t, tenant+"/shop-web"), "1.0.0", "the registry keeps every build")
	images, _ := hs.instanceImages(t, apps)
	for name, img := range images {
		require.Equal(t, ref("2.0.0"), img, name)
	}
	require.Empty(t, findingsAbout(hs.reconcile(t), hs.registry+"/"+tenant+"/"), "a second pass finds nothing more")
}
