package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// listRuns filters and sorts on the server through allowlists.
func (s *Server) listRuns(c *gin.Context) {
	ctx := c.Request.Context()
	f := store.RunFilter{Kind: c.Query("kind"), Status: c.Query("status"), StartedBy: c.Query("by"), Sort: c.Query("sort")}
	if _, ok := store.RunSorts[f.Sort]; !ok {
		s.fail(c, badRequest("sort must be one of id, -id, created, -created, status, kind"))
		return
	}
	for k, dst := range map[string]*int{"limit": &f.Limit, "offset": &f.Offset} {
		if v := c.Query(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.fail(c, badRequest(k+" must be a non-negative number"))
				return
			}
			*dst = n
		}
	}
	for k, dst := range map[string]**time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.Query(k); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.fail(c, badRequest(k+" must be an RFC 3339 time"))
				return
			}
			*dst = &t
		}
	}
	if tn := c.Query("tenant"); tn != "" {
		t, err := s.store.TenantByName(ctx, tn)
		if err != nil {
			s.fail(c, err)
			return
		}
		f.TenantID = t.ID
		if en := c.Query("env"); en != "" {
			e, err := s.store.Environment(ctx, tn, en)
			if err != nil {
				s.fail(c, err)
				return
			}
			f.EnvironmentID = e.ID
			if an := c.Query("app"); an != "" {
				a, err := s.store.ApplicationByName(ctx, e.ID, an)
				if err != nil {
					s.fail(c, err)
					return
				}
				f.ApplicationID = a.ID
			}
		}
	}
	runs, total, err := s.store.Runs(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"runs": runs, "total": total})
}

func (s *Server) runParam(c *gin.Context) (*store.Run, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil {
		return nil, badRequest("run id must be a number")
	}
	return s.store.Run(c.Request.Context(), uint(id))
}

// getRun returns a run with its steps and their timings.
func (s *Server) getRun(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"run": run}
	if s.cfg.TemporalUIURL != "" && run.WorkflowID != "" {
		out["temporalUrl"] = s.cfg.TemporalUIURL + "/namespaces/default/workflows/" + run.WorkflowID + "/" + run.TemporalRunID + "/history"
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
	if run.Status != store.RunRunning && run.Status != store.RunPending {
		s.fail(c, &apiError{http.StatusConflict, "conflict", "run " + strconv.FormatUint(uint64(run.ID), 10) + " is already " + run.Status})
		return
	}
	if err := s.temporal.CancelWorkflow(c.Request.Context(), run.WorkflowID, run.TemporalRunID); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "status": "cancelling"})
}

func (s *Server) listAudit(c *gin.Context) {
	evs, err := s.store.AuditEvents(c.Request.Context(), 200)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"events": evs})
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
	if run.Status != store.RunRunning {
		s.fail(c, &apiError{http.StatusConflict, "conflict", "run " + strconv.FormatUint(uint64(run.ID), 10) + " is " + run.Status + ", not waiting"})
		return
	}
	st, err := s.store.Run(c.Request.Context(), run.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	waiting := false
	for _, step := range st.Steps {
		if step.Name == "firewall ticket" && step.State == store.StepWaiting {
			waiting = true
		}
	}
	if !waiting {
		s.fail(c, &apiError{http.StatusConflict, "conflict", "run is not waiting for a firewall ticket"})
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
