package store

import (
	"context"
	"fmt"
	"time"
)

// AuditFilter selects audit events; fields match exactly and Sort is one of
// the keys of AuditSorts.
type AuditFilter struct {
	Actor         string
	Action        string
	Since, Until  *time.Time
	Sort          string
	Limit, Offset int
}

// AuditSorts maps the sort keys users may ask for to SQL; nothing else reaches ORDER BY.
var AuditSorts = map[string]string{
	"":       "id desc",
	"-at":    "id desc",
	"at":     "id asc",
	"actor":  "actor asc, id desc",
	"action": "action asc, id desc",
}

// QueryAudit lists audit events matching a filter, newest first by default,
// with the total count.
func (s *Store) QueryAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, int64, error) {
	order, ok := AuditSorts[f.Sort]
	if !ok {
		return nil, 0, fmt.Errorf("sort %q is not allowed", f.Sort)
	}
	q := s.db.WithContext(ctx).Model(&AuditEvent{})
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Since != nil {
		q = q.Where("at >= ?", *f.Since)
	}
	if f.Until != nil {
		q = q.Where("at < ?", *f.Until)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 200
	}
	evs := []AuditEvent{}
	err := q.Order(order).Limit(f.Limit).Offset(f.Offset).Find(&evs).Error
	return evs, total, err
}
