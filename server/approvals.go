package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// approvalView is an approval with what a person needs to decide it: the
// run it holds up, a name for its buttons, and the quorum in words.
type approvalView struct {
	*store.Approval
	Run         *store.Run `json:"run"`
	Environment string     `json:"environment,omitempty"`
	// Title names the run in words, e.g. "run 12 gate demo/prod/web".
	Title string `json:"title"`
	// QuorumText is e.g. "1 of 2 from approver".
	QuorumText string `json:"quorumText"`
}

func (s *Server) approvalView(ctx context.Context, a *store.Approval) approvalView {
	v := approvalView{Approval: a}
	if a.EnvironmentID != 0 {
		var env store.Environment
		if err := s.store.DB().WithContext(ctx).First(&env, a.EnvironmentID).Error; err == nil {
			v.Environment = env.Name
		}
	}
	v.Title = fmt.Sprintf("run %d", a.RunID)
	if run, err := s.store.Run(ctx, a.RunID); err == nil {
		run.Steps = nil
		v.Run = run
		// "run 12 deploy shop to prod": the subject's last part and the environment.
		v.Title = fmt.Sprintf("run %d %s %s", run.ID, run.Kind, run.Subject)
		if v.Environment != "" {
			parts := strings.Split(run.Subject, "/")
			v.Title = fmt.Sprintf("run %d %s %s to %s", run.ID, run.Kind, parts[len(parts)-1], v.Environment)
		}
	}
	v.QuorumText = fmt.Sprintf("%d of %d from %s", a.Approvals(), a.Quorum, strings.Join(berth.Names(a.RoleList), " or "))
	return v
}

// listApprovals: ?mine=1 is the inbox, the open approvals the caller may
// decide now; otherwise every approval of the caller's tenants, by ?state=.
func (s *Server) listApprovals(c *gin.Context) {
	ctx := c.Request.Context()
	p := principalOf(c)
	f := store.ApprovalFilter{State: c.Query("state")}
	if _, ok := berth.Parse(berth.ApprovalStates, f.State); !ok && f.State != "" {
		s.fail(c, badRequest("state must be pending, escalated, approved, rejected, timed_out or cancelled"))
		return
	}
	switch c.Query("mine") {
	case "1", "true":
		f.DecidableBy = &store.DecidableBy{Name: p.User.Name, Bindings: p.Bindings}
	case "", "0", "false":
		f.TenantIDs = p.tenantIDs()
	default:
		s.fail(c, badRequest("mine must be 1 or 0"))
		return
	}
	as, err := s.store.Approvals(ctx, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]approvalView, 0, len(as))
	for i := range as {
		out = append(out, s.approvalView(ctx, &as[i]))
	}
	c.JSON(http.StatusOK, gin.H{"approvals": out})
}

func (s *Server) approvalParam(c *gin.Context) (*store.Approval, error) {
	id, err := idParam(c, "approval")
	if err != nil {
		return nil, err
	}
	a, err := s.store.Approval(c.Request.Context(), uint(id))
	if err != nil {
		return nil, err
	}
	if !principalOf(c).has(a.TenantID, readRoles...) {
		return nil, &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("approval %d belongs to a tenant you hold no role on", a.ID)}
	}
	return a, nil
}

func (s *Server) getApproval(c *gin.Context) {
	a, err := s.approvalParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.approvalView(c.Request.Context(), a))
}

type decideRequest struct {
	Decision berth.Verdict `json:"decision" form:"decision"`
	Comment  string        `json:"comment" form:"comment"`
}

// decideApproval records the caller's decision. 403: no role, or their own
// run; 409: already decided or timed out; 400: a comment is required.
func (s *Server) decideApproval(c *gin.Context) {
	var req decideRequest
	// A plain form (the page without JavaScript) gets pages back, not JSON.
	form := strings.HasPrefix(c.ContentType(), "application/x-www-form-urlencoded")
	if form {
		req.Decision, req.Comment = berth.Verdict(c.PostForm("decision")), c.PostForm("comment")
	} else if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	a, closed, err := s.decide(c, req)
	if form {
		if err != nil {
			s.renderError(c, err)
			return
		}
		c.Redirect(http.StatusSeeOther, fmt.Sprintf("/runs/%d", a.RunID))
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"approval": s.approvalView(c.Request.Context(), a), "closed": closed})
}

