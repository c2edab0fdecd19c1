package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/store"
)

// serviceOf finds a service of an application by name.
func serviceOf(t testing.TB, ab appBody, name string) store.ServiceView {
	t.Helper()
	for _, s := range ab.Services {
		if s.Name == name {
			return s
		}
	}
	require.Failf(t, "no such service", "%s in %v", name, ab.Services)
	return store.ServiceView{}
}

// instanceURL is the published address of a service's first instance.
func instanceURL(t testing.TB, svc store.ServiceView) string {
	t.Helper()
	require.NotEmpty(t, svc.Instances, svc.Name)
	require.NotEmpty(t, svc.Instances[0].Ports, svc.Name)
	p := svc.Instances[0].Ports[0]
	return fmt.Sprintf("http://%s:%d", p.HostIP, p.HostPort)
}

// probe asks a sample-app instance (at base) to open a TCP connection to
// addr from inside its container; it says whether the connection opened.
func probe(t testing.TB, base, addr string) (bool, string) {
	t.Helper()
	code, body := httpGet(t, base+"/dial?addr="+url.QueryEscape(addr))
	return code == http.StatusOK && body == "open", body
}

// containerIP is the address of a container on its engine's networks.
func (hs *harness) containerIP(t testing.TB, name string) string {
	t.Helper()
	for _, th := range hs.hosts {
		insp, err := th.Engine.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
		if err != nil {
			continue
		}
		for _, ep := range insp.Container.NetworkSettings.Networks {
			if ep.IPAddress.IsValid() {
				return ep.IPAddress.String()
			}
		}
	}
	require.Failf(t, "no address", "container %s", name)
	return ""
}

// appNetworks lists, per host, the engine networks of an application.
func (hs *harness) appNetworks(t testing.TB, tenant, env, app string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, th := range hs.hosts {
		list, err := th.Engine.NetworkList(context.Background(), client.NetworkListOptions{
			Filters: make(client.Filters).Add("label", activities.LabelAppKey+"="+berth.AppKey(tenant, env, app))})
		require.NoError(t, err)
		for _, n := range list.Items {
			out[th.Name] = append(out[th.Name], n.Name)
		}
	}
	return out
}

// A three-tier file (frontend -> backend -> db on two networks, an alias, a
// hostname, healthcheck conditions) deploys unchanged on one host; its
// services call each other by name, and nothing else reaches them: not the
// frontend (not on the db's network), not another application of the same
// tenant, not another tenant, by name or by address, on the same host or
// from the other host. Delete removes the application's networks.
func TestServicesFindEachOtherByNameAndTenantsAreIsolated(t *testing.T) {
	hs := needHarness(t)
	if len(hs.hosts) < 2 {
		t.Skip("needs two test hosts")
	}
	h1, h2 := hs.hosts[0].Name, hs.hosts[1].Name
	tenantA := hs.tenant + "-neta"
	apps := hs.newEnvOn(t, tenantA, h1)
	hs.deployOK(t, apps, "shop", readCompose(t, "real/three-tier.yaml"))
	ab := hs.app(t, apps, "shop")
	front := serviceOf(t, ab, "frontend")

	// frontend -> backend (by alias) -> db (by hostname), read through the LB.
	lbAddr := "http://" + hs.pool(t, front.ID).Backend.ListenAddr
	chain := "http://backend:8081/call?url=" + url.QueryEscape("http://database:3306/")
	code, body := httpGet(t, lbAddr+"/call?url="+url.QueryEscape(chain))
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"service":"db"`)
	code, body = httpGet(t, lbAddr+"/call?url="+url.QueryEscape("http://backend:8081/"))
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"service":"backend"`)

	// The frontend is not on the private network: it cannot resolve or reach db.
	base := instanceURL(t, front)
	ok, why := probe(t, base, "backend:8081")
	require.True(t, ok, "frontend reaches backend: %s", why)
	ok, why = probe(t, base, "db:3306")
	require.False(t, ok, "frontend must not reach db: %s", why)
	dbName := serviceOf(t, ab, "db").Instances[0].Name
	dbIP := hs.containerIP(t, dbName)
	ok, why = probe(t, base, dbIP+":3306")
	require.False(t, ok, "frontend must not reach db's address %s: %s", dbIP, why)

	// Probes of another application of tenant A, and of tenant B, on the
	// same host and on the other one.
	backendIP := hs.containerIP(t, serviceOf(t, ab, "backend").Instances[0].Name)
	otherApps := map[string]string{}
	for _, c := range []struct{ tenant, app, host string }{
		{tenantA, "other", h1}, {hs.tenant + "-netb", "probe", h1}, {hs.tenant + "-netb2", "probe", h2},
	} {
		appsPath := apps
		if c.tenant != tenantA {
			appsPath = hs.newEnvOn(t, c.tenant, c.host)
		}
		hs.deployOK(t, appsPath, c.app, webCompose("probe", 1, ""))
		svc := serviceOf(t, hs.app(t, appsPath, c.app), "probe")
		require.Equal(t, c.host, svc.Instances[0].Host, "placement of %s/%s", c.tenant, c.app)
		otherApps[c.tenant+"/"+c.app] = instanceURL(t, svc)
	}
	for who, base := range otherApps {
		// The positive control: the probe reaches its own service by name.
		ok, why := probe(t, base, "probe:8080")
		require.True(t, ok, "%s reaches itself by name: %s", who, why)
		for _, target := range []string{"db:3306", "database:3306", "backend:8081", dbName + ":3306", dbIP + ":3306", backendIP + ":8081"} {
			ok, why := probe(t, base, target)
			require.False(t, ok, "%s must not reach tenant A's shop at %s: %s", who, target, why)
		}
	}

	nets := hs.appNetworks(t, tenantA, "dev", "shop")
	require.ElementsMatch(t, []string{berth.AppScoped(tenantA, "dev", "shop", "public"), berth.AppScoped(tenantA, "dev", "shop", "private")}, nets[h1])
	require.Empty(t, nets[h2])

	var del runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/shop", nil, &del))
	drun := hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunSucceeded, drun.Status, drun.Error)
	require.Empty(t, hs.appNetworks(t, tenantA, "dev", "shop"), "delete removes the application's networks")
	// The named volume carries the unambiguous application prefix.
	vols, err := hs.hosts[0].Engine.VolumeList(context.Background(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("name", berth.AppScoped(tenantA, "dev", "shop", "db-data"))})
	require.NoError(t, err)
	require.NotEmpty(t, vols.Items, "the volume %s exists", berth.AppScoped(tenantA, "dev", "shop", "db-data"))
	require.True(t, strings.HasPrefix(vols.Items[0].Name, tenantA+"."), vols.Items[0].Name)
}

