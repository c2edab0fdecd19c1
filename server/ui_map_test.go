package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// bigTopology is one tenant, two environments, services×perService live
// instances on two hosts.
func bigTopology(services, perService int) *store.Topology {
	t := &store.Topology{
		Tenants:      []store.TopoTenant{{ID: 1, Name: "acme"}},
		Environments: []store.TopoEnvironment{{ID: 1, TenantID: 1, Name: "dev"}, {ID: 2, TenantID: 1, Name: "prod", Production: true}},
		Applications: []store.TopoApplication{{ID: 1, EnvironmentID: 1, Name: "shop", State: berth.StateRunning}},
		Hosts:        []store.TopoHost{{ID: 1, Name: "h1", Region: "eu", State: berth.HostReady}, {ID: 2, Name: "h2", Region: "eu", State: berth.HostDown}},
	}
	for s := 1; s <= services; s++ {
		t.Services = append(t.Services, store.TopoService{ID: uint(s), ApplicationID: 1, Name: fmt.Sprintf("svc%d", s), State: berth.StateRunning,
			Replicas: perService, ByState: map[berth.State]int{berth.StateRunning: perService - 1, berth.StateFailed: 1},
			ByHost: map[uint]int{1: perService / 2, 2: perService - perService/2}})
	}
	return t
}

func TestLayoutMapCollapsesAndExpands(t *testing.T) {
	topo := bigTopology(5, 100)
	d := layoutMap(topo, nil, false)
	kinds := map[string]int{}
	for _, n := range d.Nodes {
		kinds[n.Kind]++
	}
	require.Equal(t, map[string]int{"tenant": 1, "environment": 2, "application": 1, "service": 5, "host": 2}, kinds)
	require.Equal(t, 500, d.Instances)
	require.Contains(t, d.Summary, "500 live instances on 2 hosts")
	labels := 0
	for _, e := range d.Edges {
		if e.Label != "" {
			labels++
			require.Equal(t, "50", e.Label)
		}
	}
	require.Equal(t, 10, labels)
	var svc mapNode
	for _, n := range d.Nodes {
		if n.Kind == "service" {
			svc = n
			break
		}
	}
	require.Equal(t, "busy", svc.Class, "a running service with an instance not running is shown as short")
	require.Equal(t, "99/100 running, 1 other", svc.Sub)
	require.Equal(t, "/map?expand=1", svc.Toggle)
	require.Equal(t, "+", svc.ToggleSign)
	for _, n := range d.Nodes {
		require.LessOrEqual(t, n.X+n.W, d.Width)
		require.LessOrEqual(t, n.Y+n.H, d.Height)
		if n.Kind == "host" {
			require.Empty(t, n.Href, "only admins get a link to the hosts page")
		}
	}

	for i := 1; i <= 100; i++ {
		topo.Instances = append(topo.Instances, store.TopoInstance{Name: fmt.Sprintf("acme-dev-shop-svc1-%d", i), ServiceID: 1, HostID: uint(1 + i%2), State: berth.StateRunning})
	}
	d = layoutMap(topo, []uint{1}, true)
	n := 0
	for _, nd := range d.Nodes {
		switch nd.Kind {
		case "instance":
			n++
		case "service":
			if strings.HasPrefix(nd.Label, "svc1") {
				require.Equal(t, "/map", nd.Toggle)
				require.Equal(t, "−", nd.ToggleSign)
			}
		case "host":
			require.Equal(t, "/admin/hosts", nd.Href)
		}
	}
	require.Equal(t, 100, n)
	require.Len(t, d.Tree[0].Children[0].Children[0].Children[0].Children, 100, "the list form lists them too")
}

func TestParseExpand(t *testing.T) {
	ids, err := parseExpand("3, 1,3")
	require.NoError(t, err)
	require.Equal(t, []uint{3, 1}, ids)
	for _, bad := range []string{"x", "0", "-1", strings.Repeat("1,", 0) + "99999999999"} {
		_, err := parseExpand(bad)
		require.Error(t, err, bad)
	}
	many := make([]string, mapMaxExpand+1)
	for i := range many {
		many[i] = fmt.Sprint(i + 1)
	}
	_, err = parseExpand(strings.Join(many, ","))
	require.Error(t, err)
	require.Equal(t, "/map?expand=2", toggleExpand([]uint{1, 2}, 1))
	require.Equal(t, "/map?expand=1%2C2%2C3", toggleExpand([]uint{1, 2}, 3))
}

// BenchmarkMapLayout lays out a map of 500 instances (collapsed) and of one
// service's 100 expanded: the server's share of the map page.
func BenchmarkMapLayout(b *testing.B) {
	topo := bigTopology(5, 100)
	for i := 1; i <= 100; i++ {
		topo.Instances = append(topo.Instances, store.TopoInstance{Name: fmt.Sprintf("acme-dev-shop-svc1-%d", i), ServiceID: 1, HostID: 1, State: berth.StateRunning})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = layoutMap(topo, []uint{1}, false)
	}
}
