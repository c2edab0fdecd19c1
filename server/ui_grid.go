package server

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

// The environment × service grid (UX.md feature 1): environments are
// columns, services (tenant / application / service) rows.

const gridRowsPerPage = 50

type gridRow struct {
	Tenant, Application, Service string
	Label                        string
	Cells                        []*store.GridCell // one per column; nil where the service is not deployed
}

type gridData struct {
	Columns     []string
	Rows        []gridRow
	Filter      string
	Total       int
	Page, Pages int
	Prev, Next  string
	Waiting     int
	// Deploy are the environments the viewer may deploy to, for the
	// "Deploy an application" form; none, and the form is not shown.
	Deploy []deployTarget
}

// deployTarget is one environment of the deploy form: its label and the
// URL a deploy to it posts to.
type deployTarget struct {
	Label, Action string
}

// envRank orders the usual stages left to right; other names follow, by name.
func envRank(name string) int {
	switch name {
	case "dev", "development":
		return 0
	case "test", "testing", "qa":
		return 1
	case "stage", "staging", "preprod", "pre-prod", "uat":
		return 2
	case "prod", "production":
		return 3
	}
	return 4
}

func (s *Server) gridPage(c *gin.Context) {
	p := principalOf(c)
	cells, envs, err := s.store.Grid(c.Request.Context(), p.tenantIDs())
	if err != nil {
		s.renderError(c, err)
		return
	}
	d := gridData{Filter: strings.TrimSpace(c.Query("q"))}
	// Columns: every environment name of the caller's tenants.
	col := map[string]int{}
	for _, e := range envs {
		if _, ok := col[e.Name]; !ok {
			col[e.Name] = 0
			d.Columns = append(d.Columns, e.Name)
		}
	}
	sort.SliceStable(d.Columns, func(i, j int) bool {
		ri, rj := envRank(d.Columns[i]), envRank(d.Columns[j])
		if ri != rj {
			return ri < rj
		}
		return d.Columns[i] < d.Columns[j]
	})
	for i, n := range d.Columns {
		col[n] = i
	}
	for _, e := range envs {
		if p.has(e.TenantID, deployRoles...) {
			d.Deploy = append(d.Deploy, deployTarget{Label: e.Tenant + "/" + e.Name,
				Action: "/api/v1/tenants/" + url.PathEscape(e.Tenant) + "/environments/" + url.PathEscape(e.Name) + "/applications"})
		}
	}
	sort.Slice(d.Deploy, func(i, j int) bool { return d.Deploy[i].Label < d.Deploy[j].Label })
	// Rows: one per tenant / application / service, in name order.
	rows := []gridRow{}
	index := map[string]int{}
	needle := strings.ToLower(d.Filter)
	for i := range cells {
		cl := &cells[i]
		key := cl.Tenant + "/" + cl.Application + "/" + cl.Service
		if needle != "" && !strings.Contains(strings.ToLower(key), needle) {
			continue
		}
		ri, ok := index[key]
		if !ok {
			ri = len(rows)
			index[key] = ri
			rows = append(rows, gridRow{Tenant: cl.Tenant, Application: cl.Application, Service: cl.Service,
				Label: key, Cells: make([]*store.GridCell, len(d.Columns))})
		}
		rows[ri].Cells[col[cl.Environment]] = cl
		if cl.Waiting > 0 {
			d.Waiting++
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Label < rows[j].Label })
	d.Total = len(rows)
	d.Pages = (d.Total + gridRowsPerPage - 1) / gridRowsPerPage
	d.Page, _ = strconv.Atoi(c.Query("page"))
	if d.Page < 1 {
		d.Page = 1
	}
	if d.Pages > 0 && d.Page > d.Pages {
		d.Page = d.Pages
	}
	from := (d.Page - 1) * gridRowsPerPage
	to := min(from+gridRowsPerPage, d.Total)
	if from < to {
		d.Rows = rows[from:to]
	}
	link := func(n int) string {
		v := url.Values{}
		if d.Filter != "" {
			v.Set("q", d.Filter)
		}
		v.Set("page", strconv.Itoa(n))
		return v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.Next = link(d.Page + 1)
	}
	s.render(c, http.StatusOK, "grid", "Services", "grid", d)
}
