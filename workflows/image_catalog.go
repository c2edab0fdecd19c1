package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
)

// ImageCatalogName is the registered name of ImageCatalog.
const ImageCatalogName = "ImageCatalog"

// ImageCatalogInput names the namespaces of the platform registry to list.
type ImageCatalogInput struct {
	Namespaces []string `json:"namespaces"`
}

// ImageCatalogResult is what the registry holds in them.
type ImageCatalogResult = activities.ListImagesResult

// ImageCatalogID is the workflow id of one read; reads for the same tenant
// at the same moment share one execution.
func ImageCatalogID(tenant string) string { return "image-catalog/" + tenant }

// ImageCatalog reads the platform registry from the central worker, which
// holds its credentials: the API reaches the registry only through it.
func ImageCatalog(ctx workflow.Context, in ImageCatalogInput) (*ImageCatalogResult, error) {
	var c *activities.Catalog
	actx := workflow.WithActivityOptions(ctx, registryOptions)
	var res ImageCatalogResult
	err := workflow.ExecuteActivity(actx, c.ListImages, activities.ListImagesInput{Namespaces: in.Namespaces}).Get(ctx, &res)
	return &res, err
}
