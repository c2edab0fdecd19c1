package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/compose/textdiff"
	"github.com/berth-dev/berth/store"
)

// versionView is a version of an application's compose file with how it
// differs from the one before.
type versionView struct {
	store.AppVersion
	Added   int    `json:"added"`
	Removed int    `json:"removed"`
	Diff    string `json:"diff,omitempty"`
}

// listVersions shows an application's compose versions, newest first: who,
// when, which run, and the lines added and removed against the previous.
func (s *Server) listVersions(c *gin.Context) {
	_, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	vs, err := s.store.AppVersions(c.Request.Context(), app.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]versionView, len(vs))
	for i, v := range vs {
		out[i] = viewOf(v, previous(vs, i), false)
		out[i].Compose = ""
	}
	c.JSON(http.StatusOK, gin.H{"versions": out})
}

// getVersion shows one version's compose file and its unified diff against
// the version before.
func (s *Server) getVersion(c *gin.Context) {
	ctx := c.Request.Context()
	_, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil || n < 1 {
		s.fail(c, badRequest("version must be a positive number"))
		return
	}
	v, err := s.store.AppVersion(ctx, app.ID, n)
	if err != nil {
		s.fail(c, err)
		return
	}
	prev := ""
	if n > 1 {
		p, err := s.store.AppVersion(ctx, app.ID, n-1)
		if err != nil {
			s.fail(c, err)
			return
		}
		prev = p.Compose
	}
	c.JSON(http.StatusOK, viewOf(*v, prev, true))
}

// viewOf is a version with its line counts against prev and, when asked,
// the unified diff.
func viewOf(v store.AppVersion, prev string, diff bool) versionView {
	view := versionView{AppVersion: v}
	view.Added, view.Removed = textdiff.Count(prev, v.Compose)
	if diff {
		view.Diff = textdiff.Unified(fmt.Sprintf("version %d", v.Number-1), fmt.Sprintf("version %d", v.Number), prev, v.Compose)
	}
	return view
}

// previous is the compose file before vs[i] (vs newest first), "" for the first.
func previous(vs []store.AppVersion, i int) string {
	if i+1 < len(vs) {
		return vs[i+1].Compose
	}
	return ""
}

// uiVersions is how many versions the service page shows with their diffs.
const uiVersions = 10

// versionDiff is a version as the service page shows it: a diff line by
// line, each with the class that colours it.
type versionDiff struct {
	versionView
	Lines []diffLine
}

type diffLine struct{ Class, Text string }

// versionDiffs are an application's newest versions with their diffs.
func (s *Server) versionDiffs(c *gin.Context, appID uint) ([]versionDiff, error) {
	vs, err := s.store.AppVersions(c.Request.Context(), appID)
	if err != nil {
		return nil, err
	}
	var out []versionDiff
	for i, v := range vs {
		if i == uiVersions {
			break
		}
		d := versionDiff{versionView: viewOf(v, previous(vs, i), true)}
		for _, l := range strings.Split(strings.TrimSuffix(d.Diff, "\n"), "\n") {
			class := "ctx"
			switch {
			case strings.HasPrefix(l, "@@"), strings.HasPrefix(l, "---"), strings.HasPrefix(l, "+++"):
				class = "hunk"
			case strings.HasPrefix(l, "+"):
				class = "add"
			case strings.HasPrefix(l, "-"):
				class = "del"
			}
			d.Lines = append(d.Lines, diffLine{class, l})
		}
		out = append(out, d)
	}
	return out, nil
}
