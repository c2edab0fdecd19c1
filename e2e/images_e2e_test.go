package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// pushImage tags a local image of the first test host into the registry
// and pushes it with the workers' credentials.
func (hs *harness) pushImage(t testing.TB, source, target string) {
	t.Helper()
	ctx := context.Background()
	eng := hs.hosts[0].Engine
	_, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target})
	require.NoError(t, err)
	resp, err := eng.ImagePush(ctx, target, client.ImagePushOptions{
		RegistryAuth: activities.RegistryAuth(hs.registryUser, hs.registryPass, hs.registry)})
	require.NoError(t, err)
	defer resp.Close()
	out, err := io.ReadAll(resp)
	require.NoError(t, err)
	require.NotContains(t, string(out), `"error"`, "push %s: %s", target, out)
}

type catalogueBody struct {
	Registry string `json:"registry"`
	Versions []struct {
		berth.ImageVersion
		Image     string `json:"image"`
		Namespace string `json:"namespace"`
		UsedBy    []struct {
			Env, App, Service, How string
			Instances              int
		} `json:"usedBy"`
	} `json:"versions"`
}

// catalogue reads a tenant's catalogue as a person, and maps image → its
// index in the versions.
func (p *person) catalogue(t testing.TB, tenant string) (catalogueBody, map[string]int) {
	t.Helper()
	resp, err := p.client.Get(p.hs.apiURL + "/api/v1/tenants/" + tenant + "/images")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var cat catalogueBody
	require.NoError(t, json.Unmarshal(body, &cat))
	out := map[string]int{}
	for i, v := range cat.Versions {
		out[v.Image] = i
	}
	return cat, out
}

