package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/registry"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeRegistry answers the v2 calls the catalogue makes, checking the
// credentials on each, and records deletes.
func fakeRegistry(t *testing.T, repos int, deleted *[]string) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "berth" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/_catalog":
			// Pages of 1000, after "last".
			start := 0
			if last := r.URL.Query().Get("last"); last != "" {
				fmt.Sscanf(last, "other/r%05d", &start)
				start++
			}
			var names []string
			for i := start; i < repos && len(names) < 1000; i++ {
				names = append(names, fmt.Sprintf("other/r%05d", i))
			}
			if start == 0 {
				names = append([]string{"acme/web", "acme2/web", "public/base", "toplevel"}, names[:max(0, len(names)-4)]...)
			}
			_, _ = fmt.Fprintf(w, `{"repositories":["%s"]}`, strings.Join(names, `","`))
		case r.URL.Path == "/v2/acme/web/tags/list":
			_, _ = w.Write([]byte(`{"name":"acme/web","tags":["1","2"]}`))
		case r.URL.Path == "/v2/acme/web/manifests/1":
			require.Contains(t, r.Header.Get("Accept"), "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", digest)
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			_, _ = w.Write([]byte(`{"schemaVersion":2,"config":{"size":100},"layers":[{"size":1000},{"size":20}]}`))
		case r.Method == http.MethodDelete && r.URL.Path == "/v2/acme/web/manifests/"+digest:
			*deleted = append(*deleted, r.URL.Path)
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
}

func TestClientReadsTheCatalogueAndDeletes(t *testing.T) {
	ctx := context.Background()
	var deleted []string
	srv := fakeRegistry(t, 1500, &deleted)
	defer srv.Close()
	c := registry.New(srv.URL, "berth", "pw")

	repos, err := c.Repositories(ctx, []string{"acme", "public"})
	require.NoError(t, err)
	require.Equal(t, []string{"acme/web", "public/base"}, repos, "only the namespaces asked for; a prefix of another namespace is not it")
	others, err := c.Repositories(ctx, []string{"other"})
	require.NoError(t, err)
	require.Equal(t, 1500, len(others), "every page is read")

	tags, err := c.Tags(ctx, "acme/web")
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2"}, tags)
	tags, err = c.Tags(ctx, "acme/none")
	require.NoError(t, err)
	require.Empty(t, tags, "an unknown repository has no tags")

	m, err := c.Manifest(ctx, "acme/web", "1")
	require.NoError(t, err)
	require.Equal(t, registry.Manifest{Digest: digest, MediaType: "application/vnd.docker.distribution.manifest.v2+json", SizeBytes: 1120}, *m)
	_, err = c.Manifest(ctx, "acme/web", "9")
	require.ErrorIs(t, err, registry.ErrNotFound)

	require.NoError(t, c.Delete(ctx, "acme/web", digest))
	require.Equal(t, []string{"/v2/acme/web/manifests/" + digest}, deleted)

	// Names and references never shape a request beyond a path segment.
	for _, bad := range []string{"../v2/_catalog", "acme/web?x=1", "Acme/web", "acme//web", "acme/web/", ""} {
		_, err := c.Tags(ctx, bad)
		require.Error(t, err, bad)
	}
	_, err = c.Manifest(ctx, "acme/web", "../../_catalog")
	require.Error(t, err)
	require.Error(t, c.Delete(ctx, "acme/web", "1"))

	_, err = registry.New(srv.URL, "berth", "wrong").Tags(ctx, "acme/web")
	require.ErrorContains(t, err, "refused berth's credentials")
}
