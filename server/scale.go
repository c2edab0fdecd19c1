package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

type scaleRequest struct {
	Replicas *int `json:"replicas"`
}

// scaleService starts a ScaleService run. Capacity is checked up front, and
// for a scale-in the instances that will go are chosen (newest first) and
// named in the answer before anything happens.
func (s *Server) scaleService(c *gin.Context) {
	ctx := c.Request.Context()
	var req scaleRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Replicas == nil {
		s.fail(c, badRequest("replicas is required"))
		return
	}
	max := s.cfg.Compose.MaxReplicas
	if max <= 0 {
		max = 100
	}
	to := *req.Replicas
	if to < 0 || to > max {
		s.fail(c, badRequest(fmt.Sprintf("replicas must be between 0 and %d", max)))
		return
	}
	sc, svcSpec, appServices, live, err := s.serviceTarget(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	from := len(live)
	if to == from {
		c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "message": "service already has this many instances"})
		return
	}
	var remove []berth.PlannedInstance
	if to > from {
		need := (to - from) * len(svcSpec.Ports)
		free, err := s.store.FreePorts(ctx, sc.Environment.ID, s.cfg.PortMin, s.cfg.PortMax)
		if err != nil {
			s.fail(c, err)
			return
		}
		total := 0
		for _, n := range free {
			total += n
		}
		if len(free) == 0 || total < need {
			s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "no_capacity", Message: fmt.Sprintf(
				"scaling %s to %d needs %d host ports; the environment's ready hosts have %d free in %d-%d",
				sc.Service.Name, to, need, total, s.cfg.PortMin, s.cfg.PortMax)})
			return
		}
		if err := s.store.CheckQuota(ctx, sc.Environment.ID, berth.Usage{}.Add(svcSpec.Resources(), to-from)); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		remove = live[to:] // live is oldest first: the newest instances go
	}
	tenant, env, app := sc.Tenant.Name, sc.Environment.Name, sc.Application.Name
	wfID := workflows.ScaleServiceID(tenant, env, app, sc.Service.Name)
	run := &store.Run{Kind: berth.KindScale, WorkflowID: wfID, TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID,
		Subject: tenant + "/" + env + "/" + app + "/" + sc.Service.Name, StartedBy: actor(c),
		Request: replayOf(c, berth.KindScale, req), RetryOf: retryOf(c)}
	if err := s.withLock(ctx, func() error {
		run.ID = 0
		return s.store.BeginRun(ctx, sc.Application.ID, run, workflows.AppLockKey(tenant, env, app))
	}); err != nil {
		s.fail(c, err)
		return
	}
	input := workflows.ScaleServiceInput{RunID: run.ID, ApplicationID: sc.Application.ID, EnvironmentID: sc.Environment.ID,
		ServiceID: sc.Service.ID, Tenant: tenant, Env: env, App: app, Service: *svcSpec, From: from, To: to, Remove: remove,
		PortMin: s.cfg.PortMin, PortMax: s.cfg.PortMax, HealthTimeout: s.cfg.HealthTimeout, DrainTimeout: s.cfg.DrainTimeout, LB: s.lbFor(&sc.Environment),
		AppServices: appServices}
	if err := s.startRun(ctx, run, workflows.ScaleServiceName, input); err != nil {
		s.fail(c, err)
		return
	}
	removing := []string{}
	for _, pi := range remove {
		removing = append(removing, pi.Name)
	}
	c.JSON(http.StatusAccepted, gin.H{"runId": run.ID, "url": runURL(run.ID), "workflowId": wfID, "from": from, "to": to, "removing": removing})
}

// getPool shows a service's load-balancer pools, one per region it runs in,
// as berth recorded them and, with ?live=1, as each region's load balancer
// reports them now. pool, backend and live are the first region's and the
// sum of every region's, as one-region clients read them.
func (s *Server) getPool(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := idParam(c, "service")
	if err != nil {
		s.fail(c, err)
		return
	}
	pools, err := s.store.ServicePools(ctx, uint(id))
	if err != nil {
		s.fail(c, err)
		return
	}
	views := poolViews(pools)
	out := gin.H{"pool": pools[0], "backend": views[0].Backend, "pools": views}
	if c.Query("live") == "1" {
		live, down := s.readPools(ctx, views)
		if len(down) == len(views) {
			s.fail(c, &berth.Error{Code: berth.EUpstream, Reason: "lb_unavailable",
				Message: "the load balancer of region " + strings.Join(down, ", ") + " did not answer"})
			return
		}
		out["live"] = live
	}
	c.JSON(http.StatusOK, out)
}

