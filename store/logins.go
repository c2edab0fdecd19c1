package store

import (
	"context"
	"time"
)

// LoginFailure is one failed sign-in, counted under a key (a hash of the
// user name and address, or of the address alone). It lives in the
// database so that every API replica counts the same failures.
type LoginFailure struct {
	ID       uint      `gorm:"primaryKey"`
	LoginKey string    `gorm:"size:64;index:ix_login_failures_key_at,priority:1"`
	At       time.Time `gorm:"index:ix_login_failures_key_at,priority:2;index"`
}

// LoginFailures returns the newest failures of key after since, at most
// limit of them, oldest first.
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time, limit int) ([]time.Time, error) {
	var rows []LoginFailure
	if err := s.db.WithContext(ctx).Where("login_key = ? AND at > ?", key, since.UTC()).
		Order("at DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]time.Time, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = r.At
	}
	return out, nil
}

// AddLoginFailures counts a failure at at under each key, and forgets every
// failure of any key from before expired, so the table holds only the
// window's failures.
func (s *Store) AddLoginFailures(ctx context.Context, at, expired time.Time, keys ...string) error {
	if err := s.db.WithContext(ctx).Where("at <= ?", expired.UTC()).Delete(&LoginFailure{}).Error; err != nil {
		return err
	}
	rows := make([]LoginFailure, len(keys))
	for i, k := range keys {
		rows[i] = LoginFailure{LoginKey: k, At: at.UTC()}
	}
	return s.db.WithContext(ctx).Create(&rows).Error
}

// ClearLoginFailures forgets key's failures (a sign-in that succeeded).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	return s.db.WithContext(ctx).Where("login_key = ?", key).Delete(&LoginFailure{}).Error
}
