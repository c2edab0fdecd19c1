package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type commitRequest struct {
	Version string `json:"version"`
	Comment string `json:"comment"`
}

// commitInstance commits an instance's container (after file-based
// debugging, say) as a new image version of its service, pushed to the
// registry and recorded as a release candidate.
func (s *Server) commitInstance(c *gin.Context) {
	ctx := c.Request.Context()
	var req commitRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if !versionRE.MatchString(req.Version) {
		s.fail(c, badRequest("version must be 1-128 characters of letters, digits and . _ -"))
		return
	}
	if len(req.Comment) > 1024 {
		s.fail(c, badRequest("comment must be at most 1024 bytes"))
		return
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
	image, err := s.buildTarget(sc, req.Version)
	if err != nil {
		s.fail(c, err)
		return
	}
	live, err := s.store.LiveServiceInstances(ctx, sc.Service.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	target, err := liveTarget(live, inst.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	base, err := s.store.Baseline(ctx, &sc.Service, actor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	tenant, env, app := sc.Tenant.Name, sc.Environment.Name, sc.Application.Name
	run := &store.Run{Kind: berth.KindCommit, WorkflowID: workflows.CommitInstanceID(inst.Name), TenantID: sc.Tenant.ID,
		EnvironmentID: sc.Environment.ID, Subject: tenant + "/" + env + "/" + app + "/" + sc.Service.Name + "/" + inst.Name,
		StartedBy: actor(c)}
	rel := &store.Release{ServiceID: sc.Service.ID, Kind: berth.ReleaseImage, Version: req.Version, Image: image,
		Strategy: "commit", StartedBy: actor(c), PreviousID: base.ID}
	// Under the application's lock: no release replaces the instance mid-commit.
	if err := s.beginRelease(ctx, sc, run, rel); err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.CommitInstanceInput{RunID: run.ID, ReleaseID: rel.ID, Instance: *target, Image: image, Comment: req.Comment}
	if err := s.startRelease(ctx, run, rel, workflows.CommitInstanceName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "workflowId": run.WorkflowID,
		"releaseId": rel.ID, "image": image, "instance": inst.Name})
}

// liveTarget finds an instance among its service's live ones, as a plan
// names it.
func liveTarget(live []berth.PlannedInstance, name string) (*berth.PlannedInstance, error) {
	for i := range live {
		if live[i].Name == name {
			return &live[i], nil
		}
	}
	return nil, &berth.Error{Code: berth.EConflict, Message: "instance " + name + " is not live"}
}

func instanceParam(s *Server, c *gin.Context) (uint, error) {
	inst, err := s.store.LiveInstanceByName(c.Request.Context(), c.Param("name"))
	if err != nil {
		return 0, err
	}
	sc, err := s.store.ServiceContextByID(c.Request.Context(), inst.ServiceID)
	if err != nil {
		return 0, err
	}
	return sc.Tenant.ID, nil
}
