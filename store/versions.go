package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
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
func recordVersion(tx *gorm.DB, appID uint, compose, specHash string, run *Run) error {
	var last AppVersion
	err := tx.Where("application_id = ?", appID).Order("number desc").First(&last).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return err
	case last.Compose == compose:
		return nil
	}
	v := AppVersion{ApplicationID: appID, Number: last.Number + 1, Compose: compose, SpecHash: specHash,
		RunID: run.ID, CreatedBy: run.StartedBy}
	if err := tx.Create(&v).Error; err != nil {
		if isDuplicate(err) {
			return &ConflictError{Msg: "another deploy of this application is recording its version; try again"}
		}
		return err
	}
	return nil
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
