package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// ReleaseVersionName is the registered name of ReleaseVersion.
const ReleaseVersionName = "ReleaseVersion"

// ReleaseVersionInput is a rolling release of one service to a new image.
type ReleaseVersionInput struct {
	RunID         uint   `json:"runId"`
	ReleaseID     uint   `json:"releaseId"`
	ApplicationID uint   `json:"applicationId"`
	EnvironmentID uint   `json:"environmentId"`
	ServiceID     uint   `json:"serviceId"`
	Tenant        string `json:"tenant"`
	Env           string `json:"env"`
	App           string `json:"app"`
	// Service is the service's spec with Image set to the release's image.
	Service compose.ServiceSpec `json:"service"`
	// AppServices are every service of the application, so that the relays
	// between its hosts follow where new instances go.
	AppServices []compose.ServiceSpec `json:"appServices,omitempty"`
	// Kind is "image" (the default) or "file": a file release installs
	// PackageSHA256 into the live instances in place and restarts them, and
	// rolls back to LastGoodPackage.
	//
	// Kind "build" first builds Service.Image on a build host from BuildBase
	// plus the package PackageSHA256 and pushes it, then releases it as an
	// image release.
	Kind            berth.ReleaseKind `json:"kind,omitempty"`
	PackageSHA256   string            `json:"packageSha256,omitempty"`
	LastGoodPackage string            `json:"lastGoodPackage,omitempty"`
	BuildBase       string            `json:"buildBase,omitempty"`
	// Command, when set (file releases), runs in each instance after its
	// package is installed; a non-zero exit fails the batch.
	Command []string `json:"command,omitempty"`
	// LastGoodImage is what a failed release rolls back to.
	LastGoodImage string `json:"lastGoodImage"`
	// Instances are the live instances to replace, oldest first.
	Instances []berth.PlannedInstance `json:"instances"`
	BatchSize int                     `json:"batchSize"`
	// Fast is a rollback to a release that already ran here: one batch, and
	// no automatic rollback of the rollback.
	Fast             bool             `json:"fast"`
	ProgressDeadline time.Duration    `json:"progressDeadline"`
	PortMin          int              `json:"portMin"`
	PortMax          int              `json:"portMax"`
	HealthTimeout    time.Duration    `json:"healthTimeout"`
	DrainTimeout     time.Duration    `json:"drainTimeout"`
	LB               berth.LBSettings `json:"lb"`
	// OldLost: the instances replaced are on a host whose engine stopped
	// answering (self-healing's recovery of it). They are taken out of the
	// load balancer and recorded lost, not drained or removed: no call can
	// reach them. Their containers go once the host answers again.
	OldLost bool `json:"oldLost,omitempty"`
	// Approval, when set, is asked for before anything is touched.
	Approval *berth.ApprovalRequest `json:"approval,omitempty"`

	// waitUp is set by the workflow itself (releaseFixesChange): wait for
	// the load balancer to report instances ready before draining others.
	waitUp bool
}

// releaseFixesChange is the GetVersion change id of the approval-before-
// deadline and partly-removed-batch fixes.
const releaseFixesChange = "release-fixes"

// ReleaseVersionResult lists the instances now serving.
type ReleaseVersionResult struct {
	Instances []string             `json:"instances"`
	Outcome   berth.ReleaseOutcome `json:"outcome"`
}

// ReleaseVersionID is the workflow id of a service's release.
func ReleaseVersionID(tenant, env, app, service string) string {
	return fmt.Sprintf("release/%s/%s/%s/%s", tenant, env, app, service)
}

func (in ReleaseVersionInput) subject() string { return in.Tenant + "/" + in.Env + "/" + in.App }

