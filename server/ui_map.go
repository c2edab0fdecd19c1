package server

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// The map's geometry, in SVG user units: columns of boxes, one row per
// leaf (a collapsed service, or an instance of an expanded one).
const (
	mapNodeW  = 176
	mapNodeH  = 34
	mapColGap = 56
	mapRowH   = 44
	mapPad    = 12
	// mapMaxExpand bounds the services one map lists instance by instance.
	mapMaxExpand = 20
)

// mapNode is one box of the map.
type mapNode struct {
	X, Y, W, H int
	Kind       string // tenant, environment, application, service, instance, host
	Label, Sub string
	Title      string // the full name and state, as a tooltip
	Class      string // the state's colour
	Href       string
	// Toggle, for a service, is the map with its instances shown or hidden.
	Toggle, ToggleLabel, ToggleSign string
	// Where the texts and the toggle go (computed from X and Y).
	TextX, LabelY, SubY, ToggleX, ToggleY, ToggleTextX, ToggleTextY int
}

// mapEdge is one line between boxes.
type mapEdge struct {
	D     string
	Class string
	// Label is drawn at the line's middle (instances per host of a collapsed service).
	Label          string
	LabelX, LabelY int
}

// mapTree is the map as nested lists: its text alternative, and what a
// narrow screen reads.
type mapTree struct {
	Label, Href, Class, Sub string
	Children                []*mapTree
}

type mapData struct {
	Width, Height int
	Nodes         []mapNode
	Edges         []mapEdge
	Tree          []*mapTree
	Services      int
	Instances     int
	Expanded      []uint
	Summary       string
}

// parseExpand reads ?expand=1,2,3 (service ids), bounded.
func parseExpand(v string) ([]uint, error) {
	var out []uint
	seen := map[uint]bool{}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil || n == 0 {
			return nil, badRequest("expand must be service ids separated by commas")
		}
		if !seen[uint(n)] {
			seen[uint(n)] = true
			out = append(out, uint(n))
		}
	}
	if len(out) > mapMaxExpand {
		return nil, badRequest(fmt.Sprintf("at most %d services can be expanded at once", mapMaxExpand))
	}
	return out, nil
}

// mapPage draws tenant → environment → application → service → instance →
// host for the caller's tenants, as server-rendered SVG: services show
// their instances as counts per host unless expanded, so a map of
// hundreds of instances stays readable.
func (s *Server) mapPage(c *gin.Context) {
	expand, err := parseExpand(c.Query("expand"))
	if err != nil {
		s.renderError(c, err)
		return
	}
	p := principalOf(c)
	topo, err := s.store.Topology(c.Request.Context(), p.tenantIDs(), expand)
	if err != nil {
		s.renderError(c, err)
		return
	}
	d := layoutMap(topo, expand, p.has(0, berth.RoleAdmin))
	s.render(c, http.StatusOK, "map", "Map", "map", d)
}

