package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// Incident is something that went wrong and is told to the ticket system:
// one row per condition (its key), opened again (a new epoch, so a new
// ticket) when it comes back after it was resolved. Version counts its
// changes and SentVersion the last one delivered, so the delivery pass
// sends each change once, the newest state only, and a ticket system that
// is down delays tickets but loses none.
type Incident struct {
	ID          uint                `gorm:"primaryKey" json:"id"`
	Key         string              `gorm:"column:incident_key;size:191;uniqueIndex" json:"key"`
	Kind        berth.IncidentKind  `gorm:"size:32;index" json:"kind"`
	Subject     string              `gorm:"size:191;index" json:"subject"`
	State       berth.IncidentState `gorm:"size:16;index" json:"state"`
	Severity    string              `gorm:"size:16" json:"severity"`
	Title       string              `gorm:"size:255" json:"title"`
	Detail      string              `gorm:"type:text" json:"detail,omitempty"`
	Resolution  string              `gorm:"type:text" json:"resolution,omitempty"`
	Link        string              `gorm:"size:255" json:"link,omitempty"`
	Labels      string              `gorm:"type:text" json:"-"`
	Occurrences int                 `json:"occurrences"`
	Epoch       int                 `json:"epoch"`
	Version     int                 `json:"version"`
	SentVersion int                 `json:"sentVersion"`
	// SentEpoch and SentState are what the ticket system was last told,
	// so a ticket opened in an earlier epoch is resolved before the next.
	SentEpoch     int                 `json:"sentEpoch"`
	SentState     berth.IncidentState `gorm:"size:16" json:"sentState,omitempty"`
	Attempts      int                 `json:"attempts"`
	NextAttemptAt *time.Time          `gorm:"index" json:"nextAttemptAt,omitempty"`
	LastError     string              `gorm:"type:text" json:"lastError,omitempty"`
	OpenedAt      time.Time           `json:"openedAt"`
	ResolvedAt    *time.Time          `json:"resolvedAt,omitempty"`
	UpdatedAt     time.Time           `json:"updatedAt"`
}

// TicketKey is the key of the incident's current ticket.
func (i *Incident) TicketKey() string { return fmt.Sprintf("%s#%d", i.Key, i.Epoch) }

// raise is one occurrence of an incident.
type raise struct {
	key, subject, severity, title, detail, link string
	kind                                        berth.IncidentKind
	labels                                      map[string]string
}

// raiseTx opens the incident, or counts one more occurrence of it when it
// is open. The row is made first if missing (doing nothing on a race) and
// then locked, so two raises at once count two occurrences in one ticket.
func raiseTx(tx *gorm.DB, r raise) error {
	r.key, r.subject = incidentKey(r.key), clip(r.subject, 191)
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Incident{Key: r.key, Kind: r.kind, Subject: r.subject,
		State: berth.IncidentResolved, OpenedAt: now()}).Error; err != nil {
		return err
	}
	var in Incident
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("incident_key = ?", r.key).First(&in).Error; err != nil {
		return err
	}
	labels := ""
	if len(r.labels) > 0 {
		b, _ := json.Marshal(r.labels)
		labels = string(b)
	}
	up := map[string]any{"kind": r.kind, "subject": r.subject, "severity": r.severity, "title": clip(r.title, 255), "detail": r.detail,
		"link": clip(r.link, 255), "labels": labels, "version": in.Version + 1}
	if in.State == berth.IncidentOpen {
		up["occurrences"] = in.Occurrences + 1
	} else {
		t := now()
		up["state"], up["epoch"], up["occurrences"], up["opened_at"], up["resolved_at"], up["resolution"] = berth.IncidentOpen, in.Epoch+1, 1, t, nil, ""
		up["attempts"], up["next_attempt_at"], up["last_error"] = 0, nil, ""
	}
	return tx.Model(&Incident{}).Where("id = ?", in.ID).Updates(up).Error
}

