package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth"
)

// AppVersion is one accepted compose file of an application. A deploy of a
// file that differs from the newest version adds the next one; the same
// file again (a redeploy after a delete) keeps its number.
type AppVersion struct {
	ID            uint      `gorm:"primaryKey" json:"-"`
	ApplicationID uint      `gorm:"uniqueIndex:ux_app_version" json:"applicationId"`
	Number        int       `gorm:"uniqueIndex:ux_app_version" json:"number"`
	Compose       string    `gorm:"type:mediumtext" json:"compose,omitempty"`
	SpecHash      string    `gorm:"size:64" json:"specHash"`
	RunID         uint      `json:"runId"`
	CreatedBy     string    `gorm:"size:64" json:"createdBy"`
	CreatedAt     time.Time `json:"createdAt"`
}

// recordVersion adds the application's next version unless its compose is
// the newest one's. It runs inside the deploy's transaction, whose unique
// index makes two racing deploys of one application take turns.
func recordVersion(tx *gorm.DB, appID uint, compose, specHash string, run *Run) (int, error) {
	var last AppVersion
	err := tx.Where("application_id = ?", appID).Order("number desc").First(&last).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return 0, err
	case last.Compose == compose:
		return last.Number, nil
	}
	v := AppVersion{ApplicationID: appID, Number: last.Number + 1, Compose: compose, SpecHash: specHash,
		RunID: run.ID, CreatedBy: run.StartedBy}
	if err := tx.Create(&v).Error; err != nil {
		if isDuplicate(err) {
			return 0, &ConflictError{Msg: "another deploy of this application is recording its version; try again"}
		}
		return 0, err
	}
	return v.Number, nil
}

// VersionOf is the number of the newest version with this compose file
// (0: none), e.g. the version an application runs now.
func (s *Store) VersionOf(ctx context.Context, appID uint, compose string) (int, error) {
	var v AppVersion
	err := s.db.WithContext(ctx).Where("application_id = ? AND compose = ?", appID, compose).Order("number desc").First(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	return v.Number, err
}

// BeginUpdate opens an update's run under the application's lock (the
// application must be live) and records the new file as a version, in one
// transaction: a refused update leaves no version behind. rels are the
// image releases the update carries (a service whose image changes); they
// are opened with the run, and FinishRun closes them with its outcome, so a
// release's history shows an image changed by an update as one changed by a
// release. It returns the version's number.
func (s *Store) BeginUpdate(ctx context.Context, appID uint, compose, specHash string, run *Run, activeKey string, rels []Release) (int, error) {
	var n int
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := beginRunTx(tx, appID, run, activeKey); err != nil {
			return err
		}
		for i := range rels {
			rels[i].RunID, rels[i].Outcome = run.ID, berth.ReleaseRunning
			if err := tx.Create(&rels[i]).Error; err != nil {
				return err
			}
		}
		var err error
		n, err = recordVersion(tx, appID, compose, specHash, run)
		return err
	})
	return n, err
}

// FinishUpdate records what an update left: the application's compose
// becomes version's (0: unchanged) and each service takes its setting.
// Writing the same outcome again changes nothing.
func (s *Store) FinishUpdate(ctx context.Context, appID uint, version int, services []berth.ServiceSetting) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if version > 0 {
			var v AppVersion
			if err := tx.Where("application_id = ? AND number = ?", appID, version).First(&v).Error; err != nil {
				return notFound(err, fmt.Sprintf("version %d", version))
			}
			if err := tx.Model(&Application{}).Where("id = ?", appID).
				Updates(map[string]any{"compose": v.Compose, "spec_hash": v.SpecHash}).Error; err != nil {
				return err
			}
		}
		for _, ss := range services {
			up := map[string]any{"image": ss.Image, "replicas": ss.Replicas, "state": berth.StateRunning, "deleted_at": nil}
			if ss.Removed {
				t := now()
				up = map[string]any{"replicas": 0, "state": berth.StateDeleted, "deleted_at": &t}
			}
			if err := tx.Model(&Service{}).Where("application_id = ? AND name = ?", appID, ss.Name).Updates(up).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// AppVersions lists an application's versions, newest first, with their
// compose files.
func (s *Store) AppVersions(ctx context.Context, appID uint) ([]AppVersion, error) {
	vs := []AppVersion{}
	return vs, s.db.WithContext(ctx).Where("application_id = ?", appID).Order("number desc").Find(&vs).Error
}

// AppVersion is one version of an application.
func (s *Store) AppVersion(ctx context.Context, appID uint, n int) (*AppVersion, error) {
	var v AppVersion
	if err := s.db.WithContext(ctx).Where("application_id = ? AND number = ?", appID, n).First(&v).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("version %d", n))
	}
	return &v, nil
}
