package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
)

func plannedFrom(in Instance, h Host) berth.PlannedInstance {
	var ports []berth.PortMapping
	_ = json.Unmarshal([]byte(in.Ports), &ports)
	return berth.PlannedInstance{InstanceID: in.ID, Name: in.Name, UID: in.UID, Service: in.Service, Ordinal: in.Ordinal,
		Host: h.Ref(), Ports: ports}
}

// InstanceStarted records where a started instance runs.
func (s *Store) InstanceStarted(ctx context.Context, name, containerID, ip string) error {
	return s.db.WithContext(ctx).Model(&Instance{}).Where("name = ?", name).
		Updates(map[string]any{"container_id": containerID, "ip": ip, "state": berth.StateRunning}).Error
}

// ReleaseInstances marks instances removed and frees their ports. Their rows
// stay: an instance CI is deleted once, and its history is kept.
func (s *Store) ReleaseInstances(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("instance_name IN ?", names).Delete(&PortAllocation{}).Error; err != nil {
			return err
		}
		t := now()
		return tx.Model(&Instance{}).Where("name IN ? AND removed_at IS NULL", names).
			Updates(map[string]any{"state": berth.StateRemoved, "removed_at": &t}).Error
	})
}

// LiveInstances returns the instances of an application that are not removed,
// with their hosts, in a stable order.
func (s *Store) LiveInstances(ctx context.Context, appID uint) ([]berth.PlannedInstance, error) {
	var insts []Instance
	err := s.db.WithContext(ctx).Joins("JOIN services ON services.id = instances.service_id").
		Where("services.application_id = ? AND instances.removed_at IS NULL", appID).
		Order("instances.id").Find(&insts).Error
	if err != nil {
		return nil, err
	}
	hosts := map[uint]Host{}
	out := make([]berth.PlannedInstance, 0, len(insts))
	for _, in := range insts {
		h, ok := hosts[in.HostID]
		if !ok {
			if err := s.db.WithContext(ctx).First(&h, in.HostID).Error; err != nil {
				return nil, err
			}
			hosts[in.HostID] = h
		}
		out = append(out, plannedFrom(in, h))
	}
	return out, nil
}

// LiveServiceInstances returns a service's instances that are not removed,
// oldest first, with their hosts.
func (s *Store) LiveServiceInstances(ctx context.Context, serviceID uint) ([]berth.PlannedInstance, error) {
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("service_id = ? AND removed_at IS NULL", serviceID).Order("ordinal").Find(&insts).Error; err != nil {
		return nil, err
	}
	out := make([]berth.PlannedInstance, 0, len(insts))
	for _, in := range insts {
		var h Host
		if err := s.db.WithContext(ctx).First(&h, in.HostID).Error; err != nil {
			return nil, err
		}
		out = append(out, plannedFrom(in, h))
	}
	return out, nil
}

// HeldOutside is the instance name of a port allocation whose port
// something outside berth holds on the host: the planner passes over it as
// over any allocated port, so no later plan tries that port again.
const HeldOutside = "(held outside berth)"

