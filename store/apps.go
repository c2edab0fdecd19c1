package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
)

// Application returns one application.
func (s *Store) Application(ctx context.Context, id uint) (*Application, error) {
	var a Application
	if err := s.db.WithContext(ctx).First(&a, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("application %d", id))
	}
	return &a, nil
}

// ApplicationByName returns an environment's application by name.
func (s *Store) ApplicationByName(ctx context.Context, envID uint, name string) (*Application, error) {
	var a Application
	if err := s.db.WithContext(ctx).Where("environment_id = ? AND name = ?", envID, name).First(&a).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("application %q", name))
	}
	return &a, nil
}

// Applications lists the applications of an environment (0 = all).
func (s *Store) Applications(ctx context.Context, envID uint) ([]Application, error) {
	var as []Application
	q := s.db.WithContext(ctx).Order("id")
	if envID != 0 {
		q = q.Where("environment_id = ?", envID)
	}
	return as, q.Find(&as).Error
}

// BeginDeploy creates (or revives, after a delete or a failed deploy) an
// application in state deploying and opens its run. It refuses an
// application that is live; the caller decides whether a live one with the
// same spec counts as the same request.
func (s *Store) BeginDeploy(ctx context.Context, envID uint, name, compose, specHash string, run *Run, activeKey string) (*Application, error) {
	var app Application
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Where("environment_id = ? AND name = ?", envID, name).First(&app).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			app = Application{EnvironmentID: envID, Name: name}
		case err != nil:
			return err
		case app.State == berth.StateRunning || app.State == berth.StateDeploying || app.State == berth.StateDeleting:
			return &ConflictError{Msg: fmt.Sprintf("application %q is %s (run %d)", name, app.State, app.LastRunID), Existing: &app}
		}
		app.Compose, app.SpecHash, app.State, app.DeletedAt = compose, specHash, berth.StateDeploying, nil
		if err := tx.Save(&app).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("application %q is being created by another request", name)}
			}
			return err
		}
		run.ApplicationID = app.ID
		run.ActiveKey = &activeKey
		run.Status = berth.RunPending
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("another run is active for %s", activeKey)}
			}
			return err
		}
		if _, err := recordVersion(tx, app.ID, compose, specHash, run); err != nil {
			return err
		}
		return tx.Model(&app).Update("last_run_id", run.ID).Error
	})
	if err != nil {
		return nil, err
	}
	return &app, nil
}

// BeginDelete moves a live or failed application to deleting and opens its run.
func (s *Store) BeginDelete(ctx context.Context, appID uint, run *Run, activeKey string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var app Application
		if err := tx.First(&app, appID).Error; err != nil {
			return notFound(err, fmt.Sprintf("application %d", appID))
		}
		if app.State == berth.StateDeleted {
			return &ConflictError{Msg: fmt.Sprintf("application %q is already deleted", app.Name), Existing: &app}
		}
		run.ApplicationID = app.ID
		run.ActiveKey = &activeKey
		run.Status = berth.RunPending
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("another run is active for %s", activeKey)}
			}
			return err
		}
		return tx.Model(&app).Updates(map[string]any{"state": berth.StateDeleting, "last_run_id": run.ID}).Error
	})
}

// SetApplicationState records the outcome of a deploy or delete.
func (s *Store) SetApplicationState(ctx context.Context, appID uint, state berth.State) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		up := map[string]any{"state": state}
		if state == berth.StateDeleted {
			t := now()
			up["deleted_at"] = &t
		}
		if err := tx.Model(&Application{}).Where("id = ?", appID).Updates(up).Error; err != nil {
			return err
		}
		return tx.Model(&Service{}).Where("application_id = ?", appID).Updates(up).Error
	})
}

// BeginRun opens a run for an application that must be live, holding the
// application's lock.
func (s *Store) BeginRun(ctx context.Context, appID uint, run *Run, activeKey string) error {
	return s.nameLockHolder(ctx, s.beginRun(ctx, appID, run, activeKey), activeKey)
}

// nameLockHolder rewrites a lost race for activeKey so that the answer
// names the run that holds the lock.
func (s *Store) nameLockHolder(ctx context.Context, err error, activeKey string) error {
	var conflict *ConflictError
	if errors.As(err, &conflict) && conflict.Existing == nil && conflict.Msg == "another run is active for "+activeKey {
		// The transaction's snapshot predates the winner's commit; a fresh
		// read sees the run that holds the lock, so the answer can name it.
		if active, ferr := s.ActiveRun(ctx, activeKey); ferr == nil {
			return &ConflictError{Msg: fmt.Sprintf("run %d (%s by %s) is active for %s", active.ID, active.Kind, active.StartedBy, active.Subject), Existing: active}
		}
	}
	return err
}

func (s *Store) beginRun(ctx context.Context, appID uint, run *Run, activeKey string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return beginRunTx(tx, appID, run, activeKey) })
}

func beginRunTx(tx *gorm.DB, appID uint, run *Run, activeKey string) error {
	var app Application
	if err := tx.First(&app, appID).Error; err != nil {
		return notFound(err, fmt.Sprintf("application %d", appID))
	}
	if app.State != berth.StateRunning {
		return &ConflictError{Msg: fmt.Sprintf("application %q is %s, not running", app.Name, app.State)}
	}
	run.ApplicationID, run.ActiveKey, run.Status = app.ID, &activeKey, berth.RunPending
	if err := tx.Omit("Steps").Create(run).Error; err != nil {
		if isDuplicate(err) {
			var active Run
			if ferr := tx.Where("active_key = ?", activeKey).First(&active).Error; ferr == nil {
				return &ConflictError{Msg: fmt.Sprintf("run %d (%s by %s) is active for %s", active.ID, active.Kind, active.StartedBy, active.Subject), Existing: &active}
			}
			return &ConflictError{Msg: "another run is active for " + activeKey}
		}
		return err
	}
	return nil
}
