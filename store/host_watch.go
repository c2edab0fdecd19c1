package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// WatchedHosts lists the hosts self-healing probes: the ready ones, and the
// down ones that still matter (self-healing marked them down, or the
// records still place live or lost instances on them), which may answer
// again. A host whose first check failed holds nothing and is left to a
// person's next check.
func (s *Store) WatchedHosts(ctx context.Context) ([]berth.HostRef, error) {
	held := s.db.Model(&Instance{}).Select("host_id").Where("removed_at IS NULL OR state = ?", berth.StateLost)
	var hs []Host
	err := s.db.WithContext(ctx).Where("state = ? OR (state = ? AND (probe_failures > 0 OR id IN (?)))",
		berth.HostReady, berth.HostDown, held).Order("id").Find(&hs).Error
	if err != nil {
		return nil, err
	}
	out := make([]berth.HostRef, len(hs))
	for i, h := range hs {
		out[i] = h.Ref()
	}
	return out, nil
}

// RecordProbe records whether a host's engine answered one self-healing
// probe. The downAfter-th failure in a row marks a ready host down, with
// the last error as its reason. An answer resets the count, except on a
// down host: it stays down, and watched, until a check marks it ready. Under the host's row lock, so two
// passes never both count one failure as the one that marks it down.
func (s *Store) RecordProbe(ctx context.Context, hostID uint, ok bool, reason string, downAfter int) (*berth.HostProbe, error) {
	var out berth.HostProbe
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var h Host
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&h, hostID).Error; err != nil {
			return notFound(err, fmt.Sprintf("host %d", hostID))
		}
		set := map[string]any{}
		if ok {
			// A down host keeps its count, which marks it as one self-healing
			// watches, until a check finds it ready (SetHostFacts).
			if h.ProbeFailures != 0 && h.State != berth.HostDown {
				set["probe_failures"] = 0
				h.ProbeFailures = 0
			}
		} else {
			h.ProbeFailures++
			set["probe_failures"] = h.ProbeFailures
			if h.State == berth.HostReady && downAfter > 0 && h.ProbeFailures >= downAfter {
				t := now()
				h.State = berth.HostDown
				set["state"], set["checked_at"] = h.State, &t
				set["reason"] = fmt.Sprintf("its engine did not answer %d probes in a row (self-healing): %s", h.ProbeFailures, reason)
				out.WentDown = true
			}
		}
		if len(set) > 0 {
			if err := tx.Model(&Host{}).Where("id = ?", hostID).Updates(set).Error; err != nil {
				return err
			}
		}
		var live int64
		if err := tx.Model(&Instance{}).Where("host_id = ? AND removed_at IS NULL", hostID).Count(&live).Error; err != nil {
			return err
		}
		out.State, out.Failures, out.Live = h.State, h.ProbeFailures, int(live)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// BeginHostRun opens a run of self-healing's on a host (kind recover-host
// or provision-host) holding the host's lock, lockKey. Another run holding
// it (a drain, a check, a recovery still going) makes the verdict busy. key
// makes a retry return the run it opened.
func (s *Store) BeginHostRun(ctx context.Context, hostID uint, kind berth.RunKind, workflowID, lockKey, key string) (*berth.HealStart, error) {
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:])
	var out berth.HealStart
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var prior Run
		if err := tx.Where("kind = ? AND request_hash = ?", kind, hash).First(&prior).Error; err == nil {
			out = berth.HealStart{Verdict: berth.HealOpened, RunID: prior.ID, WorkflowID: prior.WorkflowID, Subject: prior.Subject}
			return nil
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		var h Host
		if err := tx.First(&h, hostID).Error; err != nil {
			return notFound(err, fmt.Sprintf("host %d", hostID))
		}
		var holders int64
		if err := tx.Model(&Run{}).Where("active_key = ?", lockKey).Count(&holders).Error; err != nil {
			return err
		}
		if holders > 0 {
			out.Verdict = berth.HealBusy
			return nil
		}
		subject := "host/" + h.Name
		if kind == berth.KindRecoverHost {
			// A recovery that keeps failing (no room elsewhere, say) is
			// tried berth.MaxHeals times within berth.HealWindow, then
			// left for a person, which is said once per window.
			since := now().Add(-berth.HealWindow)
			var failed int64
			if err := tx.Model(&Run{}).Where("kind = ? AND subject = ? AND status = ? AND created_at >= ?", kind, subject, berth.RunFailed, since).
				Count(&failed).Error; err != nil {
				return err
			}
			if failed >= berth.MaxHeals {
				var said int64
				if err := tx.Model(&AuditEvent{}).Where("action = ? AND target = ? AND outcome = ? AND at >= ?", "reconcile", h.Name+"/host",
					string(berth.FindingHealGaveUp), since).Count(&said).Error; err != nil {
					return err
				}
				out.Verdict, out.Tries = berth.HealGivenUp, int(failed)
				if said == 0 {
					out.Verdict = berth.HealGaveUp
				}
				return nil
			}
		}
		run := &Run{Kind: kind, WorkflowID: workflowID, HostID: hostID, Subject: subject, StartedBy: HealActor,
			RequestHash: hash, ActiveKey: &lockKey, Status: berth.RunPending}
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				out.Verdict = berth.HealBusy
				return nil
			}
			return err
		}
		out = berth.HealStart{Verdict: berth.HealOpened, RunID: run.ID, WorkflowID: run.WorkflowID, Subject: run.Subject}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// LoseInstances closes the records of instances lost with their host (it
// stopped answering, and they were replaced elsewhere): they are no longer
// live, so nothing counts, places or routes to them, but they keep their
// ports until CloseLost, once their containers are known to be gone.
func (s *Store) LoseInstances(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	t := now()
	return s.db.WithContext(ctx).Model(&Instance{}).Where("name IN ? AND removed_at IS NULL", names).
		Updates(map[string]any{"state": berth.StateLost, "removed_at": &t}).Error
}

// LostInstances lists the instances lost with a host whose containers may
// still be on it.
func (s *Store) LostInstances(ctx context.Context, hostID uint) ([]berth.PlannedInstance, error) {
	var h Host
	if err := s.db.WithContext(ctx).First(&h, hostID).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("host %d", hostID))
	}
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("host_id = ? AND state = ?", hostID, berth.StateLost).Order("id").Find(&insts).Error; err != nil {
		return nil, err
	}
	out := make([]berth.PlannedInstance, 0, len(insts))
	for _, in := range insts {
		out = append(out, plannedFrom(in, h))
	}
	return out, nil
}

// CloseLost marks lost instances whose containers were removed as removed,
// and frees their ports.
func (s *Store) CloseLost(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("instance_name IN ?", names).Delete(&PortAllocation{}).Error; err != nil {
			return err
		}
		return tx.Model(&Instance{}).Where("name IN ? AND state = ?", names, berth.StateLost).
			Update("state", berth.StateRemoved).Error
	})
}