// MovePorts gives a planned instance other host ports in place of taken,
// ports its host refused because something outside berth holds them; those
// stay allocated as HeldOutside. A retry finds the ports already moved and
// changes nothing.
func (s *Store) MovePorts(ctx context.Context, name string, taken []int, portMin, portMax int) (*berth.PlannedInstance, error) {
	var out berth.PlannedInstance
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var in Instance
		if err := tx.Where("name = ? AND removed_at IS NULL", name).First(&in).Error; err != nil {
			return notFound(err, "instance "+name)
		}
		var h Host
		if err := tx.First(&h, in.HostID).Error; err != nil {
			return err
		}
		var ports []berth.PortMapping
		if err := json.Unmarshal([]byte(in.Ports), &ports); err != nil && in.Ports != "" {
			return fmt.Errorf("instance %s: ports: %w", name, err)
		}
		used, err := usedPorts(tx, h.ID)
		if err != nil {
			return err
		}
		moved := false
		for i, pm := range ports {
			if !slices.Contains(taken, pm.HostPort) {
				continue
			}
			if err := tx.Model(&PortAllocation{}).Where("host_id = ? AND port = ? AND instance_name = ?", h.ID, pm.HostPort, name).
				Update("instance_name", HeldOutside).Error; err != nil {
				return err
			}
			port, err := freePort(used, portMin, portMax)
			if err != nil {
				return fmt.Errorf("host %q: %w", h.Name, err)
			}
			if err := tx.Create(&PortAllocation{HostID: h.ID, Port: port, InstanceName: name}).Error; err != nil {
				return err
			}
			ports[i].HostPort = port
			moved = true
		}
		if moved {
			b, _ := json.Marshal(ports)
			in.Ports = string(b)
			if err := tx.Model(&in).Update("ports", in.Ports).Error; err != nil {
				return err
			}
		}
		out = plannedFrom(in, h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetInstanceState records a live instance as stopped or running again
// after a person's action on it; setting the state it has changes nothing.
func (s *Store) SetInstanceState(ctx context.Context, name string, state berth.State) error {
	if state != berth.StateStopped && state != berth.StateRunning {
		return fmt.Errorf("instance %s: state %q is not one an action sets", name, state)
	}
	res := s.db.WithContext(ctx).Model(&Instance{}).Where("name = ? AND removed_at IS NULL", name).Update("state", state)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		var n int64
		if err := s.db.WithContext(ctx).Model(&Instance{}).Where("name = ? AND removed_at IS NULL", name).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return &berth.Error{Code: berth.ENotFound, Message: "instance " + name + " is not live"}
		}
	}
	return nil
}

// ServingPeers counts a service's other live instances that are recorded as
// running: the ones left to serve while one instance is restarted or stopped
// (name "" counts every running instance).
func (s *Store) ServingPeers(ctx context.Context, serviceID uint, name string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Instance{}).
		Where("service_id = ? AND removed_at IS NULL AND state = ? AND name <> ?", serviceID, berth.StateRunning, name).Count(&n).Error
	return int(n), err
}

// ErrLastInstance says an action would take a service's last running
// instance out of rotation; only a forced action by a release manager may.
var ErrLastInstance = errors.New("last running instance")

// CheckInstanceAction applies the rules of a restart, stop or start to a
// live instance as recorded: it must be running or stopped (not under a
// run), only a stopped one starts, a stopped one does not stop again. An
// action that would leave its service with no running instance returns an
// error wrapping ErrLastInstance, which a caller may override.
func (s *Store) CheckInstanceAction(ctx context.Context, inst *Instance, service string, action berth.RunKind) error {
	switch {
	case inst.State != berth.StateRunning && inst.State != berth.StateStopped:
		return &berth.Error{Code: berth.EConflict, Reason: "instance_busy", Message: fmt.Sprintf(
			"instance %s is %s; wait until its run ends", inst.Name, inst.State)}
	case action == berth.KindStart && inst.State != berth.StateStopped:
		return &berth.Error{Code: berth.EConflict, Reason: "not_stopped", Message: fmt.Sprintf(
			"instance %s is running; only a stopped instance can be started (restart it instead)", inst.Name)}
	case action == berth.KindStop && inst.State == berth.StateStopped:
		return &berth.Error{Code: berth.EConflict, Reason: "already_stopped", Message: fmt.Sprintf("instance %s is already stopped", inst.Name)}
	case action == berth.KindStart:
		return nil
	}
	if inst.State != berth.StateRunning {
		return nil
	}
	peers, err := s.ServingPeers(ctx, inst.ServiceID, inst.Name)
	if err != nil || peers > 0 {
		return err
	}
	return fmt.Errorf("%w: %w", ErrLastInstance, &berth.Error{Code: berth.EConflict, Reason: "last_instance", Message: fmt.Sprintf(
		"instance %s is the last running instance of %s: %s it and the service stops answering. Scale out first, or, as a release manager, send {\"force\": true}",
		inst.Name, service, action)})
}
