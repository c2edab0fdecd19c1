package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/berth-dev/berth/workflows"
)

// reconcileNow: POST /api/v1/reconcile runs a reconciler pass now (the
// schedule runs one every few minutes) and answers with its findings.
// ?grace= (a duration, default 10m) spares leftovers younger than it.
func (s *Server) reconcileNow(c *gin.Context) {
	grace := 10 * time.Minute
	if g := c.Query("grace"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			s.fail(c, badRequest("grace must be a duration between 0s and 720h"))
			return
		}
		grace = d
	}
	// A pass already going is joined rather than doubled.
	opts := client.StartWorkflowOptions{ID: workflows.ReconcileID(), TaskQueue: workflows.CentralTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionTimeout: 30 * time.Minute}
	ctx := c.Request.Context()
	we, err := s.temporal.ExecuteWorkflow(ctx, opts, workflows.ReconcileName, workflows.ReconcileInput{Grace: grace})
	if err != nil {
		s.fail(c, err)
		return
	}
	var res workflows.ReconcileResult
	if err := we.Get(ctx, &res); err != nil {
		s.fail(c, err)
		return
	}
	c.Set("berth.audit", "reconciler pass")
	c.JSON(http.StatusOK, res)
}
