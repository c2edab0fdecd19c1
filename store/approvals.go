package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Approval is one step of a run that waits for people. The server decides it
// here, atomically, before it tells the workflow: the database, not the order
// of signals, says which decision won.
type Approval struct {
	ID            uint   `gorm:"primaryKey" json:"id"`
	RunID         uint   `gorm:"uniqueIndex:ux_approval_run_step" json:"runId"`
	Step          string `gorm:"size:128;uniqueIndex:ux_approval_run_step" json:"step"`
	TenantID      uint   `gorm:"index" json:"tenantId"`
	EnvironmentID uint   `json:"environmentId,omitempty"`
	WorkflowID    string `gorm:"size:191" json:"workflowId"`
	// Roles is stored as ",a,b," so that a role can be matched with LIKE.
	Roles          string              `gorm:"size:191" json:"-"`
	RoleList       []berth.Role        `gorm:"-" json:"roles"`
	Quorum         int                 `json:"quorum"`
	SeparateDuties bool                `json:"separateDuties"`
	RequireComment bool                `json:"requireComment"`
	StartedBy      string              `gorm:"size:64" json:"startedBy"`
	State          berth.ApprovalState `gorm:"size:16;index" json:"state"`
	Summary        string              `gorm:"type:text" json:"summary,omitempty"`
	OnTimeout      berth.OnTimeout     `gorm:"size:16" json:"onTimeout,omitempty"`
	DeadlineAt     *time.Time          `json:"deadlineAt,omitempty"`
	EscalatedAt    *time.Time          `json:"escalatedAt,omitempty"`
	CreatedAt      time.Time           `json:"createdAt"`
	DecidedAt      *time.Time          `json:"decidedAt,omitempty"`
	Decisions      []Decision          `gorm:"foreignKey:ApprovalID" json:"decisions"`
}

// Decision is one person's approve or reject. Rows are only ever inserted;
// one per approver and approval.
type Decision struct {
	ID         uint          `gorm:"primaryKey" json:"-"`
	ApprovalID uint          `gorm:"uniqueIndex:ux_decision_approval_approver" json:"approvalId"`
	Approver   string        `gorm:"size:64;uniqueIndex:ux_decision_approval_approver" json:"approver"`
	Decision   berth.Verdict `gorm:"size:16" json:"decision"`
	Comment    string        `gorm:"type:text" json:"comment,omitempty"`
	At         time.Time     `json:"at"`
}

// Open says people may still decide.
func (a *Approval) Open() bool {
	return a.State == berth.ApprovalPending || a.State == berth.ApprovalEscalated
}

// Approvals counts the approve decisions.
func (a *Approval) Approvals() int {
	n := 0
	for _, d := range a.Decisions {
		if d.Decision == berth.DecisionApprove {
			n++
		}
	}
	return n
}

// Allows says whether role may decide this approval.
func (a *Approval) Allows(role berth.Role) bool {
	return strings.Contains(a.Roles, ","+string(role)+",")
}

func joinRoles(rs []berth.Role) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	return "," + strings.Join(names, ",") + ","
}

func (a *Approval) fill() {
	a.RoleList = []berth.Role{}
	for _, r := range strings.Split(a.Roles, ",") {
		if r != "" {
			a.RoleList = append(a.RoleList, berth.Role(r))
		}
	}
	if a.Decisions == nil {
		a.Decisions = []Decision{}
	}
}

// CreateApproval records an approval step; it is idempotent per run and
// step, so a retried workflow activity finds the record it made before.
func (s *Store) CreateApproval(ctx context.Context, a *Approval) (*Approval, error) {
	if len(a.RoleList) == 0 {
		return nil, &InvalidError{Msg: "an approval needs at least one role"}
	}
	for _, r := range a.RoleList {
		if !berth.IsRole(string(r)) {
			return nil, &InvalidError{Msg: fmt.Sprintf("role %q is not a role", r)}
		}
	}
	if a.Quorum < 1 {
		a.Quorum = 1
	}
	a.Roles, a.State = joinRoles(a.RoleList), berth.ApprovalPending
	err := s.db.WithContext(ctx).Omit("Decisions").Create(a).Error
	if err != nil && !isDuplicate(err) {
		return nil, err
	}
	var got Approval
	if err := s.db.WithContext(ctx).Preload("Decisions", orderByID).Where("run_id = ? AND step = ?", a.RunID, a.Step).First(&got).Error; err != nil {
		return nil, err
	}
	got.fill()
	return &got, nil
}

