package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Regions lists the regions, by name.
func (s *Store) Regions(ctx context.Context) ([]Region, error) {
	var rs []Region
	return rs, s.db.WithContext(ctx).Order("name").Find(&rs).Error
}

// SetRegionLB records where a region's load balancer takes clients,
// creating the region when no host has named it yet, so an operator can
// set a region up before its first host. Pools made before keep their
// address; new ones are allocated from the new window.
func (s *Store) SetRegionLB(ctx context.Context, name, listenIP string, portMin, portMax int) (*Region, error) {
	r := Region{Name: name, LBListenIP: listenIP, LBPortMin: portMin, LBPortMax: portMax}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"lb_listen_ip", "lb_port_min", "lb_port_max"})}).Create(&r).Error; err != nil {
			return err
		}
		return tx.Where("name = ?", name).First(&r).Error
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}
