package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/registry"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// catalogTimeout bounds a catalogue read or delete through the central worker.
const catalogTimeout = 30 * time.Second

// imageVersionView is one version as the catalogue shows it.
type imageVersionView struct {
	berth.ImageVersion
	// Image is the reference a compose file or a release names.
	Image string `json:"image"`
	// Namespace is "public" or the tenant's.
	Namespace string `json:"namespace"`
	// PushedBy is who had berth build and push it (ReleaseID); empty when
	// it was pushed from outside berth.
	PushedBy  string `json:"pushedBy,omitempty"`
	ReleaseID uint   `json:"releaseId,omitempty"`
	// UsedBy is where the tenant runs it, or keeps it for a rollback.
	UsedBy []store.ImageUse `json:"usedBy"`
	// InUse: it, or another tag of its repository on the same digest (which
	// a delete would take too), is used by the tenant.
	InUse bool `json:"inUse"`
}

// catalogView is a tenant's image catalogue.
type catalogView struct {
	Registry string             `json:"registry"`
	Versions []imageVersionView `json:"versions"`
	// Cut: the registry held more than berth.MaxCatalogVersions.
	Cut bool `json:"cut,omitempty"`
}

// imageCatalog reads the tenant's namespace and the public one from the
// registry (through the central worker, which holds its credentials) and
// says, from the records, who pushed each version and where the tenant
// uses it. Other tenants' uses of public images are not shown.
func (s *Server) imageCatalog(ctx context.Context, t *store.Tenant) (*catalogView, error) {
	if s.cfg.Registry == "" {
		return nil, &berth.Error{Code: berth.EConflict, Reason: "no_registry", Message: "no platform registry is configured (-registry): there is no catalogue"}
	}
	rctx, cancel := contextWithTimeout(ctx, catalogTimeout)
	defer cancel()
	var res workflows.ImageCatalogResult
	if err := s.readThroughWorker(rctx, workflows.ImageCatalogID(t.Name), workflows.ImageCatalogName,
		workflows.ImageCatalogInput{Namespaces: []string{t.Name, berth.PublicNamespace}}, &res); err != nil {
		return nil, s.registryError(rctx, "read the catalogue", err)
	}
	uses, pushes, err := s.store.ImageUses(ctx, t.ID, s.cfg.Registry+"/")
	if err != nil {
		return nil, err
	}
	usedBy := map[string][]store.ImageUse{}
	for _, u := range uses {
		usedBy[u.Image] = append(usedBy[u.Image], u)
	}
	pushed := map[string]store.ImagePush{}
	for _, p := range pushes {
		pushed[p.Image] = p
	}
	out := &catalogView{Registry: s.cfg.Registry, Versions: make([]imageVersionView, 0, len(res.Versions)), Cut: res.Cut}
	for _, v := range res.Versions {
		ref := s.cfg.Registry + "/" + v.Repository + ":" + v.Tag
		ns, _, _ := strings.Cut(v.Repository, "/")
		view := imageVersionView{ImageVersion: v, Image: ref, Namespace: ns, UsedBy: usedBy[ref]}
		if v.Digest != "" {
			view.UsedBy = append(view.UsedBy, usedBy[s.cfg.Registry+"/"+v.Repository+"@"+v.Digest]...)
		}
		if view.UsedBy == nil {
			view.UsedBy = []store.ImageUse{}
		}
		if p, ok := pushed[ref]; ok {
			view.PushedBy, view.ReleaseID = p.StartedBy, p.ReleaseID
		}
		out.Versions = append(out.Versions, view)
	}
	usedDigests := map[string]bool{}
	for _, v := range out.Versions {
		if len(v.UsedBy) > 0 && v.Digest != "" {
			usedDigests[v.Repository+"@"+v.Digest] = true
		}
	}
	for i, v := range out.Versions {
		out.Versions[i].InUse = len(v.UsedBy) > 0 || usedDigests[v.Repository+"@"+v.Digest]
	}
	sort.SliceStable(out.Versions, func(i, j int) bool {
		a, b := out.Versions[i], out.Versions[j]
		if a.Namespace != b.Namespace {
			return a.Namespace != berth.PublicNamespace // the tenant's own first
		}
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		return a.Tag > b.Tag
	})
	return out, nil
}

// registryError turns a failed catalogue call into what the user can act on.
func (s *Server) registryError(ctx context.Context, what string, err error) error {
	var te *temporal.TimeoutError
	var ae *temporal.ApplicationError
	switch {
	case errors.As(err, &ae) && berth.Code(ae.Type()).Status() < 500:
		return &berth.Error{Code: berth.Code(ae.Type()), Message: ae.Message()}
	case errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START,
		errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return &berth.Error{Code: berth.EUnavailable, Reason: "worker_unavailable", Message: fmt.Sprintf(
			"could not %s: the central worker, which holds the registry's credentials, did not answer within %s; try again", what, catalogTimeout)}
	}
	s.log.Warn("registry call failed", "what", what, "error", err)
	return &berth.Error{Code: berth.EUpstream, Reason: "registry_unavailable", Message: fmt.Sprintf(
		"could not %s: the registry %s did not answer as expected; check that it is up", what, s.cfg.Registry)}
}

