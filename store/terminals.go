package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth"
)

// TerminalSession is one interactive session in an instance, kept for the
// audit: who, where, when, what was typed (up to berth.TranscriptMax
// bytes), and how it ended.
type TerminalSession struct {
	ID       string `gorm:"primaryKey;size:32" json:"id"`
	User     string `gorm:"size:64;index" json:"user"`
	TenantID uint   `gorm:"index" json:"tenantId"`
	// Subject is tenant/env/app/service/instance.
	Subject  string `gorm:"size:191" json:"subject"`
	Instance string `gorm:"size:191;index" json:"instance"`
	Host     string `gorm:"size:64" json:"host"`
	Command  string `gorm:"type:text" json:"command"`
	// Transcript is what the person typed, as sent; Truncated says the cap cut it.
	Transcript string     `gorm:"type:mediumtext" json:"transcript"`
	Truncated  bool       `json:"truncated,omitempty"`
	ExitCode   *int       `json:"exitCode,omitempty"`
	EndReason  string     `gorm:"size:255" json:"endReason,omitempty"`
	StartedAt  time.Time  `gorm:"index" json:"startedAt"`
	EndedAt    *time.Time `json:"endedAt,omitempty"`
}

// CreateTerminalSession records a session as it opens.
func (s *Store) CreateTerminalSession(ctx context.Context, ts *TerminalSession) error {
	ts.StartedAt = now()
	return s.db.WithContext(ctx).Create(ts).Error
}

// EndTerminalSession records how a session ended and what was typed.
func (s *Store) EndTerminalSession(ctx context.Context, id string, transcript []byte, truncated bool, exit *int, reason string) error {
	t := now()
	res := s.db.WithContext(ctx).Model(&TerminalSession{}).Where("id = ? AND ended_at IS NULL", id).Updates(map[string]any{
		"transcript": string(transcript), "truncated": truncated, "exit_code": exit, "end_reason": reason, "ended_at": &t})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("terminal session %s: %w", id, ErrNotFound)
	}
	return nil
}

// TerminalSessions lists sessions, newest first, of some tenants (nil: all)
// and, when set, one instance.
func (s *Store) TerminalSessions(ctx context.Context, tenantIDs []uint, instance string, limit int) ([]TerminalSession, error) {
	q := s.db.WithContext(ctx).Order("started_at DESC")
	if tenantIDs != nil {
		q = q.Where("tenant_id IN ?", append(tenantIDs, 0))
	}
	if instance != "" {
		q = q.Where("instance = ?", instance)
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var out []TerminalSession
	return out, q.Limit(limit).Find(&out).Error
}

// TerminalSession returns one session.
func (s *Store) TerminalSession(ctx context.Context, id string) (*TerminalSession, error) {
	var ts TerminalSession
	if err := s.db.WithContext(ctx).First(&ts, "id = ?", id).Error; err != nil {
		return nil, notFound(err, "terminal session "+id)
	}
	return &ts, nil
}

// TerminalAccessInput is a terminal access request as kept on its run.
type TerminalAccessInput struct {
	Minutes int    `json:"minutes"`
	Reason  string `json:"reason"`
}

// TerminalGrant says until when a person may open terminals into a
// service (subject tenant/env/app/service) by an approved access request:
// the newest approved one, from its approval for its minutes. None, or one
// that has run out, is nil.
func (s *Store) TerminalGrant(ctx context.Context, user, subject string) (*time.Time, error) {
	var r Run
	err := s.db.WithContext(ctx).Where("kind = ? AND started_by = ? AND subject = ? AND status = ? AND finished_at IS NOT NULL",
		berth.KindTerminalAccess, user, subject, berth.RunSucceeded).Order("finished_at DESC").First(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var in TerminalAccessInput
	if err := json.Unmarshal([]byte(r.Input), &in); err != nil {
		return nil, fmt.Errorf("terminal access run %d: %w", r.ID, err)
	}
	until := r.FinishedAt.Add(time.Duration(in.Minutes) * time.Minute)
	if !until.After(now()) {
		return nil, nil
	}
	return &until, nil
}

// SaveTranscript keeps what has been typed so far in an open session, so a
// server that dies mid-session loses at most the last few seconds of it.
func (s *Store) SaveTranscript(ctx context.Context, id string, transcript []byte, truncated bool) error {
	return s.db.WithContext(ctx).Model(&TerminalSession{}).Where("id = ? AND ended_at IS NULL", id).
		Updates(map[string]any{"transcript": string(transcript), "truncated": truncated}).Error
}

// OpenTerminalSessions lists the sessions that began before cutoff and have
// not ended.
func (s *Store) OpenTerminalSessions(ctx context.Context, before time.Time) ([]string, error) {
	ids := []string{}
	err := s.db.WithContext(ctx).Model(&TerminalSession{}).Where("ended_at IS NULL AND started_at < ?", before).
		Order("started_at").Pluck("id", &ids).Error
	return ids, err
}

// AbandonTerminalSession ends a session whose server stopped relaying it,
// keeping the transcript saved so far.
func (s *Store) AbandonTerminalSession(ctx context.Context, id, reason string) error {
	t := now()
	return s.db.WithContext(ctx).Model(&TerminalSession{}).Where("id = ? AND ended_at IS NULL", id).
		Updates(map[string]any{"end_reason": reason, "ended_at": &t}).Error
}
