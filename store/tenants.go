package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// CreateTenant adds a tenant.
func (s *Store) CreateTenant(ctx context.Context, name string) (*Tenant, error) {
	t := &Tenant{Name: name}
	if err := s.db.WithContext(ctx).Create(t).Error; err != nil {
		if isDuplicate(err) {
			return nil, &ConflictError{Msg: fmt.Sprintf("tenant %q already exists", name)}
		}
		return nil, err
	}
	return t, nil
}

// TenantByName returns a tenant.
func (s *Store) TenantByName(ctx context.Context, name string) (*Tenant, error) {
	var t Tenant
	if err := s.db.WithContext(ctx).Where("name = ?", name).First(&t).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("tenant %q", name))
	}
	return &t, nil
}

// Tenants lists tenants by name.
func (s *Store) Tenants(ctx context.Context) ([]Tenant, error) {
	var ts []Tenant
	return ts, s.db.WithContext(ctx).Order("name").Find(&ts).Error
}

// CreateEnvironment adds an environment to a tenant.
func (s *Store) CreateEnvironment(ctx context.Context, tenantID uint, name string, opts ...func(*Environment)) (*Environment, error) {
	e := &Environment{TenantID: tenantID, Name: name}
	for _, o := range opts {
		o(e)
	}
	if err := s.db.WithContext(ctx).Create(e).Error; err != nil {
		if isDuplicate(err) {
			return nil, &ConflictError{Msg: fmt.Sprintf("environment %q already exists", name)}
		}
		return nil, err
	}
	return e, nil
}

// Environment returns a tenant's environment with its tenant and authorised hosts.
func (s *Store) Environment(ctx context.Context, tenant, env string) (*Environment, error) {
	t, err := s.TenantByName(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var e Environment
	err = s.db.WithContext(ctx).Preload("Hosts", func(db *gorm.DB) *gorm.DB { return db.Order("name") }).
		Where("tenant_id = ? AND name = ?", t.ID, env).First(&e).Error
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("environment %q of tenant %q", env, tenant))
	}
	e.Tenant = t
	return &e, nil
}

// Environments lists a tenant's environments.
func (s *Store) Environments(ctx context.Context, tenantID uint) ([]Environment, error) {
	var es []Environment
	err := s.db.WithContext(ctx).Preload("Hosts").Where("tenant_id = ?", tenantID).Order("name").Find(&es).Error
	return es, err
}

// AuthoriseHosts adds hosts to the set an environment may place instances on.
func (s *Store) AuthoriseHosts(ctx context.Context, envID uint, hostIDs []uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var e Environment
		if err := tx.First(&e, envID).Error; err != nil {
			return notFound(err, fmt.Sprintf("environment %d", envID))
		}
		var hosts []Host
		if err := tx.Where("id IN ?", hostIDs).Find(&hosts).Error; err != nil {
			return err
		}
		// Compare with the distinct ids: a host named twice is found once.
		distinct := map[uint]bool{}
		for _, id := range hostIDs {
			distinct[id] = true
		}
		if len(hosts) != len(distinct) {
			return fmt.Errorf("some of hosts %v: %w", hostIDs, ErrNotFound)
		}
		return tx.Model(&e).Association("Hosts").Append(hosts)
	})
}

// TenantByID returns a tenant.
func (s *Store) TenantByID(ctx context.Context, id uint) (*Tenant, error) {
	var t Tenant
	if err := s.db.WithContext(ctx).First(&t, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("tenant %d", id))
	}
	return &t, nil
}

// SetEnvironmentLimits replaces an environment's resource defaults and
// maximums. Running instances keep theirs; the next deploy, scale or release
// applies the new ones.
func (s *Store) SetEnvironmentLimits(ctx context.Context, envID uint, l berth.Limits) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var e Environment
		if err := tx.First(&e, envID).Error; err != nil {
			return notFound(err, fmt.Sprintf("environment %d", envID))
		}
		e.Limits = l
		return tx.Omit(clause.Associations).Save(&e).Error
	})
}
