package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// Retrying a run makes its request again, as the caller, through the same
// handler that took it the first time: the same checks, the same locks, a
// new run. The request is kept on the run when it starts (Run.Request);
// the new run records which run it retries (Run.RetryOf).

// replayRequest is a run's request as kept for a retry.
type replayRequest struct {
	// Route is the kind of run the request starts: deploy, scale, release,
	// rollback or grey-release ("grey" in requests kept before the kinds
	// were one list).
	Route berth.RunKind `json:"route"`
	// Params are the route's path parameters (tenant and env, or the service id).
	Params map[string]string `json:"params"`
	Body   json.RawMessage   `json:"body"`
}

const retryOfKey = "berth.retryOf"

// retryOf is the run the request retries, or 0 for a first try.
func retryOf(c *gin.Context) uint { return c.GetUint(retryOfKey) }

// replayOf records a request for a later retry.
func replayOf(c *gin.Context, route berth.RunKind, body any) string {
	b, err := json.Marshal(body)
	if err != nil {
		return ""
	}
	ps := map[string]string{}
	for _, p := range c.Params {
		ps[p.Key] = p.Value
	}
	out, err := json.Marshal(replayRequest{Route: route, Params: ps, Body: b})
	if err != nil {
		return ""
	}
	return string(out)
}

// replays are the handlers a kept request goes to again.
var replays = map[berth.RunKind]func(*Server, *gin.Context){
	berth.KindDeploy:      (*Server).deployApplication,
	berth.KindUpdate:      (*Server).updateApplication,
	berth.KindScale:       (*Server).scaleService,
	berth.KindRelease:     (*Server).createRelease,
	berth.KindRollback:    (*Server).rollback,
	berth.KindGreyRelease: (*Server).createGrey,
	berth.KindRestart:     (*Server).restartInstance,
	berth.KindStop:        (*Server).stopInstance,
	berth.KindStart:       (*Server).startInstance,
}

// legacyGreyRoute is how requests kept before the kinds were one list name a
// grey release.
const legacyGreyRoute berth.RunKind = "grey"

// retryable returns a run's kept request, or why the run cannot be retried.
func retryable(run *store.Run) (*replayRequest, error) {
	id := strconv.FormatUint(uint64(run.ID), 10)
	if run.Status != berth.RunFailed && run.Status != berth.RunCancelled {
		return nil, &berth.Error{Code: berth.EConflict, Message: "run " + id + " is " + string(run.Status) + "; only a failed or cancelled run can be retried"}
	}
	if run.Request == "" {
		why := "berth kept no request for it"
		switch run.Kind {
		case berth.KindDelete:
			why = "delete the application again instead"
		case berth.KindGate:
			why = "open a new approval gate instead"
		case berth.KindRelease, berth.KindGreyRelease:
			why = "a file or build release is retried by uploading the package again"
		case berth.KindCommit:
			why = "commit the instance again instead"
		case berth.KindProvisionHost:
			why = "check the host again instead (POST /api/v1/hosts/{host}/check)"
		}
		return nil, &berth.Error{Code: berth.EConflict, Reason: "not_retryable", Message: fmt.Sprintf("run %s (%s) cannot be retried: %s", id, run.Kind, why)}
	}
	var rp replayRequest
	err := json.Unmarshal([]byte(run.Request), &rp)
	if rp.Route == legacyGreyRoute {
		rp.Route = berth.KindGreyRelease
	}
	if err != nil || replays[rp.Route] == nil {
		return nil, &berth.Error{Code: berth.EConflict, Reason: "not_retryable", Message: fmt.Sprintf("run %s (%s) cannot be retried: its kept request is not readable", id, run.Kind)}
	}
	return &rp, nil
}

// retryRoles are the roles that may start a run of this kind again.
func retryRoles(kind berth.RunKind) []berth.Role {
	switch kind {
	case berth.KindRollback:
		return rollbackRoles
	case berth.KindRestart, berth.KindStop, berth.KindStart:
		return operateRoles
	}
	return deployRoles
}

// mayRetry: retrying needs the role that starting the run needs, on its tenant.
func mayRetry(s *Server, c *gin.Context, p *principal) error {
	run, err := s.runParam(c)
	if err != nil {
		return err
	}
	if roles := retryRoles(run.Kind); !p.has(run.TenantID, roles...) {
		return denied(s, c, run.TenantID, fmt.Sprintf("retrying run %d (%s)", run.ID, run.Kind), roles)
	}
	return nil
}

// retryRun: POST /api/v1/runs/:id/retry starts a new run with the request
// of a failed or cancelled one; the answer is the new run's, as for any start.
func (s *Server) retryRun(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	rp, err := retryable(run)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Params = c.Params[:0]
	for k, v := range rp.Params {
		c.Params = append(c.Params, gin.Param{Key: k, Value: v})
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(rp.Body))
	c.Request.ContentLength = int64(len(rp.Body))
	c.Request.Header.Set("Content-Type", "application/json")
	c.Set(retryOfKey, run.ID)
	c.Set("berth.audit", fmt.Sprintf("retry of run %d", run.ID))
	replays[rp.Route](s, c)
}

// retryReason says why the viewer may not retry a run, or "" when they may.
// show is false for runs where a retry makes no sense at all (running, succeeded).
func (s *Server) retryReason(c *gin.Context, run *store.Run, p *principal) (show bool, reason string) {
	if run.Status != berth.RunFailed && run.Status != berth.RunCancelled {
		return false, ""
	}
	if _, err := retryable(run); err != nil {
		_, _, msg := s.classify(c, err)
		return true, msg + "."
	}
	if !p.has(run.TenantID, retryRoles(run.Kind)...) {
		return true, "Retrying needs the role that starting it needs (developer or admin on this tenant); you hold neither."
	}
	return true, ""
}