// incidentKey keeps a key within its column: a long one (an instance's
// subject is up to about 200 bytes) keeps its start and gains a hash of
// the whole, so two long keys never meet.
func incidentKey(k string) string {
	if len(k) <= 191 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return k[:158] + "~" + hex.EncodeToString(sum[:16])
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// clearTx resolves the open incidents q selects, saying why.
func clearTx(tx *gorm.DB, q *gorm.DB, note string) error {
	var open []Incident
	if err := q.Clauses(clause.Locking{Strength: "UPDATE"}).Where("state = ?", berth.IncidentOpen).Find(&open).Error; err != nil {
		return err
	}
	t := now()
	for _, in := range open {
		if err := tx.Model(&Incident{}).Where("id = ?", in.ID).Updates(map[string]any{"state": berth.IncidentResolved,
			"resolved_at": &t, "resolution": note, "version": in.Version + 1, "attempts": 0, "next_attempt_at": nil}).Error; err != nil {
			return err
		}
	}
	return nil
}

// runFamily groups run kinds whose success clears each other's failure: a
// good release clears a failed rollback of the same service, a good
// deploy a failed update of the same application.
func runFamily(k berth.RunKind) string {
	switch k {
	case berth.KindDeploy, berth.KindUpdate, berth.KindDelete:
		return "app"
	case berth.KindRelease, berth.KindRollback, berth.KindGreyRelease, berth.KindCommit:
		return "release"
	case berth.KindRestart, berth.KindStop, berth.KindStart:
		return "instance"
	case berth.KindHeal, berth.KindEvacuate:
		return "heal"
	}
	return string(k)
}

// firewallTicketStep is the step a run waits in for a firewall change request.
const firewallTicketStep = "firewall ticket"

// runIncidentsTx raises or clears the incidents a run's end says something
// about: a failure raises one per subject and family (and one for a
// firewall ticket that ran out); a success clears those of its family, and
// the timed-out approvals, expired tickets and given-up heals, on its
// subject and below.
func runIncidentsTx(tx *gorm.DB, id uint, status berth.RunStatus) error {
	var run Run
	if err := tx.Select("id", "kind", "subject", "environment_id", "error").First(&run, id).Error; err != nil {
		return err
	}
	if run.Subject == "" || run.Kind == berth.KindTerminalAccess {
		return nil
	}
	family := runFamily(run.Kind)
	switch status {
	case berth.RunFailed:
		sev := berth.SeverityMajor
		if run.EnvironmentID != 0 {
			var env Environment
			if err := tx.Select("id", "prod").First(&env, run.EnvironmentID).Error; err == nil && env.Prod {
				sev = berth.SeverityCritical
			}
		}
		link := fmt.Sprintf("/runs/%d", run.ID)
		if err := raiseTx(tx, raise{key: "run-failed/" + family + ":" + run.Subject, kind: berth.IncidentRunFailed, subject: run.Subject,
			severity: sev, title: fmt.Sprintf("%s of %s failed", run.Kind, run.Subject), detail: run.Error, link: link,
			labels: map[string]string{"run": fmt.Sprint(run.ID), "kind": string(run.Kind)}}); err != nil {
			return err
		}
		var st Step
		err := tx.Where("run_id = ? AND name = ? AND state = ?", run.ID, firewallTicketStep, berth.StepFailed).First(&st).Error
		if err == nil && st.Detail != "cancelled" && st.Error != "cancelled" {
			return raiseTx(tx, raise{key: "firewall-ticket-expired:" + run.Subject, kind: berth.IncidentFirewallTicket, subject: run.Subject,
				severity: berth.SeverityMinor, title: "firewall change request for " + run.Subject + " was not confirmed in time",
				detail: strings.TrimSpace(st.Detail + " " + st.Error), link: link})
		}
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		return nil
	case berth.RunSucceeded:
		subject := clip(run.Subject, 191)
		q := tx.Model(&Incident{}).Where("(subject = ? OR subject LIKE ?)", subject, subject+"/%").
			Where("((kind = ? AND incident_key LIKE ?) OR kind IN ?)", berth.IncidentRunFailed, "run-failed/"+family+":%",
				[]berth.IncidentKind{berth.IncidentApprovalTimeout, berth.IncidentFirewallTicket, berth.IncidentHealGaveUp})
		return clearTx(tx, q, fmt.Sprintf("run %d (%s of %s) succeeded", run.ID, run.Kind, run.Subject))
	}
	return nil
}

// approvalTimeoutTx raises the incident of an approval nobody decided.
func approvalTimeoutTx(tx *gorm.DB, a *Approval) error {
	var run Run
	if err := tx.Select("id", "subject").First(&run, a.RunID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil // no run to name: nothing a ticket could point at
		}
		return err
	}
	return raiseTx(tx, raise{key: "approval-timeout:" + run.Subject, kind: berth.IncidentApprovalTimeout, subject: run.Subject,
		severity: berth.SeverityMinor, title: fmt.Sprintf("approval %d of %s timed out", a.ID, run.Subject),
		detail: fmt.Sprintf("nobody decided approval %d in time; its run followed the %s policy", a.ID, a.OnTimeout),
		link:   fmt.Sprintf("/runs/%d", run.ID)})
}

