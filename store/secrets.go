package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
)

// Secret is one version of a tenant's secret. Env "" makes it the tenant's
// default for every environment; a secret of the same name in an
// environment wins there. The value is sealed by the server before it gets
// here (the key is never in the database), and versions are never changed
// or deleted in place: a new value is a new version.
type Secret struct {
	ID        uint      `gorm:"primaryKey" json:"-"`
	TenantID  uint      `gorm:"uniqueIndex:ux_secret_version" json:"-"`
	Env       string    `gorm:"size:64;uniqueIndex:ux_secret_version" json:"env"`
	Name      string    `gorm:"size:64;uniqueIndex:ux_secret_version" json:"name"`
	Version   int       `gorm:"uniqueIndex:ux_secret_version" json:"version"`
	KeyID     string    `gorm:"size:32" json:"-"`
	Sealed    []byte    `gorm:"type:blob" json:"-"`
	Size      int       `json:"size"`
	CreatedBy string    `gorm:"size:64" json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

// AddSecretVersion stores the next version of a secret and returns it. Two
// writers racing for one version number both land: the loser takes the next.
func (s *Store) AddSecretVersion(ctx context.Context, sec *Secret) error {
	for attempt := 0; attempt < 5; attempt++ {
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var last int
			if err := tx.Model(&Secret{}).Where("tenant_id = ? AND env = ? AND name = ?", sec.TenantID, sec.Env, sec.Name).
				Select("COALESCE(MAX(version), 0)").Scan(&last).Error; err != nil {
				return err
			}
			sec.ID, sec.Version = 0, last+1
			return tx.Create(sec).Error
		})
		if err == nil || !isDuplicate(err) {
			return err
		}
	}
	return &ConflictError{Msg: fmt.Sprintf("secret %q is being written by others; try again", sec.Name)}
}

// Secrets lists the newest version of each of a tenant's secrets, without
// their values, by environment then name.
func (s *Store) Secrets(ctx context.Context, tenantID uint) ([]Secret, error) {
	var all []Secret
	if err := s.db.WithContext(ctx).Omit("sealed").Where("tenant_id = ?", tenantID).
		Order("env, name, version desc").Find(&all).Error; err != nil {
		return nil, err
	}
	out := []Secret{}
	for i, sec := range all {
		if i > 0 && all[i-1].Env == sec.Env && all[i-1].Name == sec.Name {
			continue
		}
		out = append(out, sec)
	}
	return out, nil
}

// SecretFor is the newest version of a secret as an environment sees it: its
// own, else the tenant's default.
func (s *Store) SecretFor(ctx context.Context, tenantID uint, env, name string) (*Secret, error) {
	var sec Secret
	err := s.db.WithContext(ctx).Where("tenant_id = ? AND env IN ? AND name = ?", tenantID, []string{env, ""}, name).
		Order("env desc, version desc").First(&sec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	return &sec, err
}

// MissingSecrets returns, sorted, the names an environment has no secret for.
func (s *Store) MissingSecrets(ctx context.Context, tenantID uint, env string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var have []string
	if err := s.db.WithContext(ctx).Model(&Secret{}).Distinct("name").
		Where("tenant_id = ? AND env IN ? AND name IN ?", tenantID, []string{env, ""}, names).Pluck("name", &have).Error; err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, n := range have {
		got[n] = true
	}
	var missing []string
	for _, n := range names {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	return missing, nil
}

// SecretAAD is what a secret's sealed value is bound to: a value copied into
// another tenant's, environment's or name's row does not open there.
func SecretAAD(tenantID uint, env, name string) []byte {
	return []byte(fmt.Sprintf("berth secret\x00%d\x00%s\x00%s", tenantID, env, name))
}
