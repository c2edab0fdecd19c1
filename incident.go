package berth

import "time"

// IncidentKind is what went wrong, as the ticket system hears of it.
type IncidentKind string

// Incident kinds. Each is raised where it happens, in the same transaction
// as the record that says so, and cleared when the condition clears.
const (
	// IncidentRunFailed: a run failed (and undid what it changed). Cleared
	// when a run of the same family succeeds on the subject or above it.
	IncidentRunFailed IncidentKind = "run-failed"
	// IncidentApprovalTimeout: an approval ran out with nobody deciding.
	IncidentApprovalTimeout IncidentKind = "approval-timeout"
	// IncidentFirewallTicket: a firewall change request was not confirmed in time.
	IncidentFirewallTicket IncidentKind = "firewall-ticket-expired"
	// IncidentHealGaveUp: self-healing left an instance or service for a person.
	IncidentHealGaveUp IncidentKind = "heal-gave-up"
	// IncidentHostDown: a host's engine stopped answering. Cleared when it answers.
	IncidentHostDown IncidentKind = "host-down"
	// IncidentAlert: an alert from Prometheus' Alertmanager. Cleared when
	// Alertmanager says it is resolved.
	IncidentAlert IncidentKind = "alert"
)

// IncidentKinds lists every incident kind.
var IncidentKinds = []IncidentKind{IncidentRunFailed, IncidentApprovalTimeout, IncidentFirewallTicket, IncidentHealGaveUp, IncidentHostDown, IncidentAlert}

// IncidentState is whether an incident is still going on.
type IncidentState string

// Incident states.
const (
	IncidentOpen     IncidentState = "open"
	IncidentResolved IncidentState = "resolved"
)

// IncidentStates lists every incident state.
var IncidentStates = []IncidentState{IncidentOpen, IncidentResolved}

// Severities of an incident, as a ticket system ranks them.
const (
	SeverityCritical = "critical"
	SeverityMajor    = "major"
	SeverityMinor    = "minor"
)

// IncidentNotice is an incident as it is to be told to the ticket system:
// its ticket key, and what it says now. Version says which change of the
// incident this is, so a delivery marks only what it sent.
type IncidentNotice struct {
	ID          uint              `json:"id"`
	TicketKey   string            `json:"ticketKey"`
	Kind        IncidentKind      `json:"kind"`
	State       IncidentState     `json:"state"`
	Severity    string            `json:"severity"`
	Subject     string            `json:"subject"`
	Title       string            `json:"title"`
	Detail      string            `json:"detail"`
	Link        string            `json:"link,omitempty"` // a path of berth's UI
	Labels      map[string]string `json:"labels,omitempty"`
	Occurrences int               `json:"occurrences"`
	OpenedAt    time.Time         `json:"openedAt"`
	ResolvedAt  *time.Time        `json:"resolvedAt,omitempty"`
	Version     int               `json:"version"`
	// ResolveFirst is the key of a ticket of an earlier epoch the ticket
	// system was told is open and was never told is resolved.
	ResolveFirst string `json:"resolveFirst,omitempty"`
}

// AlertNotice is one alert of an Alertmanager webhook, made an incident.
type AlertNotice struct {
	Fingerprint string
	Firing      bool
	Title       string
	Detail      string
	Severity    string
	Labels      map[string]string
	Link        string
}

// DeliveryResult is what one delivery pass told the ticket system.
type DeliveryResult struct {
	Sent   int      `json:"sent"`
	Failed []string `json:"failed,omitempty"` // ticket keys left for a later pass
}
