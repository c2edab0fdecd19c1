package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// instanceActionRequest is the optional body of a restart, stop or start.
type instanceActionRequest struct {
	// Force acts on a service's last serving instance; a release manager's call.
	Force bool `json:"force"`
}

func (s *Server) restartInstance(c *gin.Context) { s.instanceAction(c, berth.KindRestart) }
func (s *Server) stopInstance(c *gin.Context)    { s.instanceAction(c, berth.KindStop) }
func (s *Server) startInstance(c *gin.Context)   { s.instanceAction(c, berth.KindStart) }

// instanceAction starts an InstanceAction run on the instance in the path,
// under its application's lock, so no release or scale moves it meanwhile.
// Taking a service's last serving instance out of rotation is refused
// unless a release manager forces it.
func (s *Server) instanceAction(c *gin.Context, action berth.RunKind) {
	ctx := c.Request.Context()
	var req instanceActionRequest
	if c.Request.ContentLength != 0 {
		if err := bind(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	}
	inst, err := s.store.LiveInstanceByName(ctx, c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	sc, err := s.store.ServiceContextByID(ctx, inst.ServiceID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.CheckInstanceAction(ctx, inst, sc.Service.Name, action); err != nil {
		switch {
		case !errors.Is(err, store.ErrLastInstance) || !req.Force:
			s.fail(c, err)
			return
		case !principalOf(c).has(sc.Tenant.ID, berth.RoleReleaseManager):
			s.fail(c, &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf(
				"forcing a %s of %s, the last running instance of %s, needs role release-manager or admin", action, inst.Name, sc.Service.Name)})
			return
		}
	}
	_, svcSpec, _, live, err := s.serviceTargetOf(ctx, sc)
	if err != nil {
		s.fail(c, err)
		return
	}
	target, err := liveTarget(live, inst.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	tenant, env, app := sc.Tenant.Name, sc.Environment.Name, sc.Application.Name
	run := &store.Run{Kind: action, WorkflowID: workflows.InstanceActionID(inst.Name), TenantID: sc.Tenant.ID,
		EnvironmentID: sc.Environment.ID, Subject: tenant + "/" + env + "/" + app + "/" + sc.Service.Name + "/" + inst.Name,
		StartedBy: actor(c), Request: replayOf(c, action, req), RetryOf: retryOf(c)}
	if err := s.withLock(ctx, func() error {
		run.ID = 0
		return s.store.BeginRun(ctx, sc.Application.ID, run, workflows.AppLockKey(tenant, env, app))
	}); err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.InstanceActionInput{RunID: run.ID, ApplicationID: sc.Application.ID, Tenant: tenant, Env: env, App: app,
		Action: action, Instance: *target, Service: *svcSpec, HealthTimeout: s.cfg.HealthTimeout, DrainTimeout: s.cfg.DrainTimeout,
		LB: s.lbFor(&sc.Environment)}
	if err := s.startRun(ctx, run, workflows.InstanceActionName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "workflowId": run.WorkflowID,
		"instance": inst.Name, "action": action})
}
