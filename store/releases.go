package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Release is one version of a service: what it is, how it was rolled out,
// by whom, and how that ended. Every release is kept.
type Release struct {
	ID            uint                 `gorm:"primaryKey" json:"id"`
	ServiceID     uint                 `gorm:"index" json:"serviceId"`
	Kind          berth.ReleaseKind    `gorm:"size:8" json:"kind"`
	Version       string               `gorm:"size:128" json:"version"`
	Image         string               `gorm:"size:255" json:"image,omitempty"`
	PackageSHA256 string               `gorm:"size:64" json:"packageSha256,omitempty"`
	PackageSize   int64                `json:"packageSize,omitempty"`
	Strategy      berth.Strategy       `gorm:"size:16" json:"strategy"`
	BatchSize     int                  `json:"batchSize"`
	StartedBy     string               `gorm:"size:64" json:"startedBy"`
	RunID         uint                 `json:"runId,omitempty"`
	PreviousID    uint                 `json:"previousId,omitempty"` // the release it replaced
	RollbackOf    uint                 `json:"rollbackOf,omitempty"` // set when this release returns to an earlier one
	Outcome       berth.ReleaseOutcome `gorm:"size:16;index" json:"outcome"`
	Reason        string               `gorm:"type:text" json:"reason,omitempty"`
	CreatedAt     time.Time            `json:"createdAt"`
	FinishedAt    *time.Time           `json:"finishedAt,omitempty"`
}

// HasImage says whether a rollback can return to this release: only a
// release that ran an image of its own can (a file release changed files
// inside the service's image).
func (r *Release) HasImage() bool {
	return r.Kind == berth.ReleaseImage && r.Image != ""
}

// ServiceReleases says which release a service runs and which last went well.
type ServiceReleases struct {
	ServiceID      uint `gorm:"primaryKey" json:"serviceId"`
	CurrentID      uint `json:"currentId"`
	LastGoodID     uint `json:"lastGoodId"`
	UpdatedAtMilli int64
}

// Baseline returns the service's current release, recording the image it
// was deployed with as release 1 the first time it is asked.
func (s *Store) Baseline(ctx context.Context, svc *Service, by string) (*Release, error) {
	rel, err := s.baseline(ctx, svc, by)
	if isDuplicate(err) {
		// Another request recorded the baseline first; read theirs.
		rel, err = s.baseline(ctx, svc, by)
	}
	return rel, err
}

func (s *Store) baseline(ctx context.Context, svc *Service, by string) (*Release, error) {
	var out Release
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var sr ServiceReleases
		err := tx.First(&sr, svc.ID).Error
		if err == nil {
			return tx.First(&out, sr.CurrentID).Error
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		t := now()
		out = Release{ServiceID: svc.ID, Kind: berth.ReleaseImage, Version: imageTag(svc.Image), Image: svc.Image,
			Strategy: "deploy", StartedBy: by, Outcome: berth.ReleaseSucceeded, Reason: "as deployed", FinishedAt: &t}
		if err := tx.Create(&out).Error; err != nil {
			return err
		}
		return tx.Create(&ServiceReleases{ServiceID: svc.ID, CurrentID: out.ID, LastGoodID: out.ID}).Error
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func imageTag(ref string) string {
	for i := len(ref) - 1; i >= 0; i-- {
		switch ref[i] {
		case ':':
			return ref[i+1:]
		case '/':
			return "latest"
		}
	}
	return "latest"
}

// ImageTag is the tag of an image reference ("latest" when it has none).
func ImageTag(ref string) string { return imageTag(ref) }

// BeginRelease opens a run and its release record for a live service, under
// the application's lock: one release (or deploy, scale) at a time. A
// release that carries a package is checked against the package quotas in
// the same transaction, under the tenant's row lock: uploads to two
// applications of one tenant take turns, so both cannot fit into the last
// free room that each read before its upload. Read committed, so a release
// that waited for the lock counts the package of the one it waited for.
func (s *Store) BeginRelease(ctx context.Context, appID uint, run *Run, rel *Release, activeKey string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if rel.PackageSHA256 != "" {
			if err := checkPackageRoom(tx, appID, rel); err != nil {
				return err
			}
		}
		if err := beginRunTx(tx, appID, run, activeKey); err != nil {
			return err
		}
		rel.RunID, rel.Outcome = run.ID, berth.ReleaseRunning
		return tx.Create(rel).Error
	}, s.readCommitted())
	return s.nameLockHolder(ctx, err, activeKey)
}

