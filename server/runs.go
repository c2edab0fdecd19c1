package server

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// runFilter reads a run filter from query values; every field and the sort
// go through allowlists or exact matches.
func (s *Server) runFilter(c *gin.Context, q url.Values) (store.RunFilter, error) {
	ctx := c.Request.Context()
	f := store.RunFilter{Kind: berth.RunKind(q.Get("kind")), Status: berth.RunStatus(q.Get("status")), StartedBy: q.Get("by"), Sort: q.Get("sort")}
	if _, ok := store.RunSorts[f.Sort]; !ok {
		return f, badRequest("sort must be one of id, -id, created, -created, status, kind")
	}
	for _, k := range []string{"limit", "offset"} {
		if v := q.Get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, badRequest(k + " must be a non-negative number")
			}
			if k == "limit" {
				f.Limit = n
			} else {
				f.Offset = n
			}
		}
	}
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badRequest(k + " must be an RFC 3339 time")
			}
			if k == "since" {
				f.Since = &t
			} else {
				f.Until = &t
			}
		}
	}
	if tn := q.Get("tenant"); tn != "" {
		t, err := s.store.TenantByName(ctx, tn)
		if err != nil {
			return f, err
		}
		f.TenantID = t.ID
		if en := q.Get("env"); en != "" {
			e, err := s.store.Environment(ctx, tn, en)
			if err != nil {
				return f, err
			}
			f.EnvironmentID = e.ID
			if an := q.Get("app"); an != "" {
				a, err := s.store.ApplicationByName(ctx, e.ID, an)
				if err != nil {
					return f, err
				}
				f.ApplicationID = a.ID
			}
		}
	} else if q.Get("env") != "" || q.Get("app") != "" {
		return f, badRequest("env and app filters need tenant")
	}
	return f, nil
}

// listRuns filters and sorts on the server through allowlists, within the
// caller's tenants; format=csv or json exports the page as a download.
func (s *Server) listRuns(c *gin.Context) {
	format := c.Query("format")
	if format != "" && format != "csv" && format != "json" {
		s.fail(c, badRequest("format must be csv or json"))
		return
	}
	f, err := s.runFilter(c, c.Request.URL.Query())
	if err != nil {
		s.fail(c, err)
		return
	}
	f.TenantIDs = principalOf(c).tenantIDs()
	runs, total, err := s.store.Runs(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	switch format {
	case "csv":
		c.Header("Content-Disposition", `attachment; filename="berth-runs.csv"`)
		c.Header("Content-Type", "text/csv; charset=utf-8")
		w := csv.NewWriter(c.Writer)
		_ = w.Write([]string{"id", "kind", "subject", "status", "startedBy", "createdAt", "finishedAt", "error"})
		for _, r := range runs {
			fin := ""
			if r.FinishedAt != nil {
				fin = r.FinishedAt.UTC().Format(time.RFC3339)
			}
			_ = w.Write([]string{strconv.FormatUint(uint64(r.ID), 10), string(r.Kind), csvSafe(r.Subject), string(r.Status), csvSafe(r.StartedBy),
				r.CreatedAt.UTC().Format(time.RFC3339), fin, csvSafe(r.Error)})
		}
		w.Flush()
		return
	case "json":
		c.Header("Content-Disposition", `attachment; filename="berth-runs.json"`)
	}
	c.JSON(http.StatusOK, gin.H{"runs": runs, "total": total})
}

// csvSafe keeps a spreadsheet from reading a cell as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) runParam(c *gin.Context) (*store.Run, error) {
	if run, ok := c.Get(runKey); ok {
		return run.(*store.Run), nil
	}
	id, err := idParam(c, "run")
	if err != nil {
		return nil, err
	}
	run, err := s.store.Run(c.Request.Context(), uint(id))
	if err == nil {
		c.Set(runKey, run)
	}
	return run, err
}

// runKey and serviceKey keep, for one request, the run or the service
// context its policy read, so the handler does not read them again.
const (
	runKey     = "berth.run"
	serviceKey = "berth.service"
)

// getRun returns a run with its steps and their timings.
func (s *Server) getRun(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"run": run}
	if u := s.temporalURL(run); u != "" {
		out["temporalUrl"] = u
		out["historyUrl"] = runURL(run.ID) + "/history"
	}
	c.JSON(http.StatusOK, out)
}

// cancelRun asks the run's workflow to stop; the workflow undoes its work.
func (s *Server) cancelRun(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if run.Status != berth.RunRunning && run.Status != berth.RunPending {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: "run " + strconv.FormatUint(uint64(run.ID), 10) + " is already " + string(run.Status)})
		return
	}
	if err := s.temporal.CancelWorkflow(c.Request.Context(), run.WorkflowID, run.TemporalRunID); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "status": "cancelling"})
}

// listAudit filters the audit log: actor, action, since, until, an
// allowlisted sort, limit and offset.
func (s *Server) listAudit(c *gin.Context) {
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Sort: c.Query("sort")}
	if _, ok := store.AuditSorts[f.Sort]; !ok {
		s.fail(c, badRequest("sort must be one of at, -at, actor, action"))
		return
	}
	for _, k := range []string{"since", "until"} {
		if v := c.Query(k); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.fail(c, badRequest(k+" must be an RFC 3339 time"))
				return
			}
			if k == "since" {
				f.Since = &t
			} else {
				f.Until = &t
			}
		}
	}
	for _, k := range []string{"limit", "offset"} {
		if v := c.Query(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.fail(c, badRequest(k+" must be a non-negative number"))
				return
			}
			if k == "limit" {
				f.Limit = n
			} else {
				f.Offset = n
			}
		}
	}
	evs, total, err := s.store.QueryAudit(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"events": evs, "total": total})
}

type confirmRequest struct {
	Comment string `json:"comment"`
}

// confirmFirewall tells a run waiting on a firewall ticket that the openings
// are done; the identity is the caller's, never a field of the request.
func (s *Server) confirmFirewall(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req confirmRequest
	if c.Request.ContentLength > 0 {
		if err := bind(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	}
	if run.Status != berth.RunRunning {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: "run " + strconv.FormatUint(uint64(run.ID), 10) + " is " + string(run.Status) + ", not waiting"})
		return
	}
	st, err := s.store.Run(c.Request.Context(), run.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	waiting := false
	for _, step := range st.Steps {
		if step.Name == "firewall ticket" && step.State == berth.StepWaiting {
			waiting = true
		}
	}
	if !waiting {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: "run is not waiting for a firewall ticket"})
		return
	}
	err = s.temporal.SignalWorkflow(c.Request.Context(), run.WorkflowID, run.TemporalRunID, workflows.FirewallConfirmSignal,
		workflows.FirewallConfirmation{By: actor(c), Comment: req.Comment})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID)})
}