// poolView is a service's pool in one region, with, once read, what that
// region's load balancer reports.
type poolView struct {
	Region    string           `json:"region"`
	Pool      berth.LBPool     `json:"pool"`
	Backend   lb.Backend       `json:"backend"`
	Live      []lb.ServerStats `json:"live,omitempty"`
	LiveError string           `json:"liveError,omitempty"`
}

func poolViews(pools []berth.LBPool) []poolView {
	views := make([]poolView, len(pools))
	for i := range pools {
		views[i] = poolView{Region: pools[i].Region, Pool: pools[i], Backend: lb.BackendOf(&pools[i])}
	}
	return views
}

// readPools reads every region's pool through that region's worker, all at
// once: a region whose worker is down costs its own wait, and its view says
// so, while the others are read. It returns the servers of every region
// that answered and the regions that did not.
func (s *Server) readPools(ctx context.Context, views []poolView) ([]lb.ServerStats, []string) {
	ctx, cancel := contextWithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range views {
		v := &views[i]
		wg.Go(func() {
			var res workflows.PoolStatsResult
			if err := s.readThroughWorker(ctx, workflows.PoolStatsID(v.Region, v.Backend.Name), workflows.PoolStatsName,
				workflows.PoolStatsInput{Region: v.Region, Backend: v.Backend.Name}, &res); err != nil {
				v.LiveError = "the load balancer of region " + v.Region + " did not answer: is its worker running?"
				return
			}
			v.Live = res.Servers
		})
	}
	wg.Wait()
	var live []lb.ServerStats
	var down []string
	for _, v := range views {
		if v.LiveError != "" {
			down = append(down, v.Region)
		}
		live = append(live, v.Live...)
	}
	return live, down
}

func (s *Server) listOpenings(c *gin.Context) {
	state := c.Query("state")
	if _, ok := berth.Parse(berth.OpeningStates, state); !ok && state != "" {
		s.fail(c, badRequest("state must be requested, open or closed"))
		return
	}
	os, err := s.store.Openings(c.Request.Context(), state)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"openings": os})
}

func (s *Server) listCMDB(c *gin.Context) {
	state := berth.SyncState(c.Query("state"))
	if _, ok := berth.Parse(berth.SyncStates, string(state)); !ok && state != "" {
		s.fail(c, badRequest("state must be pending, synced or failed"))
		return
	}
	recs, err := s.store.CMDBRecords(c.Request.Context(), state, nil)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": recs})
}

// syncCMDB pushes every pending or failed item again; two requests at once share one run.
func (s *Server) syncCMDB(c *gin.Context) {
	ctx := c.Request.Context()
	opts := readOptions(workflows.CMDBSyncID)
	we, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.CMDBSyncName)
	if err != nil {
		s.fail(c, err)
		return
	}
	var res berth.SyncResult
	if err := we.Get(ctx, &res); err != nil {
		s.fail(c, &berth.Error{Code: berth.EUpstream, Reason: "cmdb_unavailable", Message: "the CMDB sync did not finish"})
		return
	}
	c.JSON(http.StatusOK, res)
}

// resyncCMDB repairs the drift between berth and the CMDB now and answers
// with the report; a request during a scheduled resync waits for that one.
func (s *Server) resyncCMDB(c *gin.Context) {
	ctx := c.Request.Context()
	opts := readOptions(workflows.CMDBResyncID)
	opts.WorkflowExecutionTimeout = workflows.CMDBResyncTimeout
	we, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.CMDBResyncName)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d berth.CMDBDrift
	if err := we.Get(ctx, &d); err != nil {
		s.fail(c, &berth.Error{Code: berth.EUpstream, Reason: "cmdb_unavailable", Message: "the CMDB resync did not finish: " + errorText(err)})
		return
	}
	c.JSON(http.StatusOK, d)
}
