package server

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
)

// A service's history for release managers: every release (version, kind,
// strategy, outcome, reason, who, when, how long) and every run that
// touched the service, newest first, each list paged on its own.

const serviceHistoryPage = 50

// releaseView is a release as the history shows it.
type releaseView struct {
	store.Release
	Took string `json:"took"`
}

func releaseViews(rels []store.Release) []releaseView {
	out := make([]releaseView, 0, len(rels))
	for _, r := range rels {
		v := releaseView{Release: r, Took: "running"}
		if r.FinishedAt != nil {
			v.Took = r.FinishedAt.Sub(r.CreatedAt).Round(100 * time.Millisecond).String()
		}
		out = append(out, v)
	}
	return out
}

func offsetParam(c *gin.Context, key string) (int, error) {
	v := c.Query(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest(key + " must be a non-negative number")
	}
	return n, nil
}

// serviceHistory: GET /api/v1/services/:id/history?limit=&releaseOffset=&runOffset=
func (s *Server) serviceHistory(c *gin.Context) {
	ctx := c.Request.Context()
	limit := serviceHistoryPage
	var err error
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 200 {
			s.fail(c, badRequest("limit must be a number from 1 to 200"))
			return
		}
	}
	relOff, err := offsetParam(c, "releaseOffset")
	if err != nil {
		s.fail(c, err)
		return
	}
	runOff, err := offsetParam(c, "runOffset")
	if err != nil {
		s.fail(c, err)
		return
	}
	sc, err := s.serviceContext(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	rels, relTotal, err := s.store.ServiceReleasesPage(ctx, sc.Service.ID, limit, relOff)
	if err != nil {
		s.fail(c, err)
		return
	}
	runs, runTotal, err := s.store.ServiceRuns(ctx, sc, limit, runOff)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"service": sc.Service, "releases": releaseViews(rels), "releasesTotal": relTotal,
		"runs": runs, "runsTotal": runTotal})
}

// serviceHistoryPageView: /services/:id/history?releases=N&runs=M (page numbers).
func (s *Server) serviceHistoryPageView(c *gin.Context) {
	ctx := c.Request.Context()
	sc, err := s.serviceContext(c)
	if err != nil {
		s.renderError(c, err)
		return
	}
	pageOf := func(key string) int {
		n, _ := strconv.Atoi(c.Query(key))
		if n < 1 {
			n = 1
		}
		return n
	}
	relPage, runPage := pageOf("releases"), pageOf("runs")
	rels, relTotal, err := s.store.ServiceReleasesPage(ctx, sc.Service.ID, serviceHistoryPage, (relPage-1)*serviceHistoryPage)
	if err != nil {
		s.renderError(c, err)
		return
	}
	runs, runTotal, err := s.store.ServiceRuns(ctx, sc, serviceHistoryPage, (runPage-1)*serviceHistoryPage)
	if err != nil {
		s.renderError(c, err)
		return
	}
	link := func(rp, up int) string {
		v := url.Values{}
		v.Set("releases", strconv.Itoa(rp))
		v.Set("runs", strconv.Itoa(up))
		return v.Encode()
	}
	pages := func(total int64) int { return int((total + serviceHistoryPage - 1) / serviceHistoryPage) }
	data := struct {
		Ctx                      *store.ServiceContext
		Releases                 []releaseView
		Runs                     []store.Run
		ReleasesTotal, RunsTotal int64
		RelPage, RelPages        int
		RunPage, RunPages        int
		RelPrev, RelNext         string
		RunPrev, RunNext         string
	}{Ctx: sc, Releases: releaseViews(rels), Runs: runs, ReleasesTotal: relTotal, RunsTotal: runTotal,
		RelPage: relPage, RelPages: pages(relTotal), RunPage: runPage, RunPages: pages(runTotal)}
	if relPage > 1 {
		data.RelPrev = link(relPage-1, runPage)
	}
	if relPage < data.RelPages {
		data.RelNext = link(relPage+1, runPage)
	}
	if runPage > 1 {
		data.RunPrev = link(relPage, runPage-1)
	}
	if runPage < data.RunPages {
		data.RunNext = link(relPage, runPage+1)
	}
	s.render(c, http.StatusOK, "service_history", "History of "+sc.Service.Name, "", data)
}