func orderByID(db *gorm.DB) *gorm.DB { return db.Order("id") }

// Approval returns one approval with its decisions.
func (s *Store) Approval(ctx context.Context, id uint) (*Approval, error) {
	var a Approval
	if err := s.db.WithContext(ctx).Preload("Decisions", orderByID).First(&a, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("approval %d", id))
	}
	a.fill()
	return &a, nil
}

// RunApprovals returns a run's approvals, oldest first.
func (s *Store) RunApprovals(ctx context.Context, runID uint) ([]Approval, error) {
	var as []Approval
	if err := s.db.WithContext(ctx).Preload("Decisions", orderByID).Where("run_id = ?", runID).Order("id").Find(&as).Error; err != nil {
		return nil, err
	}
	for i := range as {
		as[i].fill()
	}
	return as, nil
}

// DecideInput is one person's decision. Approver and Bindings come from the
// caller's session or token, never from the request body.
type DecideInput struct {
	ApprovalID uint
	Approver   string
	Bindings   []RoleBinding
	Decision   berth.Verdict
	Comment    string
}

// Decide records a decision and, when it settles the approval (a reject, or
// the quorum's last approve), closes it. Everything happens in one
// transaction on the locked approval row, so two people pressing at once,
// or one person pressing twice, yield exactly one outcome. It reports
// whether this decision closed the approval.
func (s *Store) Decide(ctx context.Context, in DecideInput) (*Approval, bool, error) {
	if in.Decision != berth.DecisionApprove && in.Decision != berth.DecisionReject {
		return nil, false, &InvalidError{Msg: "decision must be approve or reject"}
	}
	in.Comment = strings.TrimSpace(in.Comment)
	if len(in.Comment) > 4000 {
		return nil, false, &InvalidError{Msg: "comment must be at most 4000 characters"}
	}
	var out Approval
	closed := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var a Approval
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&a, in.ApprovalID).Error; err != nil {
			return notFound(err, fmt.Sprintf("approval %d", in.ApprovalID))
		}
		if err := tx.Where("approval_id = ?", a.ID).Order("id").Find(&a.Decisions).Error; err != nil {
			return err
		}
		if !a.Open() {
			return &ConflictError{Msg: closedMessage(&a), Existing: &a}
		}
		if !mayDecide(&a, in.Bindings) {
			return &DeniedError{Msg: fmt.Sprintf("only %s may decide approval %d; you hold none of these roles on its tenant",
				strings.Join(strings.Split(strings.Trim(a.Roles, ","), ","), " or "), a.ID)}
		}
		if a.SeparateDuties && in.Approver == a.StartedBy {
			return &DeniedError{Msg: fmt.Sprintf("you started run %d, so you may not decide its approval: separation of duties needs someone else", a.RunID)}
		}
		if a.RequireComment && in.Comment == "" {
			return &InvalidError{Msg: "a comment is required to decide approvals in this environment", Code: "comment_required"}
		}
		for _, d := range a.Decisions {
			if d.Approver == in.Approver {
				return &ConflictError{Msg: fmt.Sprintf("you already decided (%s) approval %d; it waits for %d more approval(s)",
					d.Decision, a.ID, a.Quorum-a.Approvals()), Existing: &a}
			}
		}
		d := Decision{ApprovalID: a.ID, Approver: in.Approver, Decision: in.Decision, Comment: in.Comment, At: now()}
		if err := tx.Create(&d).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("you already decided approval %d", a.ID)}
			}
			return err
		}
		a.Decisions = append(a.Decisions, d)
		var next berth.ApprovalState
		switch {
		case in.Decision == berth.DecisionReject:
			next = berth.ApprovalRejected
		case a.Approvals() >= a.Quorum:
			next = berth.ApprovalApproved
		}
		if next != "" {
			t := d.At
			res := tx.Model(&Approval{}).Where("id = ? AND state IN ?", a.ID, openApprovalStates).
				Updates(map[string]any{"state": next, "decided_at": &t})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return &ConflictError{Msg: fmt.Sprintf("approval %d was decided meanwhile", a.ID)}
			}
			a.State, a.DecidedAt, closed = next, &t, true
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	out.fill()
	return &out, closed, nil
}

func mayDecide(a *Approval, bs []RoleBinding) bool {
	for _, b := range bs {
		if (b.TenantID == 0 || b.TenantID == a.TenantID) && a.Allows(b.Role) {
			return true
		}
	}
	return false
}

