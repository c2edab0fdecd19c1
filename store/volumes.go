package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// VolumeMeasure is the last measurement of one named volume on a host,
// written by the disk pass.
type VolumeMeasure struct {
	ID     uint   `gorm:"primaryKey" json:"-"`
	HostID uint   `gorm:"uniqueIndex:ux_volume_host_name" json:"-"`
	Name   string `gorm:"size:255;uniqueIndex:ux_volume_host_name" json:"name"`
	Tenant string `gorm:"size:64;index" json:"tenant"`
	Env    string `gorm:"size:64" json:"env"`
	App    string `gorm:"size:64" json:"app"`
	// SizeBytes is the declared size; UsedBytes what it held (-1: unknown).
	SizeBytes int64 `json:"sizeBytes"`
	UsedBytes int64 `json:"usedBytes"`
	// Over is set while it holds more than its size, so that is said once.
	Over       bool      `json:"over"`
	MeasuredAt time.Time `json:"measuredAt"`
}

// RecordVolumeUse replaces a host's volume measurements with a new pass's
// and returns the volumes that went over their size since the last one.
// Volumes no longer on the host are forgotten.
func (s *Store) RecordVolumeUse(ctx context.Context, hostID uint, uses []berth.VolumeUse, at time.Time) ([]berth.VolumeUse, error) {
	var newlyOver []berth.VolumeUse
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		newlyOver = nil
		var old []VolumeMeasure
		if err := tx.Where("host_id = ?", hostID).Find(&old).Error; err != nil {
			return err
		}
		wasOver := map[string]bool{}
		for _, m := range old {
			wasOver[m.Name] = m.Over
		}
		names := []string{""}
		for _, u := range uses {
			names = append(names, u.Name)
			over := u.SizeBytes > 0 && u.UsedBytes > u.SizeBytes
			if over && !wasOver[u.Name] {
				newlyOver = append(newlyOver, u)
			}
			m := VolumeMeasure{HostID: hostID, Name: u.Name, Tenant: u.Tenant, Env: u.Env, App: u.App,
				SizeBytes: u.SizeBytes, UsedBytes: u.UsedBytes, Over: over, MeasuredAt: at.UTC()}
			if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "host_id"}, {Name: "name"}},
				DoUpdates: clause.AssignmentColumns([]string{"tenant", "env", "app", "size_bytes", "used_bytes", "over", "measured_at"})}).
				Create(&m).Error; err != nil {
				return err
			}
		}
		return tx.Where("host_id = ? AND name NOT IN ?", hostID, names).Delete(&VolumeMeasure{}).Error
	})
	return newlyOver, err
}

// measuredVolumeBytes sums what a tenant's volumes (or one environment's,
// when env is not empty) held when last measured.
func measuredVolumeBytes(db *gorm.DB, tenant, env string) (int64, error) {
	var n int64
	q := db.Model(&VolumeMeasure{}).Where("tenant = ? AND used_bytes > 0", tenant)
	if env != "" {
		q = q.Where("env = ?", env)
	}
	err := q.Select("COALESCE(SUM(used_bytes),0)").Scan(&n).Error
	return n, err
}
