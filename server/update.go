package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/compose/textdiff"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type updateRequest struct {
	Compose   string `json:"compose"`
	BatchSize int    `json:"batchSize,omitempty"`
}

type redeployRequest struct {
	Version   int `json:"version"`
	BatchSize int `json:"batchSize,omitempty"`
}

// maxSummaryDiff bounds the diff an approval carries; the version's page
// has the whole of it.
const maxSummaryDiff = 16 << 10

// updateApplication: PUT …/applications/:app with a new compose file (JSON
// {compose, batchSize} or the raw file) plans the change service by service
// and starts an UpdateApplication run; ?dryRun=true answers with the plan
// alone.
func (s *Server) updateApplication(c *gin.Context) {
	var req updateRequest
	if strings.HasPrefix(c.ContentType(), "application/json") {
		if err := bind(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		body, err := s.readComposeBody(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		req.Compose = body
		if b := c.Query("batchSize"); b != "" {
			if req.BatchSize, err = strconv.Atoi(b); err != nil {
				s.fail(c, badRequest("batchSize must be a number"))
				return
			}
		}
	}
	if err := s.checkComposeSize(req.Compose); err != nil {
		s.fail(c, err)
		return
	}
	s.startUpdate(c, req)
}

// redeployVersion: POST …/applications/:app/versions {version} moves the
// application back (or forward) to one of its versions, as an update.
func (s *Server) redeployVersion(c *gin.Context) {
	var req redeployRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Version < 1 {
		s.fail(c, badRequest("version must be a positive number"))
		return
	}
	_, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v, err := s.store.AppVersion(c.Request.Context(), app.ID, req.Version)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.startUpdate(c, updateRequest{Compose: v.Compose, BatchSize: req.BatchSize})
}

// updatePlan is the answer to an update: what changes, service by service,
// and the file's diff against the running version.
type updatePlan struct {
	RunID       uint                    `json:"runId,omitempty"`
	URL         string                  `json:"url,omitempty"`
	WorkflowID  string                  `json:"workflowId,omitempty"`
	DryRun      bool                    `json:"dryRun"`
	FromVersion int                     `json:"fromVersion"`
	Version     int                     `json:"version,omitempty"`
	BatchSize   int                     `json:"batchSize"`
	Changes     []compose.ServiceChange `json:"changes"`
	Diff        string                  `json:"diff"`
	Message     string                  `json:"message,omitempty"`
}

func (s *Server) startUpdate(c *gin.Context, req updateRequest) {
	ctx := c.Request.Context()
	env, app, err := s.application(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if app.State != berth.StateRunning {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("application %s is %s; only a running application can be updated (deploy it instead)", app.Name, app.State)})
		return
	}
	next, err := s.validSpec(c, env, app.Name, req.Compose)
	if err != nil {
		s.fail(c, err)
		return
	}
	updates, err := s.planUpdate(c, env, app, next)
	if err != nil {
		s.fail(c, err)
		return
	}
	from, err := s.store.VersionOf(ctx, app.ID, app.Compose)
	if err != nil {
		s.fail(c, err)
		return
	}
	batch := req.BatchSize
	if batch <= 0 {
		batch = 1
	}
	plan := updatePlan{DryRun: c.Query("dryRun") == "true", FromVersion: from, BatchSize: batch,
		Changes: make([]compose.ServiceChange, len(updates)),
		Diff:    textdiff.Unified(fmt.Sprintf("version %d", from), "new", app.Compose, req.Compose)}
	changed := false
	for i, u := range updates {
		plan.Changes[i] = u.ServiceChange
		changed = changed || u.Changed()
	}
	if !changed {
		plan.Message = "nothing to change: every service already runs as the file says"
		c.JSON(http.StatusOK, plan)
		return
	}
	if plan.DryRun {
		c.JSON(http.StatusOK, plan)
		return
	}
	if err := s.store.CheckQuota(ctx, env.ID, growth(updates)); err != nil {
		s.fail(c, err)
		return
	}
	tenant := env.Tenant.Name
	wfID := workflows.UpdateApplicationID(tenant, env.Name, app.Name)
	run := &store.Run{Kind: berth.KindUpdate, WorkflowID: wfID, TenantID: env.TenantID, EnvironmentID: env.ID,
		Subject: tenant + "/" + env.Name + "/" + app.Name, StartedBy: actor(c),
		Request: replayOf(c, berth.KindUpdate, req), RetryOf: retryOf(c)}
	rels, err := s.updateReleases(c, app.ID, updates, batch)
	if err != nil {
		s.fail(c, err)
		return
	}
	lock := workflows.AppLockKey(tenant, env.Name, app.Name)
	err = s.withLock(ctx, func() error {
		run.ID = 0
		for i := range rels {
			rels[i].ID = 0
		}
		plan.Version, err = s.store.BeginUpdate(ctx, app.ID, req.Compose, next.Hash, run, lock, rels)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.UpdateApplicationInput{RunID: run.ID, ApplicationID: app.ID, EnvironmentID: env.ID,
		Tenant: tenant, Env: env.Name, App: app.Name, Version: plan.Version, FromVersion: from, Changes: updates,
		Services: next.Services, BatchSize: batch, PortMin: s.cfg.PortMin, PortMax: s.cfg.PortMax,
		HealthTimeout: s.cfg.HealthTimeout, DrainTimeout: s.cfg.DrainTimeout, LB: s.lbFor(env)}
	if env.ApproveReleases {
		input.Approval = envApproval(c, env, updateSummary(tenant, env.Name, app.Name, plan))
	}
	if err := s.startRun(ctx, run, workflows.UpdateApplicationName, input); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", fmt.Sprintf("run %d: version %d → %d", run.ID, from, plan.Version))
	plan.RunID, plan.URL, plan.WorkflowID = run.ID, runURL(run.ID), wfID
	c.JSON(http.StatusAccepted, plan)
}

// updateReleases are the image releases an update makes: one per kept
// service whose image changes, so the service's release history (and its
// last-good image, which a later rollback returns to) tells of it.
func (s *Server) updateReleases(c *gin.Context, appID uint, updates []workflows.ServiceUpdate, batch int) ([]store.Release, error) {
	var rels []store.Release
	for _, u := range updates {
		if (u.Kind != compose.ChangeImage && u.Kind != compose.ChangeSpec) || u.FromImage == u.ToImage {
			continue
		}
		svc, err := s.store.ServiceNamed(c.Request.Context(), appID, u.Service)
		if err != nil {
			return nil, err
		}
		base, err := s.store.Baseline(c.Request.Context(), svc, actor(c))
		if err != nil {
			return nil, err
		}
		rels = append(rels, store.Release{ServiceID: svc.ID, Kind: berth.ReleaseImage, Version: store.ImageTag(u.ToImage),
			Image: u.ToImage, Strategy: berth.StrategyRolling, BatchSize: batch, StartedBy: actor(c), PreviousID: base.ID})
	}
	return rels, nil
}

// validSpec parses a compose file for an environment with the same checks
// as a deploy: images in the tenant's namespace, instance names, limits
// within the environment's maximums, and stored secrets.
func (s *Server) validSpec(c *gin.Context, env *store.Environment, name, text string) (*compose.Spec, error) {
	spec, err := compose.Parse(c.Request.Context(), name, []byte(text), s.cfg.Compose.ScopedTo(env.Tenant.Name, env.Name))
	if err != nil {
		return nil, err
	}
	services := make([]string, len(spec.Services))
	for i, svc := range spec.Services {
		services[i] = svc.Name
		if err := berth.CheckImageNamespace(s.cfg.Registry, env.Tenant.Name, svc.Image); err != nil {
			return nil, err
		}
	}
	if err := berth.CheckInstanceNames(env.Tenant.Name, env.Name, name, services); err != nil {
		return nil, err
	}
	if err := compose.ApplyLimits(spec, env.Limits); err != nil {
		return nil, err
	}
	if err := s.checkSecrets(c, env, spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// planUpdate compares what runs (the current file, with the images
// releases moved services to and the counts scales set) with next, and
// gathers what each change needs.
func (s *Server) planUpdate(c *gin.Context, env *store.Environment, app *store.Application, next *compose.Spec) ([]workflows.ServiceUpdate, error) {
	ctx := c.Request.Context()
	prev, err := compose.Parse(ctx, app.Name, []byte(app.Compose), s.cfg.Compose.ScopedTo(env.Tenant.Name, env.Name))
	if err != nil {
		return nil, err
	}
	// The running containers got the limits of their day; today's maximums
	// only bound the new file.
	_ = compose.ApplyLimits(prev, env.Limits)
	views, err := s.store.Services(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	live := &compose.Spec{Project: prev.Project}
	ids := map[string]uint{}
	insts := map[string][]berth.PlannedInstance{}
	for _, svc := range prev.Services {
		for _, v := range views {
			if v.Name != svc.Name {
				continue
			}
			svc.Image, svc.Replicas = v.Image, v.Replicas
			live.Services = append(live.Services, svc)
			ids[svc.Name] = v.ID
			if insts[svc.Name], err = s.store.LiveServiceInstances(ctx, v.ID); err != nil {
				return nil, err
			}
		}
	}
	compose.KeepLive(prev, live, next)
	changes := compose.Diff(live, next)
	out := make([]workflows.ServiceUpdate, len(changes))
	for i, ch := range changes {
		out[i] = workflows.ServiceUpdate{ServiceChange: ch, ServiceID: ids[ch.Service], From: live.Service(ch.Service),
			To: next.Service(ch.Service), Instances: insts[ch.Service]}
	}
	return out, nil
}

// updateSummary is what the approver reads: each service's change, then
// the file's diff.
func updateSummary(tenant, env, app string, p updatePlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "update %s in %s/%s: version %d → %d, batches of %d\n", app, tenant, env, p.FromVersion, p.Version, p.BatchSize)
	for _, ch := range p.Changes {
		if !ch.Changed() {
			continue
		}
		fmt.Fprintf(&b, "  %s: %s", ch.Service, ch.Kind)
		switch ch.Kind {
		case compose.ChangeSpec:
			fmt.Fprintf(&b, " (%s), %d instances replaced", strings.Join(ch.Fields, ", "), min(ch.FromReplicas, ch.ToReplicas))
		case compose.ChangeImage:
			fmt.Fprintf(&b, " %s → %s", ch.FromImage, ch.ToImage)
		case compose.ChangeAdd:
			fmt.Fprintf(&b, " %d × %s", ch.ToReplicas, ch.ToImage)
		case compose.ChangeRemove:
			fmt.Fprintf(&b, " %d instances stop", ch.FromReplicas)
		}
		if ch.Kind != compose.ChangeAdd && ch.Kind != compose.ChangeRemove && ch.FromReplicas != ch.ToReplicas {
			fmt.Fprintf(&b, ", replicas %d → %d", ch.FromReplicas, ch.ToReplicas)
		}
		b.WriteString("\n")
	}
	diff := p.Diff
	if len(diff) > maxSummaryDiff {
		diff = diff[:maxSummaryDiff] + "\n… (the whole diff is on the version's page)\n"
	}
	b.WriteString("\n")
	b.WriteString(diff)
	return b.String()
}

// growth is what an update takes beyond what runs now: more instances,
// and more memory or CPUs for the ones it replaces.
func growth(updates []workflows.ServiceUpdate) berth.Usage {
	var before, after berth.Usage
	for _, u := range updates {
		if u.From != nil {
			before = before.Add(u.From.Resources(), u.FromReplicas)
		}
		if u.To != nil {
			after = after.Add(u.To.Resources(), u.ToReplicas)
		}
	}
	return berth.Usage{Instances: max(0, after.Instances-before.Instances), Resources: berth.Resources{
		MemoryBytes: max(0, after.MemoryBytes-before.MemoryBytes), NanoCPUs: max(0, after.NanoCPUs-before.NanoCPUs)}}
}
