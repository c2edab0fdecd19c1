package store

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
)

// CreateHost records a new host in state pending, creating its region if needed.
func (s *Store) CreateHost(ctx context.Context, h *Host) error {
	h.State = berth.HostPending
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where(Region{Name: h.Region}).FirstOrCreate(&Region{Name: h.Region}).Error; err != nil {
			return err
		}
		if err := tx.Create(h).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("host %q already exists", h.Name)}
			}
			return err
		}
		return nil
	})
}

// Host returns one host by id.
func (s *Store) Host(ctx context.Context, id uint) (*Host, error) {
	var h Host
	if err := s.db.WithContext(ctx).First(&h, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("host %d", id))
	}
	return &h, nil
}

// HostByName returns one host by name.
func (s *Store) HostByName(ctx context.Context, name string) (*Host, error) {
	var h Host
	if err := s.db.WithContext(ctx).Where("name = ?", name).First(&h).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("host %q", name))
	}
	return &h, nil
}

// Hosts lists every host by name.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	var hs []Host
	err := s.db.WithContext(ctx).Order("name").Find(&hs).Error
	return hs, err
}

// SetHostFacts records the outcome of a host check.
func (s *Store) SetHostFacts(ctx context.Context, id uint, f berth.HostFacts) error {
	t := now()
	set := map[string]any{
		"state": f.State, "reason": f.Reason, "engine_version": f.EngineVersion,
		"api_version": f.APIVersion, "cpus": f.CPUs, "memory_bytes": f.MemoryBytes, "checked_at": &t,
	}
	if f.State == berth.HostReady {
		set["probe_failures"] = 0
	}
	res := s.db.WithContext(ctx).Model(&Host{}).Where("id = ?", id).Updates(set)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		// MySQL counts changed rows, not matched ones: the same facts twice
		// within one millisecond change nothing, yet the host exists.
		var n int64
		if err := s.db.WithContext(ctx).Model(&Host{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("host %d: %w", id, ErrNotFound)
		}
	}
	return nil
}

// Ref returns the host's reference.
func (h Host) Ref() berth.HostRef {
	return berth.HostRef{ID: h.ID, Name: h.Name, Region: h.Region, Endpoint: h.Endpoint, IP: h.IP,
		VolumeRoot: h.VolumeRoot, TLSCA: h.TLSCA, TLSCert: h.TLSCert, TLSKey: h.TLSKey}
}
