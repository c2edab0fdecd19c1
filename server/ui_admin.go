package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

// Admin pages: hosts (with a register form) and environments. They are for
// platform-wide admins, like the API routes they mirror (routes.go).

type hostsData struct {
	Hosts []store.Host
	// Capacity is each host's, by name.
	Capacity   map[string]store.HostCapacity
	Form       hostRequest
	Error      string
	Registered string
	RunID      string
	CSRF       string
}

func (s *Server) hostsPage(c *gin.Context) {
	d := hostsData{Registered: c.Query("registered"), RunID: c.Query("run"), Form: hostRequest{Region: "local"}}
	s.renderHosts(c, http.StatusOK, d)
}

func (s *Server) renderHosts(c *gin.Context, status int, d hostsData) {
	hs, err := s.store.Hosts(c.Request.Context())
	if err != nil {
		s.renderError(c, err)
		return
	}
	capa, err := s.store.Capacity(c.Request.Context(), []uint{}, true)
	if err != nil {
		s.renderError(c, err)
		return
	}
	d.Capacity = map[string]store.HostCapacity{}
	for _, hc := range capa.Hosts {
		d.Capacity[hc.Host] = hc
	}
	d.Hosts, d.CSRF = hs, csrfOf(principalOf(c))
	s.render(c, status, "hosts", "Hosts", "hosts", d)
}

// registerHostForm is POST /api/v1/hosts for a browser: the same checks,
// the same provisioning run, and an audit record; the CSRF token and origin
// were checked by uiAuth, the role by the route's policy.
func (s *Server) registerHostForm(c *gin.Context) {
	req := hostRequest{Name: strings.TrimSpace(c.PostForm("name")), Region: strings.TrimSpace(c.PostForm("region")),
		Endpoint: strings.TrimSpace(c.PostForm("endpoint")), IP: strings.TrimSpace(c.PostForm("ip")),
		VolumeRoot: strings.TrimSpace(c.PostForm("volumeRoot")), TLSCA: strings.TrimSpace(c.PostForm("tlsCA")),
		TLSCert: strings.TrimSpace(c.PostForm("tlsCert")), TLSKey: strings.TrimSpace(c.PostForm("tlsKey"))}
	shown := req
	fail := func(err error) {
		status, _, msg := s.classify(c, err)
		s.auditEvent(c, actor(c), "POST /admin/hosts", fmt.Sprint(status), "host "+req.Name)
		if status >= 500 {
			s.renderError(c, err)
			return
		}
		s.renderHosts(c, status, hostsData{Form: shown, Error: msg})
	}
	if err := req.validate(); err != nil {
		fail(err)
		return
	}
	h := &store.Host{Name: req.Name, Region: req.Region, Endpoint: req.Endpoint, IP: req.IP, VolumeRoot: req.VolumeRoot,
		TLSCA: req.TLSCA, TLSCert: req.TLSCert, TLSKey: req.TLSKey}
	if err := s.store.CreateHost(c.Request.Context(), h); err != nil {
		fail(err)
		return
	}
	started, err := s.provision(c, h)
	if err != nil {
		fail(err)
		return
	}
	s.auditEvent(c, actor(c), "POST /admin/hosts", "303", fmt.Sprintf("host %s, run %d", h.Name, started.RunID))
	c.Redirect(http.StatusSeeOther, "/admin/hosts?"+url.Values{"registered": {h.Name}, "run": {fmt.Sprint(started.RunID)}}.Encode())
}

type envRow struct {
	Tenant string
	store.Environment
	Cap *store.EnvironmentCapacity
}

func (s *Server) environmentsPage(c *gin.Context) {
	rows, err := s.environmentRows(c.Request.Context())
	if err != nil {
		s.renderError(c, err)
		return
	}
	s.render(c, http.StatusOK, "environments", "Environments", "environments", struct{ Envs []envRow }{rows})
}

func (s *Server) environmentRows(ctx context.Context) ([]envRow, error) {
	ts, err := s.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	capa, err := s.store.Capacity(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	rows := []envRow{}
	for _, t := range ts {
		es, err := s.store.Environments(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			row := envRow{Tenant: t.Name, Environment: e}
			for i, ec := range capa.Environments {
				if ec.Tenant == t.Name && ec.Environment == e.Name {
					row.Cap = &capa.Environments[i]
				}
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}
