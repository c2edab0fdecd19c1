package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type deployRequest struct {
	Name    string `json:"name"`
	Compose string `json:"compose"`
}

// readDeploy accepts JSON {name, compose} or a raw compose body with ?name=.
func (s *Server) readDeploy(c *gin.Context) (*deployRequest, error) {
	var req deployRequest
	if strings.HasPrefix(c.ContentType(), "application/json") {
		if err := bind(c, &req); err != nil {
			return nil, err
		}
	} else {
		body, err := s.readComposeBody(c)
		if err != nil {
			return nil, err
		}
		req.Name, req.Compose = c.Query("name"), body
	}
	if err := s.checkComposeSize(req.Compose); err != nil {
		return nil, err
	}
	if err := checkName("application", req.Name); err != nil {
		return nil, err
	}
	return &req, nil
}

// readComposeBody reads a raw compose body, up to the size limit.
func (s *Server) readComposeBody(c *gin.Context) (string, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, s.cfg.MaxComposeBytes+1))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return "", mb
		}
		return "", badRequest("could not read the compose body")
	}
	return string(body), nil
}

func (s *Server) checkComposeSize(text string) error {
	if int64(len(text)) > s.cfg.MaxComposeBytes {
		return &berth.Error{Code: berth.ETooLarge, Message: "compose file is larger than the limit"}
	}
	return nil
}

// deployApplication validates a compose file and starts its DeployStack run.
// Nothing touches a host until the file has passed validation. The same
// request twice answers with the run the first one started.
func (s *Server) deployApplication(c *gin.Context) {
	ctx := c.Request.Context()
	req, err := s.readDeploy(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	env, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	spec, err := s.validSpec(c, env, req.Name, req.Compose)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.CheckQuota(ctx, env.ID, specUsage(spec)); err != nil {
		s.fail(c, err)
		return
	}
	if !hasReadyHost(env) {
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "no_capacity", Message: "environment " + env.Name + " has no ready authorised host"})
		return
	}
	tenant := env.Tenant.Name
	sum := sha256.Sum256([]byte(req.Compose))
	reqHash := hex.EncodeToString(sum[:])
	wfID := workflows.DeployStackID(tenant, env.Name, req.Name)
	run := &store.Run{Kind: berth.KindDeploy, WorkflowID: wfID, TenantID: env.TenantID, EnvironmentID: env.ID,
		Subject: tenant + "/" + env.Name + "/" + req.Name, StartedBy: actor(c), RequestHash: reqHash,
		Request: replayOf(c, berth.KindDeploy, req), RetryOf: retryOf(c)}
	lock := workflows.AppLockKey(tenant, env.Name, req.Name)
	var app *store.Application
	for attempt := 0; ; attempt++ {
		run.ID = 0
		app, err = s.store.BeginDeploy(ctx, env.ID, req.Name, req.Compose, spec.Hash, run, lock)
		var conflict *store.ConflictError
		if err == nil || !errors.As(err, &conflict) || attempt == 2 {
			break
		}
		existing, _ := conflict.Existing.(*store.Application)
		if existing == nil {
			continue // lost a race to create the same application; look again
		}
		if existing.SpecHash == spec.Hash && existing.State != berth.StateDeleting {
			c.JSON(http.StatusOK, s.existingRun(c, existing.LastRunID))
			return
		}
		prev, rerr := s.store.Run(ctx, existing.LastRunID)
		if rerr != nil {
			break
		}
		if released, rerr := s.releaseIfClosed(ctx, prev); rerr != nil || !released {
			if existing.State == berth.StateRunning {
				err = &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("application %s is running another compose file; "+
					"change it with PUT %s (see the plan first with ?dryRun=true)", req.Name, c.Request.URL.Path+"/"+req.Name)}
			}
			break
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.DeployStackInput{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: env.ID,
		Tenant: tenant, Env: env.Name, App: req.Name, Spec: *spec, PortMin: s.cfg.PortMin, PortMax: s.cfg.PortMax,
		HealthTimeout: s.cfg.HealthTimeout, LB: s.lbFor(env)}
	if what := c.GetString(cloneKey); what != "" && env.ApproveReleases {
		// A clone puts a service, perhaps with another image, into an
		// environment whose releases need approval: it waits like one.
		input.Approval = envApproval(c, env, what)
	}
	if err := s.startRun(ctx, run, workflows.DeployStackName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "run "+strconv.FormatUint(uint64(run.ID), 10))
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "workflowId": wfID,
		"applicationId": app.ID, "notes": notes(spec)})
}

