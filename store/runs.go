package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CreateRun inserts a run. When activeKey is set and another run holds it, a
// *ConflictError carrying that run is returned: one active run per subject.
func (s *Store) CreateRun(ctx context.Context, r *Run, activeKey string) error {
	if activeKey != "" {
		r.ActiveKey = &activeKey
	}
	if r.Status == "" {
		r.Status = berth.RunPending
	}
	err := s.db.WithContext(ctx).Omit("Steps").Create(r).Error
	if err == nil {
		return nil
	}
	if !isDuplicate(err) || activeKey == "" {
		return err
	}
	existing, ferr := s.ActiveRun(ctx, activeKey)
	if ferr != nil {
		return fmt.Errorf("run conflict, and the active run could not be read: %w", ferr)
	}
	return &ConflictError{Msg: fmt.Sprintf("run %d (%s by %s) is already active for %s", existing.ID, existing.Kind, existing.StartedBy, existing.Subject), Existing: existing}
}

// ActiveRun returns the run that holds an active key.
func (s *Store) ActiveRun(ctx context.Context, key string) (*Run, error) {
	var r Run
	if err := s.db.WithContext(ctx).Where("active_key = ?", key).First(&r).Error; err != nil {
		return nil, notFound(err, "active run "+key)
	}
	return &r, nil
}

// Run returns one run with its steps in order.
func (s *Store) Run(ctx context.Context, id uint) (*Run, error) {
	var r Run
	err := s.db.WithContext(ctx).Preload("Steps", func(db *gorm.DB) *gorm.DB { return db.Order("seq, id") }).First(&r, id).Error
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("run %d", id))
	}
	return &r, nil
}

// SetRunStarted records the Temporal run id once the workflow has started.
func (s *Store) SetRunStarted(ctx context.Context, id uint, temporalRunID string) error {
	return s.db.WithContext(ctx).Model(&Run{}).Where("id = ? AND status = ?", id, berth.RunPending).
		Updates(map[string]any{"temporal_run_id": temporalRunID, "status": berth.RunRunning}).Error
}

// FinishRun closes a run and frees its active key. Finishing twice keeps
// the first outcome.
func (s *Store) FinishRun(ctx context.Context, id uint, status berth.RunStatus, errMsg string) error {
	_, err := s.EndRun(ctx, id, status, errMsg)
	return err
}

// EndRun is FinishRun that also returns the run's end, only to the call
// that ended it, so that a retry is not counted twice.
func (s *Store) EndRun(ctx context.Context, id uint, status berth.RunStatus, errMsg string) (*berth.RunEnd, error) {
	t := now()
	var end *berth.RunEnd
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		end = nil
		res := tx.Model(&Run{}).Where("id = ? AND finished_at IS NULL", id).
			Updates(map[string]any{"status": status, "error": errMsg, "finished_at": &t, "active_key": nil})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		var run Run
		if err := tx.Select("id", "kind", "created_at").First(&run, id).Error; err != nil {
			return err
		}
		end = &berth.RunEnd{Kind: run.Kind, Status: status, Took: t.Sub(run.CreatedAt)}
		if err := runIncidentsTx(tx, id, status); err != nil {
			return err
		}
		return finishRunReleasesTx(tx, id, status, errMsg)
	})
	if err != nil {
		return nil, err
	}
	return end, nil
}

// RecordStep upserts a step. A step entering running or waiting opens an
// interval; leaving it adds that interval to active or waiting time. Replays
// of the same event are harmless because the interval only closes once.
func (s *Store) RecordStep(ctx context.Context, ev berth.StepEvent) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var st Step
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("run_id = ? AND name = ?", ev.RunID, ev.Name).First(&st).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			var n int64
			if err := tx.Model(&Step{}).Where("run_id = ?", ev.RunID).Count(&n).Error; err != nil {
				return err
			}
			at := ev.At
			st = Step{RunID: ev.RunID, Seq: int(n) + 1, Name: ev.Name, State: ev.State, Detail: ev.Detail, Error: ev.Error, StartedAt: &at}
			if ev.State != berth.StepRunning && ev.State != berth.StepWaiting {
				st.FinishedAt = &at
			}
			return tx.Create(&st).Error
		}
		if err != nil {
			return err
		}
		if st.State == ev.State {
			return nil
		}
		mark := st.StartedAt
		if st.FinishedAt != nil {
			mark = st.FinishedAt
		}
		if mark != nil && (st.State == berth.StepRunning || st.State == berth.StepWaiting) {
			d := ev.At.Sub(*mark).Milliseconds()
			if d < 0 {
				d = 0
			}
			if st.State == berth.StepWaiting {
				st.WaitingMs += d
			} else {
				st.ActiveMs += d
			}
		}
		at := ev.At
		st.State = ev.State
		if ev.Detail != "" {
			st.Detail = ev.Detail
		}
		if ev.Error != "" {
			st.Error = ev.Error
		}
		// FinishedAt doubles as the start of the current interval for a step
		// that moves between running and waiting.
		st.FinishedAt = &at
		return tx.Save(&st).Error
	})
}

// RunFilter selects runs. Fields are matched exactly; Sort is one of the
// allowlisted keys in RunSorts.
type RunFilter struct {
	Kind          berth.RunKind
	Status        berth.RunStatus
	TenantID      uint
	EnvironmentID uint
	ApplicationID uint
	StartedBy     string
	// TenantIDs, when not nil, limits to runs of these tenants: the reads
	// of a caller without a platform-wide role.
	TenantIDs     []uint
	Since, Until  *time.Time
	Sort          string
	Limit, Offset int
}

// RunSorts maps the sort keys users may ask for to SQL; nothing else reaches ORDER BY.
var RunSorts = map[string]string{
	"":         "id desc",
	"-id":      "id desc",
	"id":       "id asc",
	"-created": "created_at desc, id desc",
	"created":  "created_at asc, id asc",
	"status":   "status asc, id desc",
	"kind":     "kind asc, id desc",
}

// Runs lists runs matching a filter, newest first by default, with the total count.
func (s *Store) Runs(ctx context.Context, f RunFilter) ([]Run, int64, error) {
	order, ok := RunSorts[f.Sort]
	if !ok {
		return nil, 0, fmt.Errorf("sort %q is not allowed", f.Sort)
	}
	q := s.db.WithContext(ctx).Model(&Run{})
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.TenantID != 0 {
		q = q.Where("tenant_id = ?", f.TenantID)
	}
	if f.EnvironmentID != 0 {
		q = q.Where("environment_id = ?", f.EnvironmentID)
	}
	if f.ApplicationID != 0 {
		q = q.Where("application_id = ?", f.ApplicationID)
	}
	if f.StartedBy != "" {
		q = q.Where("started_by = ?", f.StartedBy)
	}
	if f.TenantIDs != nil {
		q = q.Where("tenant_id IN ?", f.TenantIDs)
	}
	if f.Since != nil {
		q = q.Where("created_at >= ?", *f.Since)
	}
	if f.Until != nil {
		q = q.Where("created_at < ?", *f.Until)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	var runs []Run
	// A kept request can be a whole compose file, and an input a whole
	// spec: lists leave both out.
	err := q.Omit("request", "input").Order(order).Limit(f.Limit).Offset(f.Offset).Find(&runs).Error
	return runs, total, err
}
