package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
)

// DeleteImageName is the registered name of DeleteImage.
const DeleteImageName = "DeleteImage"

// DeleteImageInput is a version the API checked no service runs or keeps.
type DeleteImageInput = activities.DeleteImageInput

// DeleteImageID is the workflow id of a version's deletion: two requests
// for the same version share one.
func DeleteImageID(repository, tag string) string { return "delete-image/" + repository + ":" + tag }

// DeleteImage deletes a version from the platform registry, from the
// central worker, which holds the registry's credentials.
func DeleteImage(ctx workflow.Context, in DeleteImageInput) error {
	var c *activities.Catalog
	actx := workflow.WithActivityOptions(ctx, registryOptions)
	return workflow.ExecuteActivity(actx, c.DeleteImage, in).Get(ctx, nil)
}
