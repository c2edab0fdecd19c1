package berth

import (
	"fmt"
	"strings"
	"time"
)

// ApprovalState is where an approval stands. Pending and escalated are open:
// people may decide.
type ApprovalState string

// Approval states.
const (
	ApprovalPending   ApprovalState = "pending"
	ApprovalEscalated ApprovalState = "escalated"
	ApprovalApproved  ApprovalState = "approved"
	ApprovalRejected  ApprovalState = "rejected"
	ApprovalTimedOut  ApprovalState = "timed_out"
	ApprovalCancelled ApprovalState = "cancelled"
)

// ApprovalStates lists every approval state.
var ApprovalStates = []ApprovalState{ApprovalPending, ApprovalEscalated, ApprovalApproved, ApprovalRejected,
	ApprovalTimedOut, ApprovalCancelled}

// Open says people may still decide.
func (s ApprovalState) Open() bool { return s == ApprovalPending || s == ApprovalEscalated }

// Verdict is one person's decision on an approval.
type Verdict string

// Verdicts.
const (
	DecisionApprove Verdict = "approve"
	DecisionReject  Verdict = "reject"
)

// Verdicts lists every verdict.
var Verdicts = []Verdict{DecisionApprove, DecisionReject}

// OnTimeout is what a run does when nobody decides its approval in time.
type OnTimeout string

// Timeout policies.
const (
	OnTimeoutFail     OnTimeout = "fail"     // the run fails
	OnTimeoutAbort    OnTimeout = "abort"    // the run is cancelled (callers undo their work)
	OnTimeoutEscalate OnTimeout = "escalate" // EscalateTo's roles get one more Timeout, then fail
)

// OnTimeouts lists every timeout policy.
var OnTimeouts = []OnTimeout{OnTimeoutFail, OnTimeoutAbort, OnTimeoutEscalate}

// Error types of an approval that ends without an approve. Like Code, they
// are Temporal application error types in recorded histories.
const (
	ErrApprovalTimedOut = "ApprovalTimedOut"
	ErrApprovalAborted  = "ApprovalAborted"
	ErrApprovalRejected = "ApprovalRejected"
)

// MaxPlannedWait is the longest a run may plan to wait on people or outside
// systems: an approval gate or a firewall ticket may wait 30 days, and an
// escalated approval once more. Nothing outside a workflow may end a run
// sooner (no Temporal execution timeout); the workflow's own deadlines do,
// through its undo path.
const MaxPlannedWait = 2 * 30 * 24 * time.Hour

// ApprovalRequest describes one approval step of a run.
type ApprovalRequest struct {
	// Step is the step's name in the run; unique within the run.
	Step  string `json:"step"`
	Roles []Role `json:"roles"`
	// Quorum is how many distinct approvers must approve (at least 1).
	Quorum int `json:"quorum"`
	// SeparateDuties: StartedBy may not decide.
	SeparateDuties bool   `json:"separateDuties"`
	RequireComment bool   `json:"requireComment"`
	StartedBy      string `json:"startedBy"`
	TenantID       uint   `json:"tenantId"`
	EnvironmentID  uint   `json:"environmentId,omitempty"`
	// Timeout bounds the wait (0: one day); OnTimeout says what follows.
	Timeout    time.Duration `json:"timeout"`
	OnTimeout  OnTimeout     `json:"onTimeout"`
	EscalateTo []Role        `json:"escalateTo,omitempty"`
	// Summary is what will change, shown to the approver.
	Summary string `json:"summary"`
}

// ApprovalDecision is the approval signal's payload: the approval as the
// server closed it.
type ApprovalDecision struct {
	ApprovalID uint          `json:"approvalId"`
	State      ApprovalState `json:"state"`
	By         []string      `json:"by"`
	Comment    string        `json:"comment,omitempty"`
}

// ApprovalOutcome is how an approval step ended.
type ApprovalOutcome struct {
	ApprovalID uint          `json:"approvalId"`
	State      ApprovalState `json:"state"` // approved, rejected or timed_out
	By         []string      `json:"by,omitempty"`
	Comment    string        `json:"comment,omitempty"`
}

// Rejection says who rejected and why, as runs and releases record it.
func (o ApprovalOutcome) Rejection() string {
	msg := "rejected by " + strings.Join(o.By, ", ")
	if o.Comment != "" {
		msg += ": " + o.Comment
	}
	return msg
}

// Approval is one approval step as recorded, carried between the workflows
// and the store's activities.
type Approval struct {
	ID             uint          `json:"id"`
	RunID          uint          `json:"runId"`
	Step           string        `json:"step"`
	TenantID       uint          `json:"tenantId"`
	EnvironmentID  uint          `json:"environmentId,omitempty"`
	WorkflowID     string        `json:"workflowId"`
	Roles          []Role        `json:"roles"`
	Quorum         int           `json:"quorum"`
	SeparateDuties bool          `json:"separateDuties"`
	RequireComment bool          `json:"requireComment"`
	StartedBy      string        `json:"startedBy"`
	State          ApprovalState `json:"state"`
	Summary        string        `json:"summary,omitempty"`
	OnTimeout      OnTimeout     `json:"onTimeout,omitempty"`
	DeadlineAt     *time.Time    `json:"deadlineAt,omitempty"`
	EscalatedAt    *time.Time    `json:"escalatedAt,omitempty"`
	CreatedAt      time.Time     `json:"createdAt"`
	DecidedAt      *time.Time    `json:"decidedAt,omitempty"`
	Decisions      []Decision    `json:"decisions"`
}

// Decision is one person's approve or reject.
type Decision struct {
	ApprovalID uint      `json:"approvalId"`
	Approver   string    `json:"approver"`
	Decision   Verdict   `json:"decision"`
	Comment    string    `json:"comment,omitempty"`
	At         time.Time `json:"at"`
}

// Outcome is the approval's outcome as it stands: its state, who decided,
// and their comments.
func (a *Approval) Outcome() ApprovalOutcome {
	o := ApprovalOutcome{ApprovalID: a.ID, State: a.State}
	var comments []string
	for _, d := range a.Decisions {
		o.By = append(o.By, d.Approver)
		if d.Comment != "" {
			comments = append(comments, d.Comment)
		}
	}
	o.Comment = strings.Join(comments, " / ")
	return o
}

// Decision is the signal that tells the waiting run how its approval was
// decided.
func (a *Approval) Decision() ApprovalDecision {
	o := a.Outcome()
	by := o.By
	if by == nil {
		by = []string{}
	}
	return ApprovalDecision{ApprovalID: o.ApprovalID, State: o.State, By: by, Comment: o.Comment}
}

// WaitingFor says who a step waits for, as the run's step shows it.
func WaitingFor(roles []Role, quorum int) string {
	if quorum < 1 {
		quorum = 1
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return fmt.Sprintf("waiting for %d approval(s) from %s", quorum, strings.Join(names, " or "))
}