func closedMessage(a *Approval) string {
	switch a.State {
	case berth.ApprovalApproved, berth.ApprovalRejected:

		by := []string{}
		for _, d := range a.Decisions {
			by = append(by, d.Approver)
		}
		return fmt.Sprintf("approval %d is already %s (by %s)", a.ID, a.State, strings.Join(by, ", "))
	case berth.ApprovalTimedOut:
		return fmt.Sprintf("approval %d timed out; its run followed the %s policy", a.ID, a.OnTimeout)
	default:
		return fmt.Sprintf("approval %d is %s", a.ID, a.State)
	}
}

// ExpireApproval applies a timeout: with escalate (and not yet escalated)
// the approval stays open for escalateTo's roles; otherwise it times out. A
// decision that committed first wins, and the approval is returned as it
// stands either way, so the workflow follows what the database says.
func (s *Store) ExpireApproval(ctx context.Context, id uint, escalateTo []berth.Role) (*Approval, error) {
	var out Approval
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var a Approval
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&a, id).Error; err != nil {
			return notFound(err, fmt.Sprintf("approval %d", id))
		}
		if a.Open() {
			t := now()
			upd := map[string]any{"state": berth.ApprovalTimedOut, "decided_at": &t}
			if len(escalateTo) > 0 && a.State == berth.ApprovalPending {
				upd = map[string]any{"state": berth.ApprovalEscalated, "roles": joinRoles(escalateTo), "escalated_at": &t}
			}
			if err := tx.Model(&Approval{}).Where("id = ?", a.ID).Updates(upd).Error; err != nil {
				return err
			}
			if upd["state"] == berth.ApprovalTimedOut {
				if err := approvalTimeoutTx(tx, &a); err != nil {
					return err
				}
			}
		}
		if err := tx.Preload("Decisions", orderByID).First(&out, id).Error; err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.fill()
	return &out, nil
}

// CancelApproval closes an open approval whose run was cancelled, so it
// leaves every inbox.
func (s *Store) CancelApproval(ctx context.Context, id uint) error {
	t := now()
	return s.db.WithContext(ctx).Model(&Approval{}).Where("id = ? AND state IN ?", id, openApprovalStates).
		Updates(map[string]any{"state": berth.ApprovalCancelled, "decided_at": &t}).Error
}

// ApprovalFilter selects approvals for a list.
type ApprovalFilter struct {
	// DecidableBy, when set, keeps the open approvals this user may decide
	// now: one of its roles on the approval's tenant, not yet decided by
	// them, and not their own run where duties are separated.
	DecidableBy *DecidableBy
	// TenantIDs limits to these tenants; nil means every tenant.
	TenantIDs []uint
	State     string
	Limit     int
}

// DecidableBy is a user with their role bindings.
type DecidableBy struct {
	Name     string
	Bindings []RoleBinding
}

// Approvals lists approvals, oldest first (the one waiting longest on top).
func (s *Store) Approvals(ctx context.Context, f ApprovalFilter) ([]Approval, error) {
	q := s.db.WithContext(ctx).Model(&Approval{}).Preload("Decisions", orderByID)
	if f.TenantIDs != nil {
		q = q.Where("tenant_id IN ?", f.TenantIDs)
	}
	if f.State != "" {
		q = q.Where("state = ?", f.State)
	}
	if d := f.DecidableBy; d != nil {
		q = q.Where("state IN ?", openApprovalStates)
		cond := s.db.Where("1 = 0")
		for _, b := range d.Bindings {
			like := "%," + b.Role + ",%"
			if b.TenantID == 0 {
				cond = cond.Or("roles LIKE ?", like)
			} else {
				cond = cond.Or("tenant_id = ? AND roles LIKE ?", b.TenantID, like)
			}
		}
		q = q.Where(cond).
			Where("NOT (separate_duties = ? AND started_by = ?)", true, d.Name).
			Where("NOT EXISTS (SELECT 1 FROM decisions WHERE decisions.approval_id = approvals.id AND decisions.approver = ?)", d.Name)
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 100
	}
	var as []Approval
	if err := q.Order("id").Limit(f.Limit).Find(&as).Error; err != nil {
		return nil, err
	}
	for i := range as {
		as[i].fill()
	}
	return as, nil
}