// The same three-tier file on two hosts: frontend and backend run on both,
// the database on one, so the backend on the other host reaches it through
// the mesh (a forwarder answering to "db" and "database" there, a gateway
// on the database's host, TLS between them). Both frontends answer the whole
// chain; the gateway takes no tunnel without the application's key; delete
// removes relays and networks on both hosts.
func TestServicesFindEachOtherAcrossHosts(t *testing.T) {
	hs := needHarness(t)
	if len(hs.hosts) < 2 {
		t.Skip("needs two test hosts")
	}
	tenant := hs.tenant + "-mesh"
	apps := hs.newEnvOn(t, tenant, hs.hostNames()...)
	run := hs.deployOK(t, apps, "shop", readCompose(t, "real/three-tier.yaml"))
	var steps []string
	for _, s := range run.Steps {
		steps = append(steps, s.Name)
	}
	require.Contains(t, steps, "mesh", "a deploy across hosts sets up the mesh")
	ab := hs.app(t, apps, "shop")
	db := serviceOf(t, ab, "db")
	require.Len(t, db.Instances, 1)
	dbHost := db.Instances[0].Host
	front := serviceOf(t, ab, "frontend")
	hostsOf := map[string]bool{}
	for _, in := range front.Instances {
		hostsOf[in.Host] = true
	}
	require.Len(t, hostsOf, 2, "the frontend runs on both hosts")

	chain := "http://backend:8081/call?url=" + url.QueryEscape("http://database:3306/")
	for _, in := range front.Instances {
		p := in.Ports[0]
		base := fmt.Sprintf("http://%s:%d", p.HostIP, p.HostPort)
		var body string
		require.Eventually(t, func() bool {
			var code int
			code, body = httpGet(t, base+"/call?url="+url.QueryEscape(chain))
			return code == http.StatusOK && strings.Contains(body, `"service":"db"`)
		}, 20*time.Second, 200*time.Millisecond, "frontend on %s: backend -> database: %s", in.Host, body)
	}

	// The relays: a gateway on each host, a forwarder for db where db is not.
	relays := hs.meshContainers(t, tenant, "dev", "shop")
	for _, th := range hs.hosts {
		require.Contains(t, relays[th.Name], berth.AppScoped(tenant, "dev", "shop", "_gateway"), th.Name)
		fwd := berth.AppScoped(tenant, "dev", "shop", "_forward-db")
		if th.Name == dbHost {
			require.NotContains(t, relays[th.Name], fwd)
		} else {
			require.Contains(t, relays[th.Name], fwd)
		}
	}

	// The gateway's port is published, but without the application's key
	// nothing gets through: a TLS client with its own certificate fails.
	gw := hs.gatewayAddr(t, tenant, "dev", "shop", dbHost)
	cert := selfSignedCert(t)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", gw, &tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = fmt.Fprint(conn, "db 3306\n")
		b, rerr := io.ReadAll(conn)
		conn.Close()
		require.True(t, rerr != nil || !strings.Contains(string(b), "ok"), "a stranger's tunnel must not open: %q", b)
	}
	// Plain TCP to the gateway gets nothing of db's either.
	raw, err := net.DialTimeout("tcp", gw, 2*time.Second)
	require.NoError(t, err, "the positive control: the gateway port is published")
	_ = raw.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = fmt.Fprint(raw, "db 3306\nGET / HTTP/1.0\n\n")
	b, _ := io.ReadAll(raw)
	raw.Close()
	require.NotContains(t, string(b), `"service":"db"`)

	// Another tenant on the host without db cannot use the forwarder's
	// name, nor the gateway with its own request.
	otherHost := hs.hosts[0].Name
	if otherHost == dbHost {
		otherHost = hs.hosts[1].Name
	}
	probeApps := hs.newEnvOn(t, hs.tenant+"-meshb", otherHost)
	hs.deployOK(t, probeApps, "probe", webCompose("probe", 1, ""))
	pbase := instanceURL(t, serviceOf(t, hs.app(t, probeApps, "probe"), "probe"))
	ok, why := probe(t, pbase, "probe:8080")
	require.True(t, ok, "positive control: %s", why)
	for _, target := range []string{"db:3306", "database:3306", "backend:8081"} {
		ok, why := probe(t, pbase, target)
		require.False(t, ok, "tenant B must not reach %s: %s", target, why)
	}

	var del runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/shop", nil, &del))
	drun := hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunSucceeded, drun.Status, drun.Error)
	require.Empty(t, hs.meshContainers(t, tenant, "dev", "shop"), "delete removes the relays")
	require.Empty(t, hs.appNetworks(t, tenant, "dev", "shop"), "delete removes the networks on every host")
}

