package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/store"
)

// Real-world compose files, in the shape of the popular public examples,
// deploy unchanged (only their images point at the test image) through the
// API onto the two test hosts, their services spread over both, and their
// services find each other by name through the mesh: each case follows a
// chain of calls from the published service, read through the LB. Their
// secrets come from the tenant's store. Delete leaves nothing behind.
func TestRealComposeFilesDeployAcrossTwoHosts(t *testing.T) {
	hs := needHarness(t)
	if len(hs.hosts) < 2 {
		t.Skip("needs two test hosts")
	}
	for _, c := range []struct {
		file, front string
		secrets     []string
		// chain is called from the front service; want is in its answer.
		chain, want string
		// secretAt is a file the front service must see with a stored value.
		secretAt string
		// full: in make test-full only; the voting app, five services on
		// two networks, is the one make test deploys.
		full bool
	}{
		{file: "wordpress-mysql.yaml", full: true, front: "wordpress", secrets: []string{"db_password", "db_root_password"},
			chain: "http://db:3306/", want: `"service":"db"`, secretAt: "/run/secrets/db_password"},
		{file: "voting-app.yaml", front: "result", secrets: []string{"postgres_password"},
			chain: "http://db:5432/", want: `"service":"db"`, secretAt: "/run/secrets/postgres_password"},
		{file: "nginx-flask-mysql.yaml", full: true, front: "proxy", secrets: []string{"db-password"},
			chain: "http://api:8000/call?url=" + url.QueryEscape("http://db:3306/"), want: `"service":"db"`},
	} {
		t.Run(c.file, func(t *testing.T) {
			if c.full {
				fullSuite(t)
			}
			short := strings.Split(c.file, "-")[0]
			tenant := hs.tenant + "-real" + short[:3]
			apps := hs.newEnvOn(t, tenant, hs.hostNames()...)
			values := map[string]string{}
			for _, name := range c.secrets {
				values[name] = name + "-" + randHex(6)
				require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/secrets",
					map[string]string{"name": name, "value": values[name]}, nil))
			}
			started := time.Now()
			hs.deployOK(t, apps, "app", readCompose(t, "real/"+c.file))
			t.Logf("%s: deployed in %s", c.file, time.Since(started).Round(time.Millisecond))

			ab := hs.app(t, apps, "app")
			hostsUsed := map[string]bool{}
			for _, s := range ab.Services {
				for _, in := range s.Instances {
					hostsUsed[in.Host] = true
				}
			}
			require.Len(t, hostsUsed, 2, "the services are spread over both hosts")

			front := serviceOf(t, ab, c.front)
			lb := "http://" + hs.pool(t, front.ID).Backend.ListenAddr
			var body string
			require.Eventually(t, func() bool {
				var code int
				code, body = httpGet(t, lb+"/call?url="+url.QueryEscape(c.chain))
				return code == http.StatusOK && strings.Contains(body, c.want)
			}, 20*time.Second, 200*time.Millisecond, "%s -> %s through the LB: %s", c.front, c.chain, body)

			if c.secretAt != "" {
				code, f, raw := readSecretFile(t, instanceURL(t, front), c.secretAt)
				require.Equal(t, http.StatusOK, code, raw)
				require.Equal(t, values[strings.TrimPrefix(c.secretAt, "/run/secrets/")], f.Content)
			}

			hs.deleteOK(t, apps, "app")
			require.Empty(t, hs.appNetworks(t, tenant, "dev", "app"), "delete removes the networks on every host")
			require.Empty(t, hs.meshContainers(t, tenant, "dev", "app"), "delete removes the relays")
			require.Zero(t, countAll(hs.containersOf(t, tenant)))
		})
	}
}

// What a real file asks for that berth does not do is named item by item,
// each with the way to do it on berth, and nothing starts.
func TestRealComposeRefusalsNameEachItem(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "realno")
	body := []byte(fmt.Sprintf(`services:
  web:
    image: %s
    links: [db]
    secrets: [pw]
  db:
    image: %s
    network_mode: host
secrets:
  pw:
    file: ./db/password.txt
`, sampleImage, sampleImage))
	var out struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	require.Equal(t, http.StatusBadRequest, hs.api(t, "POST", apps+"?name=refused", "application/yaml", body, &out))
	all := out.Error.Message
	for _, want := range []string{
		"links are not supported: services reach each other by service name",
		`network_mode "host" is not allowed`,
		`secret "pw": file, environment and content sources are not allowed`,
		"POST /api/v1/tenants/{tenant}/secrets",
	} {
		require.Contains(t, all, want)
	}
	var list struct {
		Applications []store.Application `json:"applications"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", apps, nil, &list))
	require.Empty(t, list.Applications, "nothing was recorded")
}
