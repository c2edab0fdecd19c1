package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/registry"
)

// RegistryAPI is what the image catalogue reads and deletes through: the
// platform registry's v2 API (registry.Client).
type RegistryAPI interface {
	Repositories(ctx context.Context, namespaces []string) ([]string, error)
	Tags(ctx context.Context, repo string) ([]string, error)
	Manifest(ctx context.Context, repo, ref string) (*registry.Manifest, error)
	Delete(ctx context.Context, repo, digest string) error
}

// Catalog holds the image catalogue's registry calls. They run on the
// central worker, which holds the registry's credentials; the API never
// does.
type Catalog struct {
	Registry RegistryAPI
}

// ListImagesInput names the namespaces to list: a tenant's own and public.
type ListImagesInput struct {
	Namespaces []string `json:"namespaces"`
}

// ListImagesResult is every version in the namespaces, up to
// berth.MaxCatalogVersions; Cut says there were more.
type ListImagesResult struct {
	Versions []berth.ImageVersion `json:"versions"`
	Cut      bool                 `json:"cut,omitempty"`
}

// ListImages reads the repositories of the namespaces, their tags, and each
// tag's digest and size. A tag whose manifest cannot be read is listed with
// the reason, so one broken upload does not hide the rest.
func (c *Catalog) ListImages(ctx context.Context, in ListImagesInput) (*ListImagesResult, error) {
	for _, ns := range in.Namespaces {
		if err := registry.CheckRepository(ns); err != nil {
			return nil, fail(berth.EInvalid, "namespace: %v", err)
		}
	}
	repos, err := c.Registry.Repositories(ctx, in.Namespaces)
	if err != nil {
		return nil, err
	}
	out := &ListImagesResult{Versions: []berth.ImageVersion{}}
	for _, repo := range repos {
		activity.RecordHeartbeat(ctx, repo)
		tags, err := c.Registry.Tags(ctx, repo)
		if err != nil {
			return nil, fmt.Errorf("tags of %s: %w", repo, err)
		}
		for _, tag := range tags {
			if len(out.Versions) == berth.MaxCatalogVersions {
				out.Cut = true
				return out, nil
			}
			v := berth.ImageVersion{Repository: repo, Tag: tag}
			if m, err := c.Registry.Manifest(ctx, repo, tag); err != nil {
				v.Error = err.Error()
			} else {
				v.Digest, v.SizeBytes = m.Digest, m.SizeBytes
			}
			out.Versions = append(out.Versions, v)
		}
	}
	return out, nil
}

// DeleteImageInput is a version to delete: the tag, and the digest the
// caller checked was not in use.
type DeleteImageInput struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
}

// DeleteImage deletes a tag's manifest, if the tag still points to the
// digest that was checked; one that was pushed again meanwhile is a
// conflict, and one already gone is done.
func (c *Catalog) DeleteImage(ctx context.Context, in DeleteImageInput) error {
	m, err := c.Registry.Manifest(ctx, in.Repository, in.Tag)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.Digest != in.Digest {
		return fail(berth.EConflict, "%s:%s was pushed again meanwhile (now %s, not %s); read the catalogue again", in.Repository, in.Tag, m.Digest, in.Digest)
	}
	return c.Registry.Delete(ctx, in.Repository, in.Digest)
}
