package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// SetHostState records a host's state (a drain cordons it, then marks it drained).
func (s *Store) SetHostState(ctx context.Context, id uint, state berth.HostState) error {
	if _, ok := berth.Parse(berth.HostStates, string(state)); !ok {
		return fmt.Errorf("host %d: unknown state %q", id, state)
	}
	return s.db.WithContext(ctx).Model(&Host{}).Where("id = ?", id).Update("state", state).Error
}

// Evacuation is the next move of a drain: a service with live instances on
// the host, and the evacuate run that holds its application's lock.
type Evacuation struct {
	// Done: no live instance is left on the host.
	Done bool
	// Busy names the run that holds the application's lock; the drain waits.
	Busy   string
	Run    *Run
	Ctx    *ServiceContext
	Target *ServiceTarget
	// OnHost are the service's live instances on the host, oldest first.
	OnHost []berth.PlannedInstance
}

// evacuationInput is an evacuate run's input as kept on it (and shown on its page).
type evacuationInput struct {
	ServiceID uint `json:"serviceId"`
	HostID    uint `json:"hostId"`
}

func (e evacuationInput) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// BeginEvacuation opens an evacuate run for the first service that still
// has live instances on the host, under its application's lock, with the
// target a release of it needs; the run's workflow id is workflowPrefix
// and the service's subject. key (the drain's run and move number)
// makes a retry return the run it opened. An application that is not
// running cannot be moved: that is a conflict, and the drain stops.
func (s *Store) BeginEvacuation(ctx context.Context, hostID uint, key, workflowPrefix, startedBy string, opts compose.Options) (*Evacuation, error) {
	sum := sha256.Sum256([]byte(key))
	hash := hex.EncodeToString(sum[:])
	out := &Evacuation{}
	var serviceID uint
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var prior Run
		if err := tx.Where("kind = ? AND request_hash = ?", berth.KindEvacuate, hash).First(&prior).Error; err == nil {
			out.Run = &prior
			var in evacuationInput
			err := json.Unmarshal([]byte(prior.Input), &in)
			serviceID = in.ServiceID
			return err
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		var in Instance
		err := tx.Where("host_id = ? AND removed_at IS NULL", hostID).Order("service_id, ordinal").First(&in).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			out.Done = true
			return nil
		}
		if err != nil {
			return err
		}
		serviceID = in.ServiceID
		sc, err := serviceContextTx(tx, in.ServiceID)
		if err != nil {
			return err
		}
		lock := berth.AppLockKey(sc.Tenant.Name, sc.Environment.Name, sc.Application.Name)
		var holder Run
		if err := tx.Where("active_key = ?", lock).First(&holder).Error; err == nil {
			out.Busy = fmt.Sprintf("run %d (%s by %s) on %s", holder.ID, holder.Kind, holder.StartedBy, holder.Subject)
			return nil
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		subject := sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name + "/" + sc.Service.Name
		run := &Run{Kind: berth.KindEvacuate, WorkflowID: workflowPrefix + subject,
			TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID, HostID: hostID, Subject: subject,
			StartedBy: startedBy, RequestHash: hash, Input: evacuationInput{ServiceID: in.ServiceID, HostID: hostID}.String()}
		if err := beginRunTx(tx, sc.Application.ID, run, lock); err != nil {
			var conflict *ConflictError
			if errors.As(err, &conflict) && conflict.Existing == nil && sc.Application.State != berth.StateRunning {
				return &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf(
					"application %s/%s/%s is %s, not running: its instances on this host cannot be moved; delete or redeploy it, then drain again",
					sc.Tenant.Name, sc.Environment.Name, sc.Application.Name, sc.Application.State)}
			}
			if errors.As(err, &conflict) {
				out.Busy = conflict.Msg
				return nil
			}
			return err
		}
		out.Run = run
		return nil
	})
	if err != nil || out.Done || out.Busy != "" {
		return out, err
	}
	if out.Ctx, err = s.ServiceContextByID(ctx, serviceID); err != nil {
		return nil, err
	}
	if out.Target, err = s.ServiceTarget(ctx, out.Ctx, opts); err != nil {
		// The run holds the lock: close it, so the application is not stuck.
		if ferr := s.FinishRun(ctx, out.Run.ID, berth.RunFailed, err.Error()); ferr != nil {
			return nil, errors.Join(err, ferr)
		}
		return nil, err
	}
	for _, pi := range out.Target.Live {
		if pi.Host.ID == hostID {
			out.OnHost = append(out.OnHost, pi)
		}
	}
	return out, nil
}
