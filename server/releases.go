package server

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/artifacts"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type releaseRequest struct {
	Image            string `json:"image"`
	Version          string `json:"version"`
	BatchSize        int    `json:"batchSize"`
	ProgressDeadline string `json:"progressDeadline"` // Go duration, default 15m
}

// imageRE is a conservative image reference: registry/path:tag or @digest.
var imageRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$`)

// serviceContext loads the service in the path.
func (s *Server) serviceContext(c *gin.Context) (*store.ServiceContext, error) {
	if sc, ok := c.Get(serviceKey); ok {
		return sc.(*store.ServiceContext), nil
	}
	id, err := idParam(c, "service")
	if err != nil {
		return nil, err
	}
	sc, err := s.store.ServiceContextByID(c.Request.Context(), uint(id))
	if err == nil {
		c.Set(serviceKey, sc)
	}
	return sc, err
}

// serviceTarget loads what a scale or a release of the service in the path
// needs: its context, its spec with the image it runs now (the compose file
// holds the first image; releases move the service on), the application's
// other services (the relays between hosts follow all of them), and its
// live instances, oldest first.
func (s *Server) serviceTarget(c *gin.Context) (*store.ServiceContext, *compose.ServiceSpec, []compose.ServiceSpec, []berth.PlannedInstance, error) {
	sc, err := s.serviceContext(c)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return s.serviceTargetOf(c.Request.Context(), sc)
}

// serviceTargetOf is serviceTarget for a service already found.
func (s *Server) serviceTargetOf(ctx context.Context, sc *store.ServiceContext) (*store.ServiceContext, *compose.ServiceSpec, []compose.ServiceSpec, []berth.PlannedInstance, error) {
	tg, err := s.store.ServiceTarget(ctx, sc, s.cfg.Compose)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return sc, tg.Spec, tg.AppServices, tg.Live, nil
}

// createRelease starts a rolling image release of a service, or, for a
// multipart upload, a file release.
func (s *Server) createRelease(c *gin.Context) {
	if isMultipart(c) {
		s.createFileRelease(c)
		return
	}
	var req releaseRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if !imageRE.MatchString(req.Image) || len(req.Image) > 255 {
		s.fail(c, badRequest("image must be an image reference such as registry.local/team/web:1.4.2"))
		return
	}
	if req.Version == "" {
		req.Version = store.ImageTag(req.Image)
	}
	if !versionRE.MatchString(req.Version) {
		s.fail(c, badRequest("version must be 1-128 characters of letters, digits and . _ + -"))
		return
	}
	deadline := 15 * time.Minute
	if req.ProgressDeadline != "" {
		d, err := time.ParseDuration(req.ProgressDeadline)
		if err != nil || d < 10*time.Second || d > 24*time.Hour {
			s.fail(c, badRequest("progressDeadline must be a duration between 10s and 24h"))
			return
		}
		deadline = d
	}
	s.startReleaseOf(c, releaseSpec{kind: berth.ReleaseImage, image: req.Image, version: req.Version, batch: req.BatchSize, deadline: deadline,
		request: replayOf(c, berth.KindRelease, req)})
}

type rollbackRequest struct {
	ReleaseID uint `json:"releaseId"`
}

// rollback returns a service to an earlier release in one request, on the
// fast path: one batch, no automatic rollback of the rollback.
func (s *Server) rollback(c *gin.Context) {
	var req rollbackRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.ReleaseID == 0 {
		s.fail(c, badRequest("releaseId is required"))
		return
	}
	rel, err := s.store.Release(c.Request.Context(), req.ReleaseID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if strconv.FormatUint(uint64(rel.ServiceID), 10) != c.Param("id") {
		s.fail(c, badRequest(fmt.Sprintf("release %d is not a release of service %s", rel.ID, c.Param("id"))))
		return
	}
	if !rel.HasImage() {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("release %d has no image to return to", rel.ID)})
		return
	}
	s.startReleaseOf(c, releaseSpec{kind: berth.ReleaseImage, image: rel.Image, version: rel.Version, deadline: 15 * time.Minute, rollbackOf: rel.ID,
		request: replayOf(c, berth.KindRollback, req)})
}

// releaseSpec is what a release request asks for.
type releaseSpec struct {
	kind           berth.ReleaseKind
	image, version string
	batch          int
	deadline       time.Duration
	rollbackOf     uint
	pkg            *artifacts.Package
	// build: the image is built from pkg on the service's current image.
	build   bool
	command []string
	// grey, when set, makes this a grey release with a canary and steps.
	grey *greyPlan
	// request is the request kept for a retry ("": the release cannot be retried).
	request string
}

func (s *Server) startReleaseOf(c *gin.Context, rs releaseSpec) {
	ctx := c.Request.Context()
	image, version, batch, deadline, rollbackOf := rs.image, rs.version, rs.batch, rs.deadline, rs.rollbackOf
	sc, svc, appServices, live, err := s.serviceTarget(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(live) == 0 {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: "service " + sc.Service.Name + " has no instance to release to"})
		return
	}
	if rs.kind == berth.ReleaseFile {
		image = svc.Image
		// Installing restarts each instance: a stopped one would run again
		// behind its record's back.
		running, err := s.store.ServingPeers(ctx, sc.Service.ID, "")
		if err != nil {
			s.fail(c, err)
			return
		}
		if running < len(live) {
			s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "instance_stopped", Message: fmt.Sprintf(
				"%d of %s's %d instances are stopped, and a file release restarts every instance: start them first (POST /api/v1/instances/{name}/start), or release an image, which replaces them",
				len(live)-running, sc.Service.Name, len(live))})
			return
		}
	}
	if err := berth.CheckImageNamespace(s.cfg.Registry, sc.Tenant.Name, image); err != nil {
		s.fail(c, err)
		return
	}
	if rs.build {
		if image, err = s.buildTarget(sc, version); err != nil {
			s.fail(c, err)
			return
		}
	}
	if rs.grey != nil {
		// Canaries run beside the instances they may replace: they count.
		if err := s.store.CheckQuota(ctx, sc.Environment.ID, berth.Usage{}.Add(svc.Resources(), rs.grey.canaries)); err != nil {
			s.fail(c, err)
			return
		}
	}
	if batch <= 0 {
		batch = 1
	}
	if batch > len(live) {
		batch = len(live)
	}
	base, err := s.store.Baseline(ctx, &sc.Service, actor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	_, sr, err := s.store.Releases(ctx, sc.Service.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	lastGood := base
	if sr != nil && sr.LastGoodID != 0 {
		if lg, err := s.store.Release(ctx, sr.LastGoodID); err == nil {
			lastGood = lg
		}
	}
	tenant, env, app := sc.Tenant.Name, sc.Environment.Name, sc.Application.Name
	wfID := workflows.ReleaseVersionID(tenant, env, app, sc.Service.Name)
	kind, strategy := berth.KindRelease, berth.StrategyRolling
	if rollbackOf != 0 {
		kind = berth.KindRollback
	}
	if rs.grey != nil {
		wfID, kind, strategy = workflows.GreyReleaseID(tenant, env, app, sc.Service.Name), berth.KindGreyRelease, berth.StrategyGrey
	}
	run := &store.Run{Kind: kind, WorkflowID: wfID, TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID,
		Subject: tenant + "/" + env + "/" + app + "/" + sc.Service.Name, StartedBy: actor(c), Request: rs.request, RetryOf: retryOf(c)}
	rel := &store.Release{ServiceID: sc.Service.ID, Kind: rs.kind, Version: version, Image: image,
		Strategy: strategy, BatchSize: batch, StartedBy: actor(c), PreviousID: base.ID, RollbackOf: rollbackOf}
	if rs.pkg != nil {
		rel.PackageSHA256, rel.PackageSize = rs.pkg.SHA256, rs.pkg.Size
	}
	if err := s.beginRelease(ctx, sc, run, rel); err != nil {
		s.fail(c, err)
		return
	}
	target := *svc
	target.Image = image
	input := workflows.ReleaseVersionInput{RunID: run.ID, ReleaseID: rel.ID, ApplicationID: sc.Application.ID,
		EnvironmentID: sc.Environment.ID, ServiceID: sc.Service.ID, Tenant: tenant, Env: env, App: app,
		Service: target, LastGoodImage: lastGood.Image, Instances: live, BatchSize: batch, Fast: rollbackOf != 0,
		ProgressDeadline: deadline, PortMin: s.cfg.PortMin, PortMax: s.cfg.PortMax, HealthTimeout: s.cfg.HealthTimeout,
		DrainTimeout: s.cfg.DrainTimeout, LB: s.lbFor(&sc.Environment), AppServices: appServices}
	if rs.kind == berth.ReleaseFile {
		input.Kind, input.PackageSHA256, input.LastGoodPackage = berth.ReleaseFile, rs.pkg.SHA256, lastGood.PackageSHA256
		input.Command = rs.command
	}
	if rs.build {
		input.Kind, input.PackageSHA256, input.BuildBase = berth.ReleaseBuild, rs.pkg.SHA256, svc.Image
	}
	if sc.Environment.ApproveReleases {
		what := "image " + image
		if rs.pkg != nil {
			what = fmt.Sprintf("package %s (%s, sha256 %s…)", rs.pkg.Name, rs.pkg.Kind, rs.pkg.SHA256[:12])
		}
		input.Approval = envApproval(c, &sc.Environment, fmt.Sprintf("%s %s of %s/%s: %s → %s (%s), %d instances in batches of %d", kind, sc.Service.Name, app, env,
			base.Version, version, what, len(live), batch))
	}
	wfName, wfInput := workflows.ReleaseVersionName, any(input)
	if rs.grey != nil {
		if input.Approval != nil {
			input.Approval.Summary = fmt.Sprintf("grey release of %s/%s: %s → %s (%s), %d canary beside %d instances, %d steps",
				app, sc.Service.Name, base.Version, version, image, rs.grey.canaries, len(live), len(rs.grey.steps))
		}
		wfName = workflows.GreyReleaseName
		wfInput = workflows.GreyReleaseInput{Release: input, Canaries: rs.grey.canaries, Steps: rs.grey.steps,
			StartedBy: actor(c), SeparateDuties: sc.Environment.SeparateDuties, TenantID: sc.Tenant.ID}
	}
	if err := s.startRelease(ctx, run, rel, wfName, wfInput); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "workflowId": wfID, "releaseId": rel.ID,
		"from": base.Version, "to": version, "batchSize": batch, "instances": len(live)})
}

// tagRE is what Docker accepts as a tag.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// buildTarget is the image a build or commit of a service pushes:
// <registry>/<tenant>/<app>-<service>:<version>.
func (s *Server) buildTarget(sc *store.ServiceContext, version string) (string, error) {
	if s.cfg.Registry == "" {
		return "", &berth.Error{Code: berth.ENotImplemented, Reason: "no_registry", Message: "this server has no registry configured (BERTH_REGISTRY): images cannot be built or committed"}
	}
	if !tagRE.MatchString(version) {
		return "", badRequest("version must be a valid image tag: letters, digits and _ . - (no +)")
	}
	ref := fmt.Sprintf("%s/%s/%s-%s:%s", s.cfg.Registry, sc.Tenant.Name, sc.Application.Name, sc.Service.Name, version)
	if !imageRE.MatchString(ref) || len(ref) > 255 {
		return "", badRequest(fmt.Sprintf("%q is not a valid image reference", ref))
	}
	return ref, nil
}

// listReleases is a service's release history with its current and last-good release.
func (s *Server) listReleases(c *gin.Context) {
	ctx := c.Request.Context()
	sc, err := s.serviceContext(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.store.Baseline(ctx, &sc.Service, "admin"); err != nil {
		s.fail(c, err)
		return
	}
	rels, sr, err := s.store.Releases(ctx, sc.Service.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"releases": rels, "currentId": sr.CurrentID, "lastGoodId": sr.LastGoodID})
}

func (s *Server) getRelease(c *gin.Context) {
	id, err := idParam(c, "release")
	if err != nil {
		s.fail(c, err)
		return
	}
	rel, err := s.store.Release(c.Request.Context(), uint(id))
	if err != nil {
		s.fail(c, err)
		return
	}
	outs, err := s.store.ReleaseOutputs(c.Request.Context(), rel.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The release's fields, plus what its post-upload command printed.
	c.JSON(http.StatusOK, struct {
		*store.Release
		Outputs []store.ReleaseOutput `json:"outputs"`
	}{rel, outs})
}
