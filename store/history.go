package store

import (
	"context"
	"strings"

	"github.com/berth-dev/berth"
)

// ServiceReleasesPage lists a service's releases, newest first, with the total count.
func (s *Store) ServiceReleasesPage(ctx context.Context, serviceID uint, limit, offset int) ([]Release, int64, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	q := s.db.WithContext(ctx).Model(&Release{}).Where("service_id = ?", serviceID)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	rels := []Release{}
	err := q.Order("id desc").Limit(limit).Offset(offset).Find(&rels).Error
	return rels, total, err
}

// ServiceRuns lists the runs that touched a service, newest first, with the
// total count: its application's deploys and deletes, and the runs whose
// subject is the service (scale, release, rollback) or one of its instances
// (commit). sc gives the names the subjects are made of.
func (s *Store) ServiceRuns(ctx context.Context, sc *ServiceContext, limit, offset int) ([]Run, int64, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	app := sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name
	svc := app + "/" + sc.Service.Name
	// Names are [a-z0-9-], so the prefix holds no LIKE wildcard; escape anyway
	// (with '!', which SQLite and MySQL read alike).
	prefix := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(svc) + "/%"
	q := s.db.WithContext(ctx).Model(&Run{}).Where("application_id = ?", sc.Application.ID).
		Where("(subject = ? AND kind IN ?) OR subject = ? OR subject LIKE ? ESCAPE '!'", app, []berth.RunKind{berth.KindDeploy, berth.KindDelete}, svc, prefix)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	runs := []Run{}
	err := q.Omit("request").Order("id desc").Limit(limit).Offset(offset).Find(&runs).Error
	return runs, total, err
}