// findingIncidentsTx raises or clears what a pass's finding says: a host
// down, a host back, a heal given up.
func findingIncidentsTx(tx *gorm.DB, f berth.Finding) error {
	switch f.Kind {
	case berth.FindingHostDown:
		if f.Error != "" {
			return nil
		}
		return raiseTx(tx, raise{key: "host-down:" + f.Host, kind: berth.IncidentHostDown, subject: "host/" + f.Host,
			severity: berth.SeverityCritical, title: "host " + f.Host + " is down", detail: f.Detail, link: "/hosts"})
	case berth.FindingHostBack:
		return clearTx(tx, tx.Model(&Incident{}).Where("incident_key = ?", incidentKey("host-down:"+f.Host)), "host "+f.Host+" answers again: "+f.Detail)
	case berth.FindingHealGaveUp:
		subject := f.Target
		if !strings.Contains(subject, "/") {
			var in Instance
			if err := tx.Select("id", "service_id", "name").Where("name = ?", f.Target).First(&in).Error; err != nil {
				return nil // gone since: nothing left to tell
			}
			sc, err := serviceContextTx(tx, in.ServiceID)
			if err != nil {
				return err
			}
			subject = serviceSubjectOf(sc) + "/" + in.Name
		}
		return raiseTx(tx, raise{key: "heal-gave-up:" + subject, kind: berth.IncidentHealGaveUp, subject: subject,
			severity: berth.SeverityMajor, title: "self-healing gave up on " + subject, detail: f.Detail})
	}
	return nil
}

func serviceSubjectOf(sc *ServiceContext) string {
	return sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name + "/" + sc.Service.Name
}

// RecordAlerts opens an incident for each firing alert and resolves the
// incident of each resolved one; an alert is known by its fingerprint.
func (s *Store) RecordAlerts(ctx context.Context, alerts []berth.AlertNotice) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, a := range alerts {
			key := incidentKey("alert:" + a.Fingerprint)
			if !a.Firing {
				if err := clearTx(tx, tx.Model(&Incident{}).Where("incident_key = ?", key), "Alertmanager says the alert is resolved"); err != nil {
					return err
				}
				continue
			}
			var in Incident
			err := tx.Where("incident_key = ? AND state = ?", key, berth.IncidentOpen).First(&in).Error
			if err == nil {
				continue // Alertmanager repeats a firing alert; it is one occurrence
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
			if err := raiseTx(tx, raise{key: key, kind: berth.IncidentAlert, subject: "alert/" + a.Labels["alertname"], severity: a.Severity,
				title: a.Title, detail: a.Detail, link: a.Link, labels: a.Labels}); err != nil {
				return err
			}
		}
		return nil
	})
}

