package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runhistory"
	"github.com/berth-dev/berth/store"
)

// A run's workflow history, read from Temporal a page at a time and told in
// berth's words by package runhistory. Release managers read it here; the
// Temporal UI link is there for the engine's own view.

// defaultTemporalUI is the dev server's web UI, used when no BERTH_TEMPORAL_UI_URL is set.
const defaultTemporalUI = "http://127.0.0.1:8233"

const (
	historyPageSize    = 100
	historyMaxPageSize = 500
)

// historyPage is one page of a run's history.
type historyPage struct {
	RunID         uint               `json:"runId"`
	WorkflowID    string             `json:"workflowId"`
	TemporalRunID string             `json:"temporalRunId"`
	Events        []runhistory.Event `json:"events"`
	// NextPageToken asks for the next page; empty on the last one.
	NextPageToken string `json:"nextPageToken,omitempty"`
	TemporalURL   string `json:"temporalUrl"`
}

// temporalURL links a run to its workflow in the Temporal UI, or "" before it has one.
func (s *Server) temporalURL(run *store.Run) string {
	if run.WorkflowID == "" || run.TemporalRunID == "" {
		return ""
	}
	base := strings.TrimRight(s.cfg.TemporalUIURL, "/")
	if base == "" {
		base = defaultTemporalUI
	}
	return base + "/namespaces/" + url.PathEscape(s.cfg.TemporalNamespace) + "/workflows/" +
		url.PathEscape(run.WorkflowID) + "/" + url.PathEscape(run.TemporalRunID) + "/history"
}

// noWorkflow says a run has no workflow history to read yet.
func noWorkflow(run *store.Run) error {
	msg := fmt.Sprintf("run %d has no workflow yet: it is %s and its workflow has not started", run.ID, run.Status)
	if run.Status == berth.RunFailed || run.Status == berth.RunCancelled {
		msg = fmt.Sprintf("run %d has no workflow history: it ended (%s) before its workflow started", run.ID, run.Status)
	}
	return &berth.Error{Code: berth.EConflict, Reason: "no_workflow", Message: msg}
}

// readHistory reads one page of a run's history.
func (s *Server) readHistory(c *gin.Context, run *store.Run, token string, size int) (*historyPage, error) {
	if run.WorkflowID == "" || run.TemporalRunID == "" {
		return nil, noWorkflow(run)
	}
	ctx, cancel := contextWithTimeout(c.Request.Context(), 15*time.Second)
	defer cancel()
	p, err := runhistory.Read(ctx, s.temporal.WorkflowService(), s.cfg.DataConverter, s.cfg.TemporalNamespace, run.WorkflowID, run.TemporalRunID, token, size)
	if err != nil {
		return nil, s.historyError(run, token, err)
	}
	return &historyPage{RunID: run.ID, WorkflowID: run.WorkflowID, TemporalRunID: run.TemporalRunID,
		Events: p.Events, NextPageToken: p.Next, TemporalURL: s.temporalURL(run)}, nil
}

func (s *Server) historyError(run *store.Run, token string, err error) error {
	var nf *serviceerror.NotFound
	var inv *serviceerror.InvalidArgument
	var domain *berth.Error
	switch {
	case errors.As(err, &domain):
		// runhistory's own refusal of a token: already in words.
		return err
	case errors.As(err, &nf):
		return &berth.Error{Code: berth.ENotFound, Message: fmt.Sprintf(
			"Temporal no longer has the history of run %d (workflow %s): it is past the namespace's retention", run.ID, run.WorkflowID)}
	case errors.As(err, &inv) && token != "":
		return badRequest("pageToken is not valid for this run; start from the first page")
	}
	s.log.Error("workflow history not read", "run", run.ID, "error", err)
	return &berth.Error{Code: berth.EUpstream, Reason: "temporal_unavailable", Message: "the workflow engine did not answer; try again"}
}

func historySize(c *gin.Context) (int, error) {
	v := c.Query("size")
	if v == "" {
		return historyPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > historyMaxPageSize {
		return 0, badRequest(fmt.Sprintf("size must be a number from 1 to %d", historyMaxPageSize))
	}
	return n, nil
}

// runHistory: GET /api/v1/runs/:id/history?pageToken=&size=
func (s *Server) runHistory(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	size, err := historySize(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.readHistory(c, run, c.Query("pageToken"), size)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// runHistoryPage: /runs/:id/history, the same page as HTML.
func (s *Server) runHistoryPage(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.renderError(c, err)
		return
	}
	data := struct {
		Run         *store.Run
		Page        *historyPage
		Events      []runhistory.Event
		Hidden      int
		Engine      bool
		Next, First string
		// Toggle is this page with engine events shown or hidden.
		Toggle      string
		TemporalURL string
		Empty       string
	}{Run: run, Engine: c.Query("engine") == "1", TemporalURL: s.temporalURL(run)}
	page, err := s.readHistory(c, run, c.Query("pageToken"), historyPageSize)
	var ae *berth.Error
	switch {
	case errors.As(err, &ae) && ae.Reason == "no_workflow":
		data.Empty = ae.Message + ". Its history appears here once a worker has started it; the run page shows why it has not."
	case err != nil:
		s.renderError(c, err)
		return
	default:
		data.Page = page
		for _, e := range page.Events {
			if e.Engine && !data.Engine {
				data.Hidden++
				continue
			}
			data.Events = append(data.Events, e)
		}
		q := url.Values{}
		if data.Engine {
			q.Set("engine", "1")
		}
		if c.Query("pageToken") != "" {
			data.First = "?" + q.Encode()
		}
		t := url.Values{}
		if !data.Engine {
			t.Set("engine", "1")
		}
		if tok := c.Query("pageToken"); tok != "" {
			t.Set("pageToken", tok)
		}
		data.Toggle = t.Encode()
		if page.NextPageToken != "" {
			q.Set("pageToken", page.NextPageToken)
			data.Next = q.Encode()
		}
	}
	s.render(c, http.StatusOK, "run_history", fmt.Sprintf("Run %d history", run.ID), "runs", data)
}

// decodePayloads serves Temporal's remote-codec decode for operators; the
// codec handler reads the Payloads JSON and answers it decoded.
func (s *Server) decodePayloads(c *gin.Context) {
	if s.cfg.Codec == nil {
		s.fail(c, &berth.Error{Code: berth.ENotImplemented, Reason: "no_codec", Message: "this server seals no payloads"})
		return
	}
	s.cfg.Codec.ServeHTTP(c.Writer, c.Request)
}