func (s *Server) existingRun(c *gin.Context, runID uint) runStarted {
	rs := runStarted{RunID: runID, URL: runURL(runID), Existing: true}
	if r, err := s.store.Run(c.Request.Context(), runID); err == nil {
		rs.WorkflowID = r.WorkflowID
	}
	return rs
}

// specUsage is what every instance of a compose file takes together.
func specUsage(spec *compose.Spec) berth.Usage {
	var u berth.Usage
	for _, svc := range spec.Services {
		u = u.Add(svc.Resources(), svc.Replicas)
	}
	return u
}

func hasReadyHost(env *store.Environment) bool {
	for _, h := range env.Hosts {
		if h.State == berth.HostReady {
			return true
		}
	}
	return false
}

// notes gathers what validation adjusted, e.g. fixed host ports not honoured.
func notes(spec *compose.Spec) []string {
	out := []string{}
	for _, svc := range spec.Services {
		for _, n := range svc.Notes {
			out = append(out, "service "+svc.Name+": "+n)
		}
	}
	return out
}

func (s *Server) application(c *gin.Context) (*store.Environment, *store.Application, error) {
	env, err := s.environment(c)
	if err != nil {
		return nil, nil, err
	}
	app, err := s.store.ApplicationByName(c.Request.Context(), env.ID, c.Param("app"))
	return env, app, err
}

func (s *Server) listApplications(c *gin.Context) {
	env, err := s.environment(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	as, err := s.store.Applications(c.Request.Context(), env.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"applications": as})
}

// getApplication returns the application with the service view of each service.
func (s *Server) getApplication(c *gin.Context) {
	_, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	svcs, err := s.store.Services(c.Request.Context(), app.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"application": app, "services": svcs})
}

// deleteApplication starts a DeleteStack run.
func (s *Server) deleteApplication(c *gin.Context) {
	ctx := c.Request.Context()
	env, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	tenant := env.Tenant.Name
	wfID := workflows.DeleteStackID(tenant, env.Name, app.Name)
	run := &store.Run{Kind: berth.KindDelete, WorkflowID: wfID, TenantID: env.TenantID, EnvironmentID: env.ID,
		Subject: tenant + "/" + env.Name + "/" + app.Name, StartedBy: actor(c)}
	lock := workflows.AppLockKey(tenant, env.Name, app.Name)
	err = s.store.BeginDelete(ctx, app.ID, run, lock)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) && conflict.Existing == nil {
		if prev, rerr := s.store.Run(ctx, app.LastRunID); rerr == nil {
			if released, _ := s.releaseIfClosed(ctx, prev); released {
				run.ID = 0
				err = s.store.BeginDelete(ctx, app.ID, run, lock)
			}
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.DeleteStackInput{RunID: run.ID, ApplicationID: app.ID, Tenant: tenant, Env: env.Name, App: app.Name,
		PriorState: app.State}
	if env.ApproveReleases {
		// A delete in an environment that approves its changes waits like a
		// release: otherwise delete and deploy again would bypass approval.
		input.Approval = envApproval(c, env, fmt.Sprintf("delete application %s from %s/%s: every instance stops and is removed", app.Name, tenant, env.Name))
	}
	if err := s.startRun(ctx, run, workflows.DeleteStackName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, runStarted{RunID: run.ID, URL: runURL(run.ID), WorkflowID: wfID})
}

func (s *Server) getService(c *gin.Context) {
	id, err := idParam(c, "service")
	if err != nil {
		s.fail(c, err)
		return
	}
	v, err := s.store.ServiceByID(c.Request.Context(), uint(id))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// envApproval is the approval a change in an environment that approves
// releases waits for: one approver, under the environment's policy, for at
// most a day. Releases, deletes and clones ask for the same one.
func envApproval(c *gin.Context, env *store.Environment, summary string) *berth.ApprovalRequest {
	return &berth.ApprovalRequest{Step: "approval", Roles: []berth.Role{berth.RoleApprover}, Quorum: 1,
		SeparateDuties: env.SeparateDuties, RequireComment: env.RequireComment,
		StartedBy: actor(c), TenantID: env.TenantID, EnvironmentID: env.ID, Timeout: 24 * time.Hour,
		OnTimeout: berth.OnTimeoutFail, Summary: summary}
}
