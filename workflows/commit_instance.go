package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// CommitInstanceName is the registered name of CommitInstance.
const CommitInstanceName = "CommitInstance"

// CommitInstanceInput commits one instance's container as a new image
// version of its service.
type CommitInstanceInput struct {
	RunID     uint                  `json:"runId"`
	ReleaseID uint                  `json:"releaseId"`
	Instance  berth.PlannedInstance `json:"instance"`
	// Image is the tag to push: <registry>/<tenant>/<app>-<service>:<version>.
	Image   string `json:"image"`
	Comment string `json:"comment"`
}

// CommitInstanceID is the workflow id of an instance's commit.
func CommitInstanceID(instance string) string { return "commit/" + instance }

// CommitInstance commits the instance's container on its host (with what its
// package volume holds), pushes the image to the registry and records the
// release as a candidate, ready to be released like any image.
func CommitInstance(ctx workflow.Context, in CommitInstanceInput) (*activities.BuildImageResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	var d *activities.Docker
	var res activities.BuildImageResult
	err = r.step(ctx, "commit", func() error {
		actx := workflow.WithActivityOptions(ctx, withQueue(imageOptions, in.Instance.Host.Region))
		return onRegion(actx, d.CommitInstance, activities.CommitInstanceInput{Instance: in.Instance,
			Image: in.Image, Comment: in.Comment}).Get(ctx, &res)
	})
	outcome, reason, status := berth.ReleaseCandidate, "committed from "+in.Instance.Name, berth.RunSucceeded
	if err != nil {
		outcome, reason, status = berth.ReleaseFailed, errorMessage(err), berth.RunFailed
		r.status.Error = reason
	} else {
		r.status.Step = "done"
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, storeOptions)
	if ferr := workflow.ExecuteLocalActivity(lctx, r.st.FinishRelease, activities.FinishReleaseInput{
		ReleaseID: in.ReleaseID, Outcome: outcome, Reason: reason}).Get(dctx, nil); ferr != nil {
		workflow.GetLogger(ctx).Error("commit outcome not recorded", "release", in.ReleaseID, "error", ferr)
	}
	fin := activities.FinishInput{Status: status}
	if err != nil {
		fin.Error = reason
	}
	r.finish(dctx, fin)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(reason, "CommitFailed", err)
	}
	return &res, nil
}