// The image catalogue shows a tenant its own images and the public ones,
// read from the real registry through the worker, with digests, sizes and
// where the tenant runs each; another tenant sees none of them and may not
// deploy them. A version in use cannot be deleted; an unused one is
// deleted from the registry with every tag on its digest; public images
// are a platform admin's to delete.
func TestImageCatalogue(t *testing.T) {
	hs := needHarness(t)
	needRegistry(t, hs)
	ta, tb := hs.tenant+"-cata", hs.tenant+"-catb"
	appsA, appsB := hs.newEnv(t, "cata"), hs.newEnv(t, "catb")
	reg := hs.registry
	webV1, webV2, oldV1, pub := reg+"/"+ta+"/web:1", reg+"/"+ta+"/web:2", reg+"/"+ta+"/old:1", reg+"/public/"+hs.tenant+"-base:1"
	hs.pushImage(t, sampleImage, webV1)
	hs.pushImage(t, sampleImage, reg+"/"+ta+"/web:same-as-1")
	hs.pushImage(t, "berth-sample:v2", webV2)
	hs.pushImage(t, "berth-sample:v3", oldV1)
	hs.pushImage(t, sampleImage, pub)
	a := hs.newPerson(t, ta+"-dev", ta, berth.RoleDeveloper)
	b := hs.newPerson(t, tb+"-dev", tb, berth.RoleDeveloper)

	cat, seen := a.catalogue(t, ta)
	for _, img := range []string{webV1, webV2, oldV1, pub} {
		require.Contains(t, seen, img, "tenant A sees its own images and the public ones")
		v := cat.Versions[seen[img]]
		require.Regexp(t, `^sha256:[a-f0-9]{64}$`, v.Digest, img)
		require.Positive(t, v.SizeBytes, img)
		require.Empty(t, v.Error, img)
	}
	require.Equal(t, cat.Versions[seen[webV1]].Digest, cat.Versions[seen[reg+"/"+ta+"/web:same-as-1"]].Digest)
	require.NotEqual(t, cat.Versions[seen[webV1]].Digest, cat.Versions[seen[webV2]].Digest)
	_, seenB := b.catalogue(t, tb)
	require.Contains(t, seenB, pub, "public images are everyone's")
	for img := range seenB {
		require.False(t, strings.HasPrefix(img, reg+"/"+ta+"/"), "tenant B never sees tenant A's image %s", img)
	}
	code, _ := b.send(t, "GET", "/api/v1/tenants/"+ta+"/images", nil, nil)
	require.Equal(t, http.StatusForbidden, code, "B may not read A's catalogue")

	// B cannot deploy A's image; A can, and the catalogue says where it runs.
	compose := func(image string) []byte {
		return []byte(strings.Replace(string(webCompose("web", 1, "")), sampleImage, image, 1))
	}
	code, _ = b.post(t, appsB, map[string]string{"name": "shop", "compose": string(compose(webV1))}, nil)
	require.Equal(t, http.StatusForbidden, code, "B's deploy of A's image is refused")
	hs.deployOK(t, appsA, "shop", compose(webV1))
	cat, seen = a.catalogue(t, ta)
	uses := cat.Versions[seen[webV1]].UsedBy
	require.Len(t, uses, 1)
	require.Equal(t, "dev/shop/web", uses[0].Env+"/"+uses[0].App+"/"+uses[0].Service)
	require.Equal(t, "runs", uses[0].How)
	require.Equal(t, 1, uses[0].Instances)

	del := func(p *person, tenant, image string) (int, string) {
		t.Helper()
		repo, tag, _ := strings.Cut(strings.TrimPrefix(image, reg+"/"), ":")
		return p.send(t, "DELETE", "/api/v1/tenants/"+tenant+"/images", map[string]string{"repository": repo, "tag": tag}, nil)
	}
	code, msg := del(a, ta, webV1)
	require.Equal(t, http.StatusConflict, code, msg)
	require.Contains(t, msg, "dev/shop/web")
	code, msg = del(a, ta, reg+"/"+ta+"/web:same-as-1")
	require.Equal(t, http.StatusConflict, code, "a tag on the digest of a used one goes with it, so it is refused too: %s", msg)
	code, msg = del(a, ta, pub)
	require.Equal(t, http.StatusForbidden, code, msg)
	code, msg = del(b, tb, oldV1)
	require.Equal(t, http.StatusForbidden, code, "B may not delete A's image: %s", msg)
	code, msg = del(a, ta, reg+"/"+ta+"/none:1")
	require.Equal(t, http.StatusNotFound, code, msg)
	code, msg = del(a, ta, reg+"/"+ta+"/web:bad tag")
	require.Equal(t, http.StatusBadRequest, code, msg)

	// In Chromium: the catalogue page lists the versions, offers no delete
	// for one in use, and deletes an unused one.
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, a, "/images?tenant="+ta)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("table.images")))
	rowHas := func(image, js string) bool {
		return eval[bool](t, ctx, `(function(){var r=document.querySelector('tr[data-image="`+image+`"]'); return !!r && `+js+`})()`)
	}
	require.True(t, rowHas(webV1, `r.textContent.includes("dev/shop/web") && !r.querySelector("button")`), "a version in use shows where and offers no delete")
	require.True(t, rowHas(reg+"/"+ta+"/web:same-as-1", `r.textContent.includes("in use under another tag") && !r.querySelector("button")`),
		"a tag on the digest of a used one offers no delete either")
	require.True(t, rowHas(oldV1, `!!r.querySelector("button") && r.textContent.includes("MiB")`))
	require.False(t, rowHas(reg+"/"+tb+"/web:1", "true"))
	hs.screenshot(t, ctx, "images")
	eval[bool](t, ctx, `window.confirm = () => true, true`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`tr[data-image="`+oldV1+`"] button`)))
	// The page reloads on success: a check may meet it mid-navigation.
	require.Eventually(t, func() bool {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		gone, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !document.querySelector('tr[data-image="`+oldV1+`"]') && !!document.querySelector('tr[data-image="`+webV1+`"]')`))
		return err == nil && gone
	}, 30*time.Second, 100*time.Millisecond, "the deleted version leaves the page")
	require.Empty(t, hs.registryTags(t, ta+"/old"), "deleted from the registry")
	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload())
	noSideScroll(t, ctx, "images page")
	code, msg = del(a, ta, webV2)
	require.Equal(t, http.StatusOK, code, msg)
	require.ElementsMatch(t, []string{"1", "same-as-1"}, hs.registryTags(t, ta+"/web"))
	_, seen = a.catalogue(t, ta)
	require.NotContains(t, seen, oldV1)
	require.NotContains(t, seen, webV2)
	require.Contains(t, seen, webV1)

	repo, tag, _ := strings.Cut(strings.TrimPrefix(pub, reg+"/"), ":")
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "DELETE", "/api/v1/tenants/"+ta+"/images", map[string]string{"repository": repo, "tag": tag}, nil),
		"a platform admin deletes an unused public image")
	require.Empty(t, hs.registryTags(t, strings.TrimSuffix(repo, ":"+tag)))
	hs.deleteOK(t, appsA, "shop")
}