// checkPackageRoom refuses a release whose package would take its tenant
// or environment past a package quota, counting each kept package once.
func checkPackageRoom(tx *gorm.DB, appID uint, rel *Release) error {
	var env Environment
	if err := tx.Joins("JOIN applications ON applications.environment_id = environments.id").
		Where("applications.id = ?", appID).First(&env).Error; err != nil {
		return notFound(err, fmt.Sprintf("application %d", appID))
	}
	var tenant Tenant
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&tenant, env.TenantID).Error; err != nil {
		return err
	}
	if tenant.Quota.MaxPackageBytes == 0 && env.Quota.MaxPackageBytes == 0 {
		return nil
	}
	rows, err := tenantPackages(tx, tenant.ID)
	if err != nil {
		return err
	}
	rows = append(rows, keptPackage{SHA: rel.PackageSHA256, Size: rel.PackageSize, EnvID: env.ID})
	tenantBytes, envBytes := packageBytes(rows, env.ID)
	for _, q := range packageScopes(&tenant, &env, tenantBytes, envBytes) {
		if q.quota.MaxPackageBytes > 0 && q.used > q.quota.MaxPackageBytes {
			return &berth.Error{Code: berth.ETooLarge, Reason: "package_quota",
				Message: fmt.Sprintf("the package does not fit: %s's package quota would hold %s of %s with it; a later release frees the packages of releases before the last good one",
					q.what, berth.BytesText(q.used), berth.BytesText(q.quota.MaxPackageBytes))}
		}
	}
	return nil
}

// FinishRelease records a release's outcome and, when it succeeded, makes it
// the service's current and last-good release; a failed or rolled-back
// release leaves the last-good release where it was.
func (s *Store) FinishRelease(ctx context.Context, id uint, outcome berth.ReleaseOutcome, reason string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rel Release
		if err := tx.First(&rel, id).Error; err != nil {
			return notFound(err, fmt.Sprintf("release %d", id))
		}
		return finishReleaseTx(tx, &rel, outcome, reason)
	})
}

func finishReleaseTx(tx *gorm.DB, rel *Release, outcome berth.ReleaseOutcome, reason string) error {
	if rel.FinishedAt != nil {
		return nil
	}
	t := now()
	if err := tx.Model(rel).Updates(map[string]any{"outcome": outcome, "reason": reason, "finished_at": &t}).Error; err != nil {
		return err
	}
	if outcome != berth.ReleaseSucceeded {
		return nil
	}
	if err := tx.Model(&Service{}).Where("id = ?", rel.ServiceID).Update("image", rel.Image).Error; err != nil {
		return err
	}
	return tx.Save(&ServiceReleases{ServiceID: rel.ServiceID, CurrentID: rel.ID, LastGoodID: rel.ID, UpdatedAtMilli: t.UnixMilli()}).Error
}

// finishRunReleasesTx closes the releases a run opened and has not closed
// itself (an update's image changes; a release whose run was ended from
// outside) with the run's outcome.
func finishRunReleasesTx(tx *gorm.DB, runID uint, status berth.RunStatus, errMsg string) error {
	var open []Release
	if err := tx.Where("run_id = ? AND finished_at IS NULL", runID).Find(&open).Error; err != nil {
		return err
	}
	outcome := berth.ReleaseSucceeded
	if status != berth.RunSucceeded {
		outcome = berth.ReleaseFailed
	}
	for i := range open {
		if err := finishReleaseTx(tx, &open[i], outcome, errMsg); err != nil {
			return err
		}
	}
	return nil
}

// Releases lists a service's releases, newest first, with its current and last-good ids.
func (s *Store) Releases(ctx context.Context, serviceID uint) ([]Release, *ServiceReleases, error) {
	var rels []Release
	if err := s.db.WithContext(ctx).Where("service_id = ?", serviceID).Order("id desc").Find(&rels).Error; err != nil {
		return nil, nil, err
	}
	var sr ServiceReleases
	if err := s.db.WithContext(ctx).First(&sr, serviceID).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, err
	}
	return rels, &sr, nil
}

// Release returns one release.
func (s *Store) Release(ctx context.Context, id uint) (*Release, error) {
	var r Release
	if err := s.db.WithContext(ctx).First(&r, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("release %d", id))
	}
	return &r, nil
}

// ReadyHosts lists an environment's ready authorised hosts.
func (s *Store) ReadyHosts(ctx context.Context, envID uint) ([]berth.HostRef, error) {
	var env Environment
	if err := s.db.WithContext(ctx).Preload("Hosts", func(db *gorm.DB) *gorm.DB { return db.Order("name") }).First(&env, envID).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("environment %d", envID))
	}
	out := []berth.HostRef{}
	for _, h := range env.Hosts {
		if h.State == berth.HostReady {
			out = append(out, h.Ref())
		}
	}
	return out, nil
}

// LiveInstanceByName returns a live instance by name with its service.
func (s *Store) LiveInstanceByName(ctx context.Context, name string) (*Instance, error) {
	var in Instance
	if err := s.db.WithContext(ctx).Where("name = ? AND removed_at IS NULL", name).First(&in).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("instance %s", name))
	}
	return &in, nil
}