func stateClass(st string) string {
	switch st {
	case string(berth.StateRunning), string(berth.HostReady):
		return "ok"
	case string(berth.StateFailed), string(berth.HostDown), string(berth.StateLost):
		return "bad"
	case string(berth.StatePlanned), string(berth.StateDeploying), string(berth.StateDeleting), string(berth.HostPending),
		string(berth.HostDraining):
		return "busy"
	}
	return "idle"
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// toggleExpand is the map's query with id added to, or taken out of, the expanded services.
func toggleExpand(expand []uint, id uint) string {
	var ids []string
	found := false
	for _, e := range expand {
		if e == id {
			found = true
			continue
		}
		ids = append(ids, strconv.FormatUint(uint64(e), 10))
	}
	if !found {
		ids = append(ids, strconv.FormatUint(uint64(id), 10))
	}
	if len(ids) == 0 {
		return "/map"
	}
	return "/map?" + url.Values{"expand": {strings.Join(ids, ",")}}.Encode()
}

// layoutMap places the boxes: one row per leaf, every parent centred on
// its children, hosts in the last column.
func layoutMap(t *store.Topology, expand []uint, admin bool) mapData {
	d := mapData{Expanded: expand}
	expanded := map[uint]bool{}
	for _, id := range expand {
		expanded[id] = true
	}
	instsOf := map[uint][]store.TopoInstance{}
	for _, in := range t.Instances {
		instsOf[in.ServiceID] = append(instsOf[in.ServiceID], in)
	}
	envsOf := map[uint][]store.TopoEnvironment{}
	for _, e := range t.Environments {
		envsOf[e.TenantID] = append(envsOf[e.TenantID], e)
	}
	appsOf := map[uint][]store.TopoApplication{}
	for _, a := range t.Applications {
		appsOf[a.EnvironmentID] = append(appsOf[a.EnvironmentID], a)
	}
	svcsOf := map[uint][]store.TopoService{}
	for _, sv := range t.Services {
		svcsOf[sv.ApplicationID] = append(svcsOf[sv.ApplicationID], sv)
	}
	hostCol := 4
	if len(t.Instances) > 0 {
		hostCol = 5
	}
	x := func(col int) int { return mapPad + col*(mapNodeW+mapColGap) }
	row := 0
	next := func() int {
		y := mapPad + row*mapRowH
		row++
		return y
	}
	// Hosts first (their rows are laid out after), so edges can find them.
	hostY := map[uint]int{}
	hostByID := map[uint]store.TopoHost{}
	for _, h := range t.Hosts {
		hostByID[h.ID] = h
	}
	type pending struct {
		fromX, fromY int
		hostID       uint
		label        string
		class        string
	}
	var toHosts []pending
	edge := func(x1, y1, x2, y2 int, class string) mapEdge {
		mx := (x1 + x2) / 2
		return mapEdge{D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mx, y1, mx, y2, x2, y2), Class: class}
	}
	center := func(ys []int) int {
		if len(ys) == 0 {
			return next()
		}
		return (ys[0] + ys[len(ys)-1]) / 2
	}
	add := func(n mapNode) mapNode {
		n.W, n.H = mapNodeW, mapNodeH
		n.TextX, n.LabelY, n.SubY = n.X+8, n.Y+14, n.Y+28
		n.ToggleX, n.ToggleY, n.ToggleTextX, n.ToggleTextY = n.X+mapNodeW-24, n.Y+5, n.X+mapNodeW-18, n.Y+22
		n.ToggleSign = "+"
		if strings.HasPrefix(n.ToggleLabel, "Hide") {
			n.ToggleSign = "−"
		}
		d.Nodes = append(d.Nodes, n)
		return n
	}
	link := func(parent mapNode, childYs []int, childCol int) {
		for _, cy := range childYs {
			d.Edges = append(d.Edges, edge(parent.X+mapNodeW, parent.Y+mapNodeH/2, x(childCol), cy+mapNodeH/2, "tree"))
		}
	}
	for _, tn := range t.Tenants {
		tt := &mapTree{Label: tn.Name, Href: "/?q=" + url.QueryEscape(tn.Name)}
		var envYs []int
		for _, e := range envsOf[tn.ID] {
			et := &mapTree{Label: e.Name, Href: "/runs?" + url.Values{"tenant": {tn.Name}, "env": {e.Name}}.Encode()}
			if e.Production {
				et.Sub = "production"
			}
			var appYs []int
			for _, a := range appsOf[e.ID] {
				at := &mapTree{Label: a.Name, Class: stateClass(string(a.State)), Sub: string(a.State),
					Href: "/runs?" + url.Values{"tenant": {tn.Name}, "env": {e.Name}, "app": {a.Name}}.Encode()}
				var svcYs []int
				for _, sv := range svcsOf[a.ID] {
					d.Services++
					live := sv.Live()
					d.Instances += live
					running := sv.ByState[berth.StateRunning]
					sub := fmt.Sprintf("%d/%d running", running, sv.Replicas)
					if live != running {
						sub += fmt.Sprintf(", %d other", live-running)
					}
					href := fmt.Sprintf("/services/%d", sv.ID)
					class := stateClass(string(sv.State))
					if live != running && class == "ok" {
						class = "busy"
					}
					st := &mapTree{Label: sv.Name, Href: href, Class: class, Sub: sub}
					var y int
					if expanded[sv.ID] {
						var instYs []int
						for _, in := range instsOf[sv.ID] {
							iy := next()
							instYs = append(instYs, iy)
							n := add(mapNode{X: x(4), Y: iy, Kind: "instance", Label: shorten(in.Name, 24), Sub: string(in.State),
								Title: in.Name + " (" + string(in.State) + ") on " + hostByID[in.HostID].Name, Class: stateClass(string(in.State)), Href: href})
							toHosts = append(toHosts, pending{fromX: n.X + mapNodeW, fromY: n.Y + mapNodeH/2, hostID: in.HostID, class: "run"})
							st.Children = append(st.Children, &mapTree{Label: in.Name, Href: href, Class: n.Class, Sub: string(in.State) + " on " + hostByID[in.HostID].Name})
						}
						y = center(instYs)
						n := add(mapNode{X: x(3), Y: y, Kind: "service", Label: shorten(sv.Name, 20), Sub: sub, Title: sv.Name + ": " + sub,
							Class: class, Href: href, Toggle: toggleExpand(expand, sv.ID), ToggleLabel: "Hide the instances of " + sv.Name})
						link(n, instYs, 4)
					} else {
						y = next()
						n := add(mapNode{X: x(3), Y: y, Kind: "service", Label: shorten(sv.Name, 20), Sub: sub, Title: sv.Name + ": " + sub,
							Class: class, Href: href})
						if live > 0 && len(expand) < mapMaxExpand {
							d.Nodes[len(d.Nodes)-1].Toggle, d.Nodes[len(d.Nodes)-1].ToggleLabel = toggleExpand(expand, sv.ID), "Show the instances of "+sv.Name
							d.Nodes[len(d.Nodes)-1].ToggleSign = "+"
						}
						hosts := make([]uint, 0, len(sv.ByHost))
						for h := range sv.ByHost {
							hosts = append(hosts, h)
						}
						sort.Slice(hosts, func(i, j int) bool { return hostByID[hosts[i]].Name < hostByID[hosts[j]].Name })
						for _, h := range hosts {
							toHosts = append(toHosts, pending{fromX: n.X + mapNodeW, fromY: n.Y + mapNodeH/2, hostID: h,
								label: strconv.Itoa(sv.ByHost[h]), class: "run"})
						}
					}
					svcYs = append(svcYs, y)
					at.Children = append(at.Children, st)
				}
				ay := center(svcYs)
				n := add(mapNode{X: x(2), Y: ay, Kind: "application", Label: shorten(a.Name, 20), Sub: string(a.State),
					Title: a.Name + " (" + string(a.State) + ")", Class: at.Class, Href: at.Href})
				link(n, svcYs, 3)
				appYs = append(appYs, ay)
				et.Children = append(et.Children, at)
			}
			ey := center(appYs)
			n := add(mapNode{X: x(1), Y: ey, Kind: "environment", Label: shorten(e.Name, 20), Sub: et.Sub, Title: tn.Name + "/" + e.Name,
				Class: "env", Href: et.Href})
			link(n, appYs, 2)
			envYs = append(envYs, ey)
			tt.Children = append(tt.Children, et)
		}
		ty := center(envYs)
		n := add(mapNode{X: x(0), Y: ty, Kind: "tenant", Label: shorten(tn.Name, 20), Title: tn.Name, Class: "tenant", Href: tt.Href})
		link(n, envYs, 1)
		d.Tree = append(d.Tree, tt)
	}
	rows := max(row, 1)
	// Hosts: stacked, centred on the rows' height.
	top := mapPad + max(0, (rows-len(t.Hosts))*mapRowH/2)
	for i, h := range t.Hosts {
		y := top + i*mapRowH
		hostY[h.ID] = y
		href := ""
		if admin {
			href = "/admin/hosts"
		}
		add(mapNode{X: x(hostCol), Y: y, Kind: "host", Label: shorten(h.Name, 20), Sub: h.Region + " · " + string(h.State),
			Title: h.Name + " in " + h.Region + " (" + string(h.State) + ")", Class: stateClass(string(h.State)), Href: href})
	}
	for _, p := range toHosts {
		hy, ok := hostY[p.hostID]
		if !ok {
			continue
		}
		e := edge(p.fromX, p.fromY, x(hostCol), hy+mapNodeH/2, p.class)
		if p.label != "" {
			e.Label, e.LabelX, e.LabelY = p.label, (p.fromX+x(hostCol))/2, (p.fromY+hy+mapNodeH/2)/2-4
		}
		d.Edges = append(d.Edges, e)
	}
	d.Width = x(hostCol) + mapNodeW + mapPad
	d.Height = mapPad*2 + max(rows, len(t.Hosts))*mapRowH
	d.Summary = fmt.Sprintf("%d tenants, %d services, %d live instances on %d hosts", len(t.Tenants), d.Services, d.Instances, len(t.Hosts))
	return d
}