// ReleaseVersion replaces a service's instances with instances of the new
// image, batch by batch: start the batch's new instances, wait until they are
// healthy, put them behind the load balancer, then drain the old ones, wait
// for their sessions to end and remove them. Capacity never drops and no
// request is dropped. If a batch fails its health gate (or the progress
// deadline passes), that batch is undone and the batches already released
// are replaced again with the last-good image.
func ReleaseVersion(ctx workflow.Context, in ReleaseVersionInput) (*ReleaseVersionResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	batch := in.BatchSize
	if batch <= 0 || in.Fast {
		batch = len(in.Instances)
	}
	if batch == 0 {
		batch = 1
	}
	// Version 1 waits for the approval before the progress deadline starts
	// (time spent with people is not a stalled rollout), and counts a batch
	// whose old instances could not all be removed as released.
	fixes := workflow.GetVersion(ctx, releaseFixesChange, workflow.DefaultVersion, 1)
	in.waitUp = fixes >= 1
	if fixes >= 1 && in.Approval != nil {
		if res, err := approveRelease(ctx, r, in); err != nil {
			return res, err
		}
	}
	// The progress deadline cancels the rollout's context; what follows on a
	// disconnected context (undo, rollback) is not bound by it.
	rctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	deadlineHit := false
	if in.ProgressDeadline > 0 {
		workflow.Go(ctx, func(gctx workflow.Context) {
			if workflow.NewTimer(rctx, in.ProgressDeadline).Get(gctx, nil) == nil {
				deadlineHit = true
				cancel()
			}
		})
	}

	if fixes < 1 && in.Approval != nil {
		if res, err := approveRelease(ctx, r, in); err != nil {
			return res, err
		}
	}
	if in.Kind == berth.ReleaseFile {
		return fileRelease(ctx, rctx, r, in, batch, &deadlineHit, fixes)
	}
	if in.Kind == berth.ReleaseBuild {
		err = r.step(rctx, "build", func() error { return buildImage(rctx, r, in) })
	}
	if err == nil {
		err = r.step(rctx, "prefetch", func() error { return prefetch(rctx, r, in) })
	}
	current := append([]berth.PlannedInstance{}, in.Instances...)
	var released []berth.PlannedInstance // new-image instances of finished batches
	total := (len(in.Instances) + batch - 1) / batch
	for b := 0; err == nil && b*batch < len(in.Instances); b++ {
		old := in.Instances[b*batch : min((b+1)*batch, len(in.Instances))]
		var fresh []berth.PlannedInstance
		err = r.step(rctx, fmt.Sprintf("batch %d/%d", b+1, total), func() error {
			var err error
			fresh, err = replaceBatch(rctx, r, in, in.Service, old, fmt.Sprintf("%d/batch-%d", in.RunID, b+1))
			return err
		})
		// A batch whose new instances serve is released even if removing
		// its old ones failed: a rollback must bring it back too.
		if err == nil || (fixes >= 1 && fresh != nil) {
			released = append(released, fresh...)
			current = append(current[len(old):], fresh...)
		}
	}
	if err == nil {
		names := make([]string, 0, len(current))
		for _, pi := range current {
			names = append(names, pi.Name)
		}
		r.status.Step = "done"
		r.finishRelease(ctx, in, berth.ReleaseSucceeded, "")
		r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded})
		return &ReleaseVersionResult{Instances: names, Outcome: berth.ReleaseSucceeded}, nil
	}

	// The failed batch was undone by replaceBatch; what remains is to bring
	// the released batches back to the last-good image.
	reason, cancelled := stopReason(ctx, in, err, deadlineHit)
	r.status.Error = reason
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	outcome := berth.ReleaseFailed
	if len(released) > 0 && !in.Fast && in.LastGoodImage != "" {
		good := in.Service
		good.Image = in.LastGoodImage
		rbErr := r.step(dctx, "rollback", func() error {
			_, err := replaceBatch(dctx, r, in, good, released, fmt.Sprintf("%d/rollback", in.RunID))
			return err
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			outcome = berth.ReleaseRolledBack
			reason += "; rolled back to " + in.LastGoodImage
		}
	} else if len(released) == 0 {
		outcome = berth.ReleaseRolledBack
		reason += "; no instance was changed"
	}
	return nil, r.endFailedRelease(dctx, in, outcome, reason, cancelled, err)
}

// prefetch puts the image on every host new instances may land on, in
// parallel, before any instance is touched.
func prefetch(ctx workflow.Context, r *run, in ReleaseVersionInput) error {
	var d *activities.Docker
	var hosts []berth.HostRef
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.ReadyHosts, in.EnvironmentID).Get(ctx, &hosts); err != nil {
		return err
	}
	var futures []workflow.Future
	for _, h := range hosts {
		actx := workflow.WithActivityOptions(ctx, withQueue(imageOptions, h.Region))
		futures = append(futures, onRegion(actx, d.EnsureImage, activities.EnsureImageInput{Host: h, Image: in.Service.Image}))
	}
	return waitAll(ctx, futures, nil)
}

// buildImage builds the release's image on the environment's first ready
// host (in its region) and pushes it to the registry, so prefetch pulls it
// on the other hosts.
func buildImage(ctx workflow.Context, r *run, in ReleaseVersionInput) error {
	var d *activities.Docker
	var hosts []berth.HostRef
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.ReadyHosts, in.EnvironmentID).Get(ctx, &hosts); err != nil {
		return err
	}
	if len(hosts) == 0 {
		return temporal.NewNonRetryableApplicationError("the environment has no ready host to build on", string(berth.ENoCapacity), nil)
	}
	actx := workflow.WithActivityOptions(ctx, withQueue(imageOptions, hosts[0].Region))
	return onRegion(actx, d.BuildImage, activities.BuildImageInput{Host: hosts[0], Base: in.BuildBase,
		Image: in.Service.Image, SHA256: in.PackageSHA256}).Get(ctx, nil)
}