// listImages: GET /api/v1/tenants/:tenant/images, the tenant's images and
// the public ones, with versions, digests, sizes, who pushed them and where
// the tenant runs them.
func (s *Server) listImages(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	cat, err := s.imageCatalog(ctx, t)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, cat)
}

type deleteImageRequest struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

// deleteImage: DELETE /api/v1/tenants/:tenant/images with {repository,
// tag}. A version of the tenant's namespace (public ones: platform admins
// only) that no service of any tenant runs or keeps for a rollback is
// deleted from the registry, with every tag of its repository that points
// to the same digest, which must be unused too; else 409, naming the uses.
func (s *Server) deleteImage(c *gin.Context) {
	ctx := c.Request.Context()
	var req deleteImageRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.TenantByName(ctx, c.Param("tenant"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := errors.Join(registry.CheckRepository(req.Repository), registry.CheckTag(req.Tag)); err != nil {
		s.fail(c, &berth.Error{Code: berth.EInvalid, Message: err.Error()})
		return
	}
	ns, _, _ := strings.Cut(req.Repository, "/")
	switch {
	case ns == berth.PublicNamespace && !principalOf(c).has(0, berth.RoleAdmin):
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "public images are the platform's: deleting one needs a platform admin"})
		return
	case ns != berth.PublicNamespace && ns != t.Name:
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("%s is outside the namespaces of tenant %s (%s/… and %s/…)",
			req.Repository, t.Name, t.Name, berth.PublicNamespace)})
		return
	}
	cat, err := s.imageCatalog(ctx, t)
	if err != nil {
		s.fail(c, err)
		return
	}
	var target *imageVersionView
	for i, v := range cat.Versions {
		if v.Repository == req.Repository && v.Tag == req.Tag {
			target = &cat.Versions[i]
		}
	}
	if target == nil || target.Digest == "" {
		s.fail(c, &berth.Error{Code: berth.ENotFound, Message: fmt.Sprintf("%s/%s:%s is not in the registry", s.cfg.Registry, req.Repository, req.Tag)})
		return
	}
	// The registry deletes by digest: every tag of the repository on it goes.
	var refs, tags []string
	for _, v := range cat.Versions {
		if v.Repository == target.Repository && v.Digest == target.Digest {
			refs, tags = append(refs, v.Image), append(tags, v.Tag)
		}
	}
	refs = append(refs, s.cfg.Registry+"/"+target.Repository+"@"+target.Digest)
	// Uses by every tenant count: a public image may run anywhere.
	uses, _, err := s.store.ImageUses(ctx, 0, s.cfg.Registry+"/"+target.Repository)
	if err != nil {
		s.fail(c, err)
		return
	}
	var inUse []string
	for _, u := range uses {
		for _, ref := range refs {
			if u.Image != ref {
				continue
			}
			where := u.Env + "/" + u.App + "/" + u.Service
			if u.TenantID != t.ID {
				where = "a service of another tenant"
			} else {
				where = fmt.Sprintf("%s (%s, %d instance(s))", where, u.How, u.Instances)
			}
			inUse = append(inUse, where)
		}
	}
	if len(inUse) > 0 {
		sort.Strings(inUse)
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "image_in_use", Message: fmt.Sprintf(
			"%s is in use by %s: release another version or delete those first", target.Image, strings.Join(inUse, "; "))})
		return
	}
	rctx, cancel := contextWithTimeout(ctx, catalogTimeout)
	defer cancel()
	if err := s.readThroughWorker(rctx, workflows.DeleteImageID(target.Repository, target.Tag), workflows.DeleteImageName,
		workflows.DeleteImageInput{Repository: target.Repository, Tag: target.Tag, Digest: target.Digest}, nil); err != nil {
		s.fail(c, s.registryError(rctx, "delete the image", err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"deleted": target.Digest, "tags": tags})
}

// imagesData is the catalogue page: the tenants the caller may read, the
// one shown, and its catalogue (or why it could not be read).
type imagesData struct {
	Tenants []store.Tenant
	Tenant  string
	Catalog *catalogView
	Error   string
	// MayDelete: the caller may delete the tenant's own versions (public
	// ones need a platform admin, which Admin says).
	MayDelete, Admin bool
}

// imagesPage: GET /images?tenant=, the image catalogue of one of the
// caller's tenants (the first by default).
func (s *Server) imagesPage(c *gin.Context) {
	ctx := c.Request.Context()
	p := principalOf(c)
	ts, err := s.store.Tenants(ctx)
	if err != nil {
		s.renderError(c, err)
		return
	}
	d := imagesData{Tenants: visibleTenants(ts, p), Admin: p.has(0, berth.RoleAdmin)}
	if len(d.Tenants) == 0 {
		s.render(c, http.StatusOK, "images", "Images", "images", d)
		return
	}
	t := &d.Tenants[0]
	if want := c.Query("tenant"); want != "" {
		t = nil
		for i := range d.Tenants {
			if d.Tenants[i].Name == want {
				t = &d.Tenants[i]
			}
		}
		if t == nil {
			s.renderError(c, &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf("tenant %q is not one you hold a role on", want)})
			return
		}
	}
	d.Tenant, d.MayDelete = t.Name, p.has(t.ID, deployRoles...)
	if d.Catalog, err = s.imageCatalog(ctx, t); err != nil {
		_, _, d.Error = s.classify(c, err)
	}
	s.render(c, http.StatusOK, "images", "Images", "images", d)
}
