package store

import (
	"context"
	"sort"
	"strings"

	"github.com/berth-dev/berth"
)

// ImageUse is one service that runs, or keeps for a rollback, an image of
// the platform registry.
type ImageUse struct {
	// Image is the reference as the service or release names it.
	Image    string `json:"image"`
	TenantID uint   `json:"-"`
	Tenant   string `json:"tenant"`
	Env      string `json:"env"`
	App      string `json:"app"`
	Service  string `json:"service"`
	// How: "runs" (the service's image), or "last good" or "current
	// release" (a release a rollback returns to).
	How string `json:"how"`
	// Instances is how many live instances run the image.
	Instances int `json:"instances"`
}

// ImagePush is who had berth build and push an image: a build release
// (an image release that carries its package) or a commit of an instance.
type ImagePush struct {
	Image     string `json:"image"`
	StartedBy string `json:"startedBy"`
	ReleaseID uint   `json:"releaseId"`
}

// ImageUses lists the services whose image, or whose current or last-good
// release's image, is under prefix (registry/namespace/), for one tenant
// (0: every tenant), services of deleted applications left out. It also
// says who had berth push which of those images.
func (s *Store) ImageUses(ctx context.Context, tenantID uint, prefix string) ([]ImageUse, []ImagePush, error) {
	type row struct {
		ServiceID uint
		Image     string
		TenantID  uint
		Tenant    string
		Env       string
		App       string
		Service   string
	}
	like := escapeLike(prefix) + "%"
	q := s.db.WithContext(ctx).Table("services").
		Select("services.id AS service_id, services.image, tenants.id AS tenant_id, tenants.name AS tenant, environments.name AS env, applications.name AS app, services.name AS service").
		Joins("JOIN applications ON applications.id = services.application_id").
		Joins("JOIN environments ON environments.id = applications.environment_id").
		Joins("JOIN tenants ON tenants.id = environments.tenant_id").
		Where("applications.state <> ? AND services.deleted_at IS NULL", berth.StateDeleted)
	if tenantID != 0 {
		q = q.Where("tenants.id = ?", tenantID)
	}
	var rows []row
	if err := q.Find(&rows).Error; err != nil {
		return nil, nil, err
	}
	var out []ImageUse
	ids := make([]uint, 0, len(rows))
	byID := map[uint]row{}
	for _, r := range rows {
		ids = append(ids, r.ServiceID)
		byID[r.ServiceID] = r
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	// Live instances per service and version.
	type count struct {
		ServiceID uint
		Version   string
		N         int
	}
	var counts []count
	if err := s.db.WithContext(ctx).Model(&Instance{}).Select("service_id, version, COUNT(*) AS n").
		Where("service_id IN ? AND removed_at IS NULL AND version LIKE ? ESCAPE '!'", ids, like).Group("service_id, version").Find(&counts).Error; err != nil {
		return nil, nil, err
	}
	running := map[uint]map[string]int{}
	for _, c := range counts {
		if running[c.ServiceID] == nil {
			running[c.ServiceID] = map[string]int{}
		}
		running[c.ServiceID][c.Version] = c.N
	}
	use := func(r row, image, how string) ImageUse {
		return ImageUse{Image: image, TenantID: r.TenantID, Tenant: r.Tenant, Env: r.Env, App: r.App, Service: r.Service, How: how,
			Instances: running[r.ServiceID][image]}
	}
	// One use per service and image: running it says more than keeping it.
	type key struct {
		service uint
		image   string
	}
	said := map[key]bool{}
	add := func(r row, image, how string) {
		if k := (key{r.ServiceID, image}); !said[k] {
			said[k] = true
			out = append(out, use(r, image, how))
		}
	}
	for _, r := range rows {
		if strings.HasPrefix(r.Image, prefix) {
			add(r, r.Image, "runs")
		}
		versions := make([]string, 0, len(running[r.ServiceID]))
		for v := range running[r.ServiceID] {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		for _, v := range versions {
			add(r, v, "runs")
		}
	}
	// Releases a rollback returns to keep their images.
	var kept []struct {
		ServiceID uint
		Image     string
		Which     string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT sr.service_id, r.image, 'current release' AS which FROM service_releases sr JOIN releases r ON r.id = sr.current_id
		WHERE sr.service_id IN ? AND r.image LIKE ? ESCAPE '!'
		UNION ALL SELECT sr.service_id, r.image, 'last good' AS which FROM service_releases sr JOIN releases r ON r.id = sr.last_good_id
		WHERE sr.service_id IN ? AND r.image LIKE ? ESCAPE '!'`, ids, like, ids, like).Scan(&kept).Error; err != nil {
		return nil, nil, err
	}
	for _, k := range kept {
		add(byID[k.ServiceID], k.Image, k.Which)
	}
	var pushes []ImagePush
	if err := s.db.WithContext(ctx).Model(&Release{}).Select("image, started_by, id AS release_id").
		Where("(package_sha256 <> '' OR strategy = ?) AND service_id IN ? AND image LIKE ? ESCAPE '!'", "commit", ids, like).Order("id").Scan(&pushes).Error; err != nil {
		return nil, nil, err
	}
	return out, pushes, nil
}

// escapeLike escapes LIKE's wildcards with '!', which both MariaDB and
// SQLite take as the ESCAPE character named.
func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}