func (r *run) finishRelease(ctx workflow.Context, in ReleaseVersionInput, outcome berth.ReleaseOutcome, reason string) {
	if in.ReleaseID == 0 {
		// A drain's move keeps the service's version: there is no release
		// record (no shipped history has ReleaseID 0, so replay is unchanged).
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.FinishRelease, activities.FinishReleaseInput{
		ReleaseID: in.ReleaseID, Outcome: outcome, Reason: reason}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("release outcome not recorded", "release", in.ReleaseID, "error", err)
	}
}

// fileRelease installs a package into the live instances batch by batch:
// drain, copy the package into each instance's package volume, restart,
// wait healthy, back in rotation. A failing batch puts the last-good package
// back on every instance touched so far.
func fileRelease(ctx, rctx workflow.Context, r *run, in ReleaseVersionInput, batch int, deadlineHit *bool, fixes workflow.Version) (*ReleaseVersionResult, error) {
	total := (len(in.Instances) + batch - 1) / batch
	var touched []berth.PlannedInstance
	var err error
	for b := 0; err == nil && b*batch < len(in.Instances); b++ {
		group := in.Instances[b*batch : min((b+1)*batch, len(in.Instances))]
		touched = append(touched, group...)
		err = r.step(rctx, fmt.Sprintf("batch %d/%d", b+1, total), func() error {
			return installBatch(rctx, r, in, group, in.PackageSHA256, in.Command)
		})
	}
	names := make([]string, 0, len(in.Instances))
	for _, pi := range in.Instances {
		names = append(names, pi.Name)
	}
	if err == nil {
		r.status.Step = "done"
		r.finishRelease(ctx, in, berth.ReleaseSucceeded, "")
		r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded})
		return &ReleaseVersionResult{Instances: names, Outcome: berth.ReleaseSucceeded}, nil
	}
	reason, cancelled := stopReason(ctx, in, err, *deadlineHit)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	outcome := berth.ReleaseFailed
	if in.LastGoodPackage != "" && !in.Fast {
		rbErr := r.step(dctx, "rollback", func() error {
			if fixes < 1 {
				return installBatch(dctx, r, in, touched, in.LastGoodPackage, nil)
			}
			return installInBatches(dctx, r, in, touched, in.LastGoodPackage, batch)
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			outcome = berth.ReleaseRolledBack
			reason += "; rolled back to the last-good package"
		}
	} else {
		reason += "; no earlier package to restore: instances that failed stay out of rotation"
	}
	return nil, r.endFailedRelease(dctx, in, outcome, reason, cancelled, err)
}

// stopReason says why a rollout stopped: its progress deadline, a cancel,
// or the failing step's own error; cancelled excludes the deadline's cancel.
func stopReason(ctx workflow.Context, in ReleaseVersionInput, err error, deadlineHit bool) (reason string, cancelled bool) {
	cancelled = isCancel(ctx, err) && !deadlineHit
	switch {
	case deadlineHit:
		return fmt.Sprintf("progress deadline of %s passed", in.ProgressDeadline), cancelled
	case cancelled:
		return "cancelled", cancelled
	}
	return errorMessage(err), cancelled
}

// endFailedRelease records a release that did not succeed and its run
// (cancelled or failed), and returns the workflow's non-retryable error.
func (r *run) endFailedRelease(dctx workflow.Context, in ReleaseVersionInput, outcome berth.ReleaseOutcome, reason string, cancelled bool, cause error) error {
	r.status.Error = reason
	r.finishRelease(dctx, in, outcome, reason)
	status := berth.RunFailed
	if cancelled {
		status = berth.RunCancelled
	}
	r.finish(dctx, activities.FinishInput{Status: status, Error: reason})
	return temporal.NewNonRetryableApplicationError(reason, "ReleaseFailed", cause)
}

// approveRelease waits for the release's approval. A rejection, a timeout
// or a cancel ends the release before any instance is touched.
func approveRelease(ctx workflow.Context, r *run, in ReleaseVersionInput) (*ReleaseVersionResult, error) {
	o, err := awaitApproval(ctx, r, *in.Approval)
	var reason string
	var status berth.RunStatus
	switch {
	case err != nil && (isCancel(ctx, err) || isType(err, berth.ErrApprovalAborted)):
		reason, status = errorMessage(err), berth.RunCancelled
	case err != nil:
		reason, status = errorMessage(err), berth.RunFailed
	case o.State == berth.ApprovalRejected:
		reason, status = o.Rejection(), berth.RunFailed
	default:
		return nil, nil
	}
	reason += "; no instance was changed"
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.status.Error = reason
	r.finishRelease(dctx, in, berth.ReleaseFailed, reason)
	r.finish(dctx, activities.FinishInput{Status: status, Error: reason})
	return &ReleaseVersionResult{Outcome: berth.ReleaseFailed}, temporal.NewNonRetryableApplicationError(reason, berth.ErrApprovalRejected, err)
}