// decide is the one path of a decision, for the API and the UI's form. The
// database decides first; only a decision that closed the approval wakes
// the workflow, so a second click or a racing reject never reaches it.
func (s *Server) decide(c *gin.Context, req decideRequest) (*store.Approval, bool, error) {
	ctx := c.Request.Context()
	a, err := s.approvalParam(c)
	if err != nil {
		return nil, false, err
	}
	p := principalOf(c)
	got, closed, err := s.store.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: p.User.Name,
		Bindings: p.Bindings, Decision: req.Decision, Comment: req.Comment})
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		if ex, ok := conflict.Existing.(*store.Approval); ok && (ex.State == berth.ApprovalApproved || ex.State == berth.ApprovalRejected) {
			// A crash between commit and signal leaves the run waiting until
			// the reconciler's next pass; a later click repairs it at once.
			// The workflow ignores a repeat.
			s.signalDecision(ctx, ex)
		}
		return nil, false, err
	}
	if err != nil {
		return nil, false, err
	}
	c.Set("berth.audit", fmt.Sprintf("approval %d of run %d: %s", got.ID, got.RunID, req.Decision))
	if closed {
		s.signalDecision(ctx, got)
	}
	return got, closed, nil
}

// signalDecision wakes the waiting run. If it fails (Temporal down), the
// decision stands in the database: the reconciler's next pass sends it
// again, and the workflow reads it when its timer fires, so the error is
// logged rather than returned.
func (s *Server) signalDecision(ctx context.Context, a *store.Approval) {
	d := a.Domain().Decision()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.temporal.SignalWorkflow(sctx, a.WorkflowID, "", workflows.ApprovalSignal, d); err != nil {
		s.log.Warn("approval decided but the run was not signalled", "approval", a.ID, "run", a.RunID, "error", err)
	}
}

type gateRequest struct {
	Name       string          `json:"name"`
	Summary    string          `json:"summary"`
	Roles      []berth.Role    `json:"roles"`
	Quorum     int             `json:"quorum"`
	TimeoutSec int             `json:"timeoutSec"`
	OnTimeout  berth.OnTimeout `json:"onTimeout"`
	EscalateTo []berth.Role    `json:"escalateTo"`
}

func (r *gateRequest) validate() error {
	if err := checkName("gate", r.Name); err != nil {
		return err
	}
	if len(r.Summary) > 4000 {
		return badRequest("summary must be at most 4000 characters")
	}
	if len(r.Roles) == 0 {
		r.Roles = []berth.Role{berth.RoleApprover}
	}
	for _, rs := range [][]berth.Role{r.Roles, r.EscalateTo} {
		for _, role := range rs {
			if !berth.IsRole(string(role)) {
				return badRequest(fmt.Sprintf("role %q must be one of %s", role, strings.Join(berth.Names(berth.Roles), ", ")))
			}
		}
	}
	if r.Quorum == 0 {
		r.Quorum = 1
	}
	if r.Quorum < 1 || r.Quorum > 10 {
		return badRequest("quorum must be between 1 and 10")
	}
	if r.TimeoutSec == 0 {
		r.TimeoutSec = 24 * 3600
	}
	if r.TimeoutSec < 1 || r.TimeoutSec > 30*24*3600 {
		return badRequest("timeoutSec must be between 1 second and 30 days")
	}
	switch r.OnTimeout {
	case "":
		r.OnTimeout = berth.OnTimeoutFail
	case berth.OnTimeoutFail, berth.OnTimeoutAbort:
	case berth.OnTimeoutEscalate:
		if len(r.EscalateTo) == 0 {
			return badRequest("onTimeout escalate needs escalateTo: the roles to escalate to")
		}
	default:
		return badRequest("onTimeout must be fail, abort or escalate")
	}
	return nil
}

// startGate starts an ApprovalGate run: a run that waits for people, with
// the environment's approval policy.
func (s *Server) startGate(c *gin.Context) {
	ctx := c.Request.Context()
	var req gateRequest
	if err := bindValid(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	env, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	tenant := env.Tenant.Name
	input, _ := json.Marshal(req)
	wfID := workflows.ApprovalGateID(tenant, env.Name, req.Name)
	run := &store.Run{Kind: berth.KindGate, WorkflowID: wfID, TenantID: env.TenantID, EnvironmentID: env.ID,
		Subject: tenant + "/" + env.Name + "/" + req.Name, StartedBy: actor(c), Input: string(input)}
	if err := s.store.CreateRun(ctx, run, wfID); err != nil {
		s.fail(c, err)
		return
	}
	in := workflows.ApprovalGateInput{RunID: run.ID, Approval: berth.ApprovalRequest{
		Step: "approval", Roles: req.Roles, Quorum: req.Quorum, SeparateDuties: env.SeparateDuties,
		RequireComment: env.RequireComment, StartedBy: run.StartedBy, TenantID: env.TenantID, EnvironmentID: env.ID,
		Timeout: time.Duration(req.TimeoutSec) * time.Second, OnTimeout: req.OnTimeout, EscalateTo: req.EscalateTo,
		Summary: req.Summary}}
	if err := s.startRun(ctx, run, workflows.ApprovalGateName, in); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "run "+strconv.FormatUint(uint64(run.ID), 10))
	c.JSON(http.StatusAccepted, runStarted{RunID: run.ID, URL: runURL(run.ID), WorkflowID: wfID})
}