// StrandedDecisions lists the approvals decided before before whose run is
// still open and still records their step as waiting: the API committed the
// decision and died before its signal reached the run.
func (s *Store) StrandedDecisions(ctx context.Context, before time.Time) ([]berth.StrandedDecision, error) {
	var as []Approval
	err := s.db.WithContext(ctx).Preload("Decisions", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
		Where("state IN ? AND decided_at < ?", []berth.ApprovalState{berth.ApprovalApproved, berth.ApprovalRejected}, before).
		Where("run_id IN (SELECT id FROM runs WHERE status IN ?)", []berth.RunStatus{berth.RunPending, berth.RunRunning}).
		Where("EXISTS (SELECT 1 FROM steps WHERE steps.run_id = approvals.run_id AND steps.name = approvals.step AND steps.state = ?)", berth.StepWaiting).
		Order("id").Find(&as).Error
	if err != nil {
		return nil, err
	}
	out := make([]berth.StrandedDecision, 0, len(as))
	for i := range as {
		out = append(out, berth.StrandedDecision{RunID: as[i].RunID, WorkflowID: as[i].WorkflowID, Decision: as[i].Domain().Decision()})
	}
	return out, nil
}

// openApprovalStates are the states in which people may still decide.
var openApprovalStates = []berth.ApprovalState{berth.ApprovalPending, berth.ApprovalEscalated}

// Domain returns the approval as the workflows carry it.
func (a *Approval) Domain() *berth.Approval {
	d := &berth.Approval{ID: a.ID, RunID: a.RunID, Step: a.Step, TenantID: a.TenantID, EnvironmentID: a.EnvironmentID,
		WorkflowID: a.WorkflowID, Roles: a.RoleList, Quorum: a.Quorum, SeparateDuties: a.SeparateDuties,
		RequireComment: a.RequireComment, StartedBy: a.StartedBy, State: a.State, Summary: a.Summary,
		OnTimeout: a.OnTimeout, DeadlineAt: a.DeadlineAt, EscalatedAt: a.EscalatedAt, CreatedAt: a.CreatedAt,
		DecidedAt: a.DecidedAt, Decisions: make([]berth.Decision, 0, len(a.Decisions))}
	for _, x := range a.Decisions {
		d.Decisions = append(d.Decisions, berth.Decision{ApprovalID: x.ApprovalID, Approver: x.Approver,
			Decision: x.Decision, Comment: x.Comment, At: x.At})
	}
	return d
}

// ApprovalRow returns the record of a new approval step a workflow asks for.
func ApprovalRow(d berth.Approval) *Approval {
	return &Approval{ID: d.ID, RunID: d.RunID, Step: d.Step, TenantID: d.TenantID, EnvironmentID: d.EnvironmentID,
		WorkflowID: d.WorkflowID, RoleList: d.Roles, Quorum: d.Quorum, SeparateDuties: d.SeparateDuties,
		RequireComment: d.RequireComment, StartedBy: d.StartedBy, State: d.State, Summary: d.Summary,
		OnTimeout: d.OnTimeout, DeadlineAt: d.DeadlineAt}
}

// CreateApprovalStep records the approval step a workflow asks for and returns
// it as recorded; repeating it returns the same record.
func (s *Store) CreateApprovalStep(ctx context.Context, a berth.Approval) (*berth.Approval, error) {
	got, err := s.CreateApproval(ctx, ApprovalRow(a))
	if err != nil {
		return nil, err
	}
	return got.Domain(), nil
}

// ExpireApprovalStep is ExpireApproval for the workflows: it returns the
// approval as the database has it, in domain terms.
func (s *Store) ExpireApprovalStep(ctx context.Context, id uint, escalateTo []berth.Role) (*berth.Approval, error) {
	got, err := s.ExpireApproval(ctx, id, escalateTo)
	if err != nil {
		return nil, err
	}
	return got.Domain(), nil
}

// OpenApprovals is how many approvals wait for a decision now, and since
// when the oldest of them waits (zero when none does).
func (s *Store) OpenApprovals(ctx context.Context) (int64, time.Time, error) {
	open := s.db.WithContext(ctx).Model(&Approval{}).
		Where("state IN ?", []berth.ApprovalState{berth.ApprovalPending, berth.ApprovalEscalated})
	var n int64
	if err := open.Session(&gorm.Session{}).Count(&n).Error; err != nil || n == 0 {
		return n, time.Time{}, err
	}
	// Read as a row, not MIN(): SQLite hands an aggregate's time back as text.
	var oldest Approval
	if err := open.Session(&gorm.Session{}).Select("id", "created_at").Order("created_at").Limit(1).Take(&oldest).Error; err != nil {
		return n, time.Time{}, err
	}
	return n, oldest.CreatedAt, nil
}