// ReleaseOutput is the record of berth.ReleaseOutput: what a release's post-upload command printed in one
// instance (stdout and stderr interleaved, at most 64 KiB) and its exit code.
type ReleaseOutput struct {
	ID        uint      `gorm:"primaryKey" json:"-"`
	ReleaseID uint      `gorm:"uniqueIndex:idx_release_output" json:"releaseId"`
	Instance  string    `gorm:"size:191;uniqueIndex:idx_release_output" json:"instance"`
	ExitCode  int       `json:"exitCode"`
	Output    string    `gorm:"type:mediumtext" json:"output"`
	Truncated bool      `json:"truncated,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// RecordReleaseOutputs keeps command outputs; recording an instance's output
// again replaces it, so a retried batch leaves one row per instance.
func (s *Store) RecordReleaseOutputs(ctx context.Context, outs []berth.ReleaseOutput) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, d := range outs {
			if err := tx.Where("release_id = ? AND instance = ?", d.ReleaseID, d.Instance).Delete(&ReleaseOutput{}).Error; err != nil {
				return err
			}
			o := ReleaseOutput{ReleaseID: d.ReleaseID, Instance: d.Instance, ExitCode: d.ExitCode, Output: d.Output,
				Truncated: d.Truncated, CreatedAt: d.CreatedAt}
			if err := tx.Create(&o).Error; err != nil {

				return err
			}
		}
		return nil
	})
}

// ReleaseOutputs lists a release's command outputs by instance.
func (s *Store) ReleaseOutputs(ctx context.Context, releaseID uint) ([]ReleaseOutput, error) {
	out := []ReleaseOutput{}
	err := s.db.WithContext(ctx).Where("release_id = ?", releaseID).Order("instance").Find(&out).Error
	return out, err
}

// PackagesInUse is every package digest the artifact store must keep:
// those of each live service's current and last-good release, of its
// newest release (a failed one may be retried), and of every release still
// under way. Older ones are pruned, so a tenant's package quota frees up as
// it releases, and a deleted application's packages go with it.
func (s *Store) PackagesInUse(ctx context.Context) (map[string]bool, error) {
	var shas []string
	if err := keptPackages(s.db.WithContext(ctx)).Distinct().Pluck("releases.package_sha256", &shas).Error; err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(shas))
	for _, sha := range shas {
		out[sha] = true
	}
	return out, nil
}

// keptPackages selects the releases whose packages PackagesInUse keeps.
func keptPackages(db *gorm.DB) *gorm.DB {
	return keptReleases(db).Where("releases.package_sha256 <> ''")
}

// keptReleases selects the releases whose artifacts are kept: each live
// service's current, last-good and newest release, and every release still
// under way. What older releases made (packages, built images) is pruned.
func keptReleases(db *gorm.DB) *gorm.DB {
	sub := db.Session(&gorm.Session{NewDB: true})
	newest := sub.Model(&Release{}).Select("MAX(id)").Group("service_id")
	current := sub.Model(&ServiceReleases{}).Select("current_id")
	lastGood := sub.Model(&ServiceReleases{}).Select("last_good_id")
	return db.Model(&Release{}).
		Joins("JOIN services ON services.id = releases.service_id").
		Joins("JOIN applications ON applications.id = services.application_id").
		Where("releases.outcome IN ? OR (applications.state <> ? AND (releases.id IN (?) OR releases.id IN (?) OR releases.id IN (?)))",
			[]berth.ReleaseOutcome{berth.ReleaseRunning, berth.ReleaseCandidate}, berth.StateDeleted, newest, current, lastGood)
}

// KeptImages are the images hosts keep when the reconciler prunes what
// berth built: those of kept releases (keptReleases) and the image each
// service of a live application runs.
func (s *Store) KeptImages(ctx context.Context) ([]string, error) {
	db := s.db.WithContext(ctx)
	var released, running []string
	if err := keptReleases(db).Where("releases.image <> ''").Distinct().Pluck("releases.image", &released).Error; err != nil {
		return nil, err
	}
	if err := db.Model(&Service{}).Joins("JOIN applications ON applications.id = services.application_id").
		Where("applications.state <> ?", berth.StateDeleted).Distinct().Pluck("services.image", &running).Error; err != nil {
		return nil, err
	}
	out := append(released, running...)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// PackageUsage is what the packages kept for a tenant's releases take, and
// what those of one of its environments take: each package counted once,
// at its uploaded size.
func (s *Store) PackageUsage(ctx context.Context, tenantID, envID uint) (tenant, env int64, err error) {
	rows, err := tenantPackages(s.db.WithContext(ctx), tenantID)
	if err != nil {
		return 0, 0, err
	}
	tenant, env = packageBytes(rows, envID)
	return tenant, env, nil
}

// keptPackage is one kept package of an environment.
type keptPackage struct {
	SHA   string
	Size  int64
	EnvID uint
}

func tenantPackages(db *gorm.DB, tenantID uint) ([]keptPackage, error) {
	var rows []keptPackage
	err := keptPackages(db).
		Joins("JOIN environments ON environments.id = applications.environment_id").
		Where("environments.tenant_id = ?", tenantID).
		Distinct("releases.package_sha256 AS sha", "releases.package_size AS size", "applications.environment_id AS env_id").
		Scan(&rows).Error
	return rows, err
}

// packageBytes sums rows for the tenant and for envID, each package once.
func packageBytes(rows []keptPackage, envID uint) (tenant, env int64) {
	inTenant, inEnv := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		if !inTenant[r.SHA] {
			inTenant[r.SHA] = true
			tenant += r.Size
		}
		if r.EnvID == envID && !inEnv[r.SHA] {
			inEnv[r.SHA] = true
			env += r.Size
		}
	}
	return tenant, env
}