// meshContainers lists, per host, the relays of an application.
func (hs *harness) meshContainers(t testing.TB, tenant, env, app string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, th := range hs.hosts {
		list, err := th.Engine.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", activities.LabelMesh).Add("label", activities.LabelAppKey+"="+berth.AppKey(tenant, env, app))})
		require.NoError(t, err)
		for _, c := range list.Items {
			out[th.Name] = append(out[th.Name], strings.TrimPrefix(c.Names[0], "/"))
		}
	}
	return out
}

// gatewayAddr is the published address of an application's gateway on a host.
func (hs *harness) gatewayAddr(t testing.TB, tenant, env, app, host string) string {
	t.Helper()
	for _, th := range hs.hosts {
		if th.Name != host {
			continue
		}
		insp, err := th.Engine.ContainerInspect(context.Background(), berth.AppScoped(tenant, env, app, "_gateway"), client.ContainerInspectOptions{})
		require.NoError(t, err)
		for _, bindings := range insp.Container.NetworkSettings.Ports {
			for _, b := range bindings {
				return net.JoinHostPort(th.IP, b.HostPort)
			}
		}
	}
	require.Failf(t, "no gateway", "on %s", host)
	return ""
}

// selfSignedCert is a certificate of nobody berth knows.
func selfSignedCert(t testing.TB) tls.Certificate {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// The relays follow a scale: an application on one host, its environment
// then allowed a second host, its web service scaled onto it; the new
// instance reaches db (still on the first host) by name through the mesh
// from its first moment. Scaling back in takes the relays off that host.
func TestMeshFollowsAScaleOntoANewHost(t *testing.T) {
	fullSuite(t)
	hs := needHarness(t)
	if len(hs.hosts) < 2 {
		t.Skip("needs two test hosts")
	}
	h1, h2 := hs.hosts[0].Name, hs.hosts[1].Name
	tenant := hs.tenant + "-meshscale"
	apps := hs.newEnvOn(t, tenant, h1)
	body := []byte(fmt.Sprintf(`services:
  web:
    image: %[1]s
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
    depends_on: [db]
  db:
    image: %[1]s
    expose: ["3306"]
    environment: {LISTEN: ":3306"}
`, sampleImage))
	hs.deployOK(t, apps, "shop", body)
	require.Empty(t, hs.meshContainers(t, tenant, "dev", "shop"), "one host: no relays")

	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments/dev/hosts",
		map[string][]string{"hosts": {h1, h2}}, nil))
	web := serviceOf(t, hs.app(t, apps, "shop"), "web")
	runID, _ := hs.scale(t, web.ID, 2)
	run := hs.waitRun(t, runID)
	var steps []string
	for _, s := range run.Steps {
		steps = append(steps, s.Name)
	}
	require.Contains(t, steps, "mesh", "the scale brought the relays along")

	web = serviceOf(t, hs.app(t, apps, "shop"), "web")
	var onH2 *store.InstanceView
	for i := range web.Instances {
		if web.Instances[i].Host == h2 {
			onH2 = &web.Instances[i]
		}
	}
	require.NotNil(t, onH2, "the new instance went to the new host: %+v", web.Instances)
	p := onH2.Ports[0]
	base := fmt.Sprintf("http://%s:%d", p.HostIP, p.HostPort)
	code, answer := httpGet(t, base+"/call?url="+url.QueryEscape("http://db:3306/"))
	require.Equal(t, http.StatusOK, code, answer)
	require.Contains(t, answer, `"service":"db"`)
	relays := hs.meshContainers(t, tenant, "dev", "shop")
	require.Contains(t, relays[h2], berth.AppScoped(tenant, "dev", "shop", "_forward-db"))

	hs.scale(t, web.ID, 1)
	require.Empty(t, hs.meshContainers(t, tenant, "dev", "shop")[h2], "scale-in takes the relays off the host it left")
}
