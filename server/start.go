package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// startRun starts the workflow of a run that is already recorded. If
// Temporal refuses, the run is closed as failed so nothing stays pending.
func (s *Server) startRun(ctx context.Context, run *store.Run, workflowName string, input any) error {
	opts := client.StartWorkflowOptions{
		ID:                       run.WorkflowID,
		TaskQueue:                workflows.CentralTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// No execution timeout: Temporal would terminate the run without its
		// undo path, leaving approvals open and canaries, ports, LB servers
		// and openings behind. Every planned wait (approvals, firewall
		// tickets, grey pauses; at most berth.MaxPlannedWait) has its own
		// deadline inside the workflow, which ends the run the proper way.
		// A task a killed worker held is handed on after this, not the
		// default 10 s, so a run moves again soon after a worker returns
		// (make chaos: median 5.0 s with 5 s here). A live worker takes
		// milliseconds, and the SDK extends a task that waits on local
		// activities (a database restarting) before this runs out.
		WorkflowTaskTimeout: 3 * time.Second,
		Memo:                map[string]any{"runId": run.ID, "startedBy": run.StartedBy},
	}
	we, err := s.temporal.ExecuteWorkflow(ctx, opts, workflowName, input)
	if err != nil {
		// Close the record on a context of its own: the request's may be gone.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		msg := "workflow could not be started: " + err.Error()
		if ferr := s.store.FinishRun(cctx, run.ID, berth.RunFailed, msg); ferr != nil {
			s.log.Error("run left pending", "run", run.ID, "error", ferr)
		}
		if run.ApplicationID != 0 {
			_ = s.store.SetApplicationState(cctx, run.ApplicationID, berth.StateFailed)
		}
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("workflow %s is already running", run.WorkflowID)}
		}
		return &berth.Error{Code: berth.EUnavailable, Message: "the workflow engine did not accept the run; try again"}
	}
	s.metrics.RunStarted(string(run.Kind))
	return s.store.SetRunStarted(ctx, run.ID, we.GetRunID())
}

// releaseIfClosed frees a run whose workflow has closed without recording
// its outcome (terminated by an operator, or timed out), so that no lock
// outlives its workflow. It reports whether the run was released.
func (s *Server) releaseIfClosed(ctx context.Context, run *store.Run) (bool, error) {
	if run.Status != berth.RunPending && run.Status != berth.RunRunning {
		return false, nil
	}
	if run.Status == berth.RunPending && time.Since(run.CreatedAt) < time.Minute {
		return false, nil
	}
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, run.WorkflowID, run.TemporalRunID)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) && run.Status == berth.RunRunning {
		return false, nil
	}
	if err != nil && !errors.As(err, &nf) {
		return false, err
	}
	if err == nil && desc.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	// Failed, lock freed, approvals closed; a deploy's or delete's
	// application marked failed (after a scale or a release it is still live).
	if err := s.store.AbandonRun(ctx, run.ID); err != nil {
		return false, err
	}
	return true, nil
}

// readOptions start a short read-only workflow; concurrent identical reads
// join the running one.
func readOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: workflows.CentralTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionTimeout: time.Minute}
}

// beginRelease records a release-like run (release, rollback, grey
// release, commit) and its release under the application's lock, so no
// other run of the application can start until it ends.
func (s *Server) beginRelease(ctx context.Context, sc *store.ServiceContext, run *store.Run, rel *store.Release) error {
	lock := workflows.AppLockKey(sc.Tenant.Name, sc.Environment.Name, sc.Application.Name)
	return s.withLock(ctx, func() error {
		run.ID, rel.ID = 0, 0
		return s.store.BeginRelease(ctx, sc.Application.ID, run, rel, lock)
	})
}

// startRelease starts the workflow of a run opened by beginRelease; a
// release whose workflow never started is closed as failed, not left running.
func (s *Server) startRelease(ctx context.Context, run *store.Run, rel *store.Release, workflow string, input any) error {
	if err := s.startRun(ctx, run, workflow, input); err != nil {
		_ = s.store.FinishRelease(ctx, rel.ID, berth.ReleaseFailed, "workflow not started")
		return err
	}
	return nil
}

// readThroughWorker runs a short read workflow (one activity on a region's
// worker) and waits for its result: the server itself never talks to
// Docker or a load balancer.
func (s *Server) readThroughWorker(ctx context.Context, id, name string, in, out any) error {
	we, err := s.temporal.ExecuteWorkflow(ctx, readOptions(id), name, in)
	if err != nil {
		return err
	}
	return we.Get(ctx, out)
}

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// lbFor is the platform's load-balancer settings with the environment's own
// firewall mode.
func (s *Server) lbFor(env *store.Environment) berth.LBSettings { return env.LBFor(s.cfg.LB) }

// withLock runs begin, which takes an application's lock; when the lock is
// held by a run whose workflow has closed without recording its outcome
// (terminated by an operator, say), the lock is released and begin runs
// once more, so no lock outlives its workflow.
func (s *Server) withLock(ctx context.Context, begin func() error) error {
	err := begin()
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) {
		return err
	}
	holder, ok := conflict.Existing.(*store.Run)
	if !ok {
		return err
	}
	released, rerr := s.releaseIfClosed(ctx, holder)
	if rerr != nil || !released {
		return err
	}
	return begin()
}
