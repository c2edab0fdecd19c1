package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth"
)

// HostRecords lists the instances the records say a host holds (not
// removed), with their state and the run that planned them.
func (s *Store) HostRecords(ctx context.Context, hostID uint) ([]berth.InstanceRecord, error) {
	var h Host
	if err := s.db.WithContext(ctx).First(&h, hostID).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("host %d", hostID))
	}
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("host_id = ? AND removed_at IS NULL", hostID).Order("id").Find(&insts).Error; err != nil {
		return nil, err
	}
	out := make([]berth.InstanceRecord, 0, len(insts))
	for _, in := range insts {
		out = append(out, berth.InstanceRecord{Instance: plannedFrom(in, h), State: in.State, RunID: in.RunID, CreatedAt: in.CreatedAt})
	}
	return out, nil
}

// ReadyHostsAll lists every ready host of the platform.
func (s *Store) ReadyHostsAll(ctx context.Context) ([]berth.HostRef, error) {
	var hs []Host
	if err := s.db.WithContext(ctx).Where("state = ?", berth.HostReady).Order("id").Find(&hs).Error; err != nil {
		return nil, err
	}
	out := make([]berth.HostRef, len(hs))
	for i, h := range hs {
		out[i] = h.Ref()
	}
	return out, nil
}

// OpenRuns lists runs still pending or running that began before cutoff.
func (s *Store) OpenRuns(ctx context.Context, before time.Time) ([]berth.OpenRun, error) {
	var rs []Run
	if err := s.db.WithContext(ctx).Where("status IN ? AND created_at < ?", []berth.RunStatus{berth.RunPending, berth.RunRunning}, before).
		Order("id").Find(&rs).Error; err != nil {
		return nil, err
	}
	out := make([]berth.OpenRun, len(rs))
	for i, r := range rs {
		out[i] = berth.OpenRun{ID: r.ID, Kind: r.Kind, Subject: r.Subject, WorkflowID: r.WorkflowID, TemporalRunID: r.TemporalRunID}
	}
	return out, nil
}

// OpenRunIDs lists the ids of every run still pending or running.
func (s *Store) OpenRunIDs(ctx context.Context) ([]uint, error) {
	ids := []uint{}
	return ids, s.db.WithContext(ctx).Model(&Run{}).Where("status IN ?", []berth.RunStatus{berth.RunPending, berth.RunRunning}).
		Order("id").Pluck("id", &ids).Error
}

// AbandonRun closes a run whose workflow ended without recording its
// outcome (terminated by an operator, or killed by a timeout): failed, its
// lock freed, its open approvals cancelled, and a deploy's or delete's
// application marked failed (a scale or release leaves it live). A run
// that has since closed is left as it is.
func (s *Store) AbandonRun(ctx context.Context, id uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var run Run
		if err := tx.First(&run, id).Error; err != nil {
			return notFound(err, fmt.Sprintf("run %d", id))
		}
		if run.Status != berth.RunPending && run.Status != berth.RunRunning {
			return nil
		}
		t := now()
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{"status": berth.RunFailed,
			"error": "workflow closed without recording an outcome", "finished_at": &t, "active_key": nil}).Error; err != nil {
			return err
		}
		if err := tx.Model(&Approval{}).Where("run_id = ? AND state IN ?", id, openApprovalStates).
			Updates(map[string]any{"state": berth.ApprovalCancelled, "decided_at": &t}).Error; err != nil {
			return err
		}
		// A release the run opened would otherwise stay "in progress" in
		// the service's history for ever.
		if err := finishRunReleasesTx(tx, id, berth.RunFailed, "workflow closed without recording an outcome"); err != nil {
			return err
		}
		if run.ApplicationID != 0 && (run.Kind == berth.KindDeploy || run.Kind == berth.KindDelete) {
			up := map[string]any{"state": berth.StateFailed}
			if err := tx.Model(&Application{}).Where("id = ?", run.ApplicationID).Updates(up).Error; err != nil {
				return err
			}
			return tx.Model(&Service{}).Where("application_id = ?", run.ApplicationID).Updates(up).Error
		}
		return nil
	})
}

// RecordFindings writes each finding of a reconciler pass as an audit event.
func (s *Store) RecordFindings(ctx context.Context, fs []berth.Finding) error {
	for _, f := range fs {
		outcome := string(f.Kind)
		detail := f.Detail
		if f.Error != "" {
			outcome, detail = "repair-failed", f.Detail+": "+f.Error
		}
		target := f.Target
		if f.Host != "" {
			target = f.Host + "/" + f.Target
		}
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&AuditEvent{At: now(), Actor: "reconciler", Action: "reconcile", Target: target, Outcome: outcome, Detail: detail}).Error; err != nil {
				return err
			}
			return findingIncidentsTx(tx, f)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