// IncidentFilter selects incidents for a list.
type IncidentFilter struct {
	State berth.IncidentState
	Kind  berth.IncidentKind
	Limit int
}

// Incidents lists incidents, newest change first.
func (s *Store) Incidents(ctx context.Context, f IncidentFilter) ([]Incident, error) {
	q := s.db.WithContext(ctx).Where("epoch > 0").Order("updated_at DESC, id DESC")
	if f.State != "" {
		q = q.Where("state = ?", f.State)
	}
	if f.Kind != "" {
		q = q.Where("kind = ?", f.Kind)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 500
	}
	var out []Incident
	return out, q.Limit(f.Limit).Find(&out).Error
}

// PendingIncidents lists incidents with a change not yet delivered whose
// next attempt is due, oldest first.
func (s *Store) PendingIncidents(ctx context.Context, limit int) ([]berth.IncidentNotice, error) {
	var rows []Incident
	err := s.db.WithContext(ctx).Where("epoch > 0 AND version > sent_version AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", now()).
		Order("id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make([]berth.IncidentNotice, 0, len(rows))
	for _, in := range rows {
		n := berth.IncidentNotice{ID: in.ID, TicketKey: in.TicketKey(), Kind: in.Kind, State: in.State, Severity: in.Severity,
			Subject: in.Subject, Title: in.Title, Detail: in.Detail, Link: in.Link, Occurrences: in.Occurrences,
			OpenedAt: in.OpenedAt, ResolvedAt: in.ResolvedAt, Version: in.Version}
		if in.State == berth.IncidentResolved && in.Resolution != "" {
			n.Detail = in.Resolution
		}
		if in.Labels != "" {
			_ = json.Unmarshal([]byte(in.Labels), &n.Labels)
		}
		if in.SentEpoch > 0 && in.SentEpoch < in.Epoch && in.SentState == berth.IncidentOpen {
			n.ResolveFirst = fmt.Sprintf("%s#%d", in.Key, in.SentEpoch)
		}
		out = append(out, n)
	}
	return out, nil
}

// MarkIncidentSent records that the ticket system was told of a change;
// a later change (a higher version) is still to be sent.
func (s *Store) MarkIncidentSent(ctx context.Context, n berth.IncidentNotice) error {
	epoch := 0
	if i := strings.LastIndexByte(n.TicketKey, '#'); i >= 0 {
		_, _ = fmt.Sscan(n.TicketKey[i+1:], &epoch)
	}
	return s.db.WithContext(ctx).Model(&Incident{}).Where("id = ? AND sent_version < ?", n.ID, n.Version).Updates(map[string]any{
		"sent_version": n.Version, "sent_epoch": epoch, "sent_state": n.State, "attempts": 0, "next_attempt_at": nil, "last_error": ""}).Error
}

// maxDeliveryBackoff caps the wait between attempts to tell a ticket
// system that keeps failing.
const maxDeliveryBackoff = 5 * time.Minute

// MarkIncidentFailed records a failed delivery and when to try again: one
// second, doubling with each failure, up to five minutes.
func (s *Store) MarkIncidentFailed(ctx context.Context, id uint, errMsg string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var in Incident
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "attempts").First(&in, id).Error; err != nil {
			return notFound(err, fmt.Sprintf("incident %d", id))
		}
		wait := maxDeliveryBackoff
		if in.Attempts < 9 {
			wait = min(time.Second<<in.Attempts, maxDeliveryBackoff)
		}
		next := now().Add(wait)
		return tx.Model(&Incident{}).Where("id = ?", id).Updates(map[string]any{"attempts": in.Attempts + 1,
			"next_attempt_at": &next, "last_error": clip(errMsg, 2000)}).Error
	})
}
