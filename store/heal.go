package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"gorm.io/gorm"

	"github.com/berth-dev/berth"
)

// HealActor is who self-healing's runs and events are recorded as.
const HealActor = "self-healing"

// appOfSubject is tenant/env/app of a heal run's subject.
func appOfSubject(subject string) string {
	parts := strings.SplitN(subject, "/", 4)
	if len(parts) < 3 {
		return subject
	}
	return strings.Join(parts[:3], "/")
}

// BeginHeal decides, for a live instance whose container exited, whether a
// heal run starts it again now. The run takes the application's lock like
// any run, so a release or scale under way is never raced: the instance is
// left for the next pass. An instance healed berth.MaxHeals times within
// berth.HealWindow is left for a person, and that is recorded in the audit
// trail once per window (the pass records it as a finding). key makes a retry return the run it opened.
func (s *Store) BeginHeal(ctx context.Context, name, host, workflowID, key string) (*berth.HealStart, error) {
	var out berth.HealStart
	// Kept in request_hash (64 characters): a pass's run id and an
	// instance name together are longer.
	sum := sha256.Sum256([]byte(key))
	key = hex.EncodeToString(sum[:])
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if found, err := priorHealTx(tx, key, &out); found || err != nil {
			return err
		}
		var in Instance
		err := tx.Where("name = ? AND removed_at IS NULL", name).First(&in).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			out.Verdict = berth.HealBusy
			return nil
		}
		if err != nil {
			return err
		}
		if in.State != berth.StateRunning {
			out.Verdict = berth.HealBusy
			return nil
		}
		sc, err := serviceContextTx(tx, in.ServiceID)
		if err != nil {
			return err
		}
		subject := sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name + "/" + sc.Service.Name + "/" + in.Name
		return openHealTx(tx, sc, subject, host+"/"+in.Name, workflowID, key, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// openHealTx opens a heal run on subject under the application's lock, or
// says why not now: the application is busy, or subject was healed
// berth.MaxHeals times within berth.HealWindow (given up on, which is said
// once per window in the audit trail under auditTarget).
func openHealTx(tx *gorm.DB, sc *ServiceContext, subject, auditTarget, workflowID, key string, out *berth.HealStart) error {
	since := now().Add(-berth.HealWindow)
	var tries int64
	if err := tx.Model(&Run{}).Where("kind = ? AND subject = ? AND created_at >= ?", berth.KindHeal, subject, since).Count(&tries).Error; err != nil {
		return err
	}
	out.Tries, out.Subject, out.ApplicationID = int(tries), subject, sc.Application.ID
	out.App = appOfSubject(subject)
	if tries >= berth.MaxHeals {
		// Said once per window: the pass records the finding in the audit trail.
		var said int64
		if err := tx.Model(&AuditEvent{}).Where("action = ? AND target = ? AND outcome = ? AND at >= ?", "reconcile", auditTarget,
			string(berth.FindingHealGaveUp), since).Count(&said).Error; err != nil {
			return err
		}
		out.Verdict = berth.HealGivenUp
		if said == 0 {
			out.Verdict = berth.HealGaveUp
		}
		return nil
	}
	lock := berth.AppLockKey(sc.Tenant.Name, sc.Environment.Name, sc.Application.Name)
	var holders int64
	if err := tx.Model(&Run{}).Where("active_key = ?", lock).Count(&holders).Error; err != nil {
		return err
	}
	if holders > 0 {
		out.Verdict = berth.HealBusy
		return nil
	}
	run := &Run{Kind: berth.KindHeal, WorkflowID: workflowID, TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID,
		Subject: subject, StartedBy: HealActor, RequestHash: key}
	if err := beginRunTx(tx, sc.Application.ID, run, lock); err != nil {
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			out.Verdict = berth.HealBusy
			return nil
		}
		return err
	}
	out.Verdict, out.RunID, out.WorkflowID = berth.HealOpened, run.ID, run.WorkflowID
	return nil
}

// ShortServices lists the running services of running applications that
// have fewer live instances than their replicas (stopped ones count: a
// person stopped them), oldest service first.
func (s *Store) ShortServices(ctx context.Context) ([]berth.ShortService, error) {
	var rows []berth.ShortService
	err := s.db.WithContext(ctx).Table("services").
		Select("services.id AS service_id, services.replicas AS replicas, (SELECT COUNT(*) FROM instances WHERE instances.service_id = services.id AND instances.removed_at IS NULL) AS live").
		Joins("JOIN applications ON applications.id = services.application_id").
		Where("applications.state = ? AND services.state = ? AND services.deleted_at IS NULL AND services.replicas > 0", berth.StateRunning, berth.StateRunning).
		Where("(SELECT COUNT(*) FROM instances WHERE instances.service_id = services.id AND instances.removed_at IS NULL) < services.replicas").
		Order("services.id").Scan(&rows).Error
	return rows, err
}

// BeginServiceHeal opens a heal run that brings a short service back to
// its replicas, under the application's lock, with the same backoff as an
// instance's heals; key makes a retry return the run it opened.
func (s *Store) BeginServiceHeal(ctx context.Context, serviceID uint, workflowID, key string) (*berth.HealStart, error) {
	var out berth.HealStart
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:])
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if found, err := priorHealTx(tx, hash, &out); found || err != nil {
			return err
		}
		sc, err := serviceContextTx(tx, serviceID)
		if err != nil {
			return err
		}
		subject := sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name + "/" + sc.Service.Name
		return openHealTx(tx, sc, subject, subject, workflowID, hash, &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// priorHealTx finds the heal run a call with the same key opened.
func priorHealTx(tx *gorm.DB, hash string, out *berth.HealStart) (bool, error) {
	var prior Run
	err := tx.Where("kind = ? AND request_hash = ?", berth.KindHeal, hash).First(&prior).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	*out = berth.HealStart{Verdict: berth.HealOpened, RunID: prior.ID, WorkflowID: prior.WorkflowID,
		ApplicationID: prior.ApplicationID, Subject: prior.Subject, App: appOfSubject(prior.Subject)}
	return true, nil
}
