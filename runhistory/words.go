package runhistory

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
)

// reader turns events into words, remembering the open ones.
type reader struct {
	open map[int64]openEvent
	dc   converter.DataConverter
}

func newReader(open map[int64]openEvent) *reader {
	if open == nil {
		open = map[int64]openEvent{}
	}
	return &reader{open: open, dc: converter.GetDefaultDataConverter()}
}

// carry is the open events to hand to the next page, the newest when there are too many.
func (hr *reader) carry() map[int64]openEvent {
	if len(hr.open) <= maxOpen {
		return hr.open
	}
	ids := make([]int64, 0, len(hr.open))
	for id := range hr.open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	out := map[int64]openEvent{}
	for _, id := range ids[:maxOpen] {
		out[id] = hr.open[id]
	}
	return out
}

func (hr *reader) label(id int64, fallback string) openEvent {
	if o, ok := hr.open[id]; ok {
		return o
	}
	return openEvent{Label: fallback}
}

func (hr *reader) close(ids ...int64) {
	for _, id := range ids {
		delete(hr.open, id)
	}
}

// tookSince says how long since an open event began, or "" when unknown.
func tookSince(from openEvent, to time.Time) string {
	if from.At.IsZero() || to.Before(from.At) {
		return ""
	}
	d := to.Sub(from.At)
	switch {
	case d < time.Second:
		return fmt.Sprintf(" (%d ms)", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf(" (%.1f s)", d.Seconds())
	}
	return " (" + d.Round(time.Second).String() + ")"
}

func failureText(f *failurepb.Failure) string {
	if f == nil {
		return "no reason given"
	}
	parts := []string{}
	for ; f != nil && len(parts) < 4; f = f.GetCause() {
		m := strings.TrimSpace(f.GetMessage())
		if ti := f.GetTimeoutFailureInfo(); ti != nil && m == "" {
			m = enumWords(ti.GetTimeoutType().String()) + " timeout"
		}
		if m != "" && (len(parts) == 0 || parts[len(parts)-1] != m) {
			parts = append(parts, m)
		}
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, ": ")
}

// enumWords turns an enum's name, TimerFired (or TIMER_FIRED in older
// APIs), into "timer fired".
func enumWords(name string) string {
	if strings.Contains(name, "_") {
		return strings.ToLower(strings.ReplaceAll(name, "_", " "))
	}
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func (hr *reader) describe(e *historypb.HistoryEvent) Event {
	at := e.GetEventTime().AsTime().UTC()
	typ := e.GetEventType().String()
	if strings.Contains(typ, "_") {
		typ = pascal(strings.TrimPrefix(typ, "EVENT_TYPE_"))
	}
	ev := Event{ID: e.GetEventId(), At: at, Type: typ, Category: "workflow", Text: enumWords(typ)}
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		a := e.GetWorkflowExecutionStartedEventAttributes()
		ev.Text = "workflow " + a.GetWorkflowType().GetName() + " started"
		if by := hr.memoString(a.GetMemo(), "startedBy"); by != "" {
			ev.Text += " for " + by
		}
		if q := a.GetTaskQueue().GetName(); q != "" {
			ev.Text += " on task queue " + q
		}
		if a.GetAttempt() > 1 {
			ev.Text += fmt.Sprintf(", attempt %d", a.GetAttempt())
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		ev.Text = "workflow completed"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		ev.Text, ev.Failed = "workflow failed: "+failureText(e.GetWorkflowExecutionFailedEventAttributes().GetFailure()), true
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		ev.Text, ev.Failed = "workflow timed out", true
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
		a := e.GetWorkflowExecutionCancelRequestedEventAttributes()
		ev.Text = "cancellation requested"
		if a.GetCause() != "" {
			ev.Text += ": " + a.GetCause()
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		ev.Text, ev.Failed = "workflow cancelled", true
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		a := e.GetWorkflowExecutionTerminatedEventAttributes()
		ev.Text, ev.Failed = "workflow terminated", true
		if a.GetReason() != "" {
			ev.Text += ": " + a.GetReason()
		}
		if a.GetIdentity() != "" {
			ev.Text += " (by " + a.GetIdentity() + ")"
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		ev.Text = "workflow continued as new run " + e.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()

	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		ev.Category, ev.Engine = "engine", true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
		a := e.GetWorkflowTaskFailedEventAttributes()
		ev.Category, ev.Engine, ev.Failed = "engine", true, true
		ev.Text = "workflow task failed (" + enumWords(a.GetCause().String()) + "): " + failureText(a.GetFailure())
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
		ev.Category, ev.Engine = "engine", true

	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := e.GetActivityTaskScheduledEventAttributes()
		label := "activity " + a.GetActivityType().GetName() + hr.subject(a.GetInput())
		hr.open[e.GetEventId()] = openEvent{Label: label, At: at}
		ev.Category, ev.Text = "activity", label+" scheduled"
		if q := a.GetTaskQueue().GetName(); q != "" {
			ev.Text += " on task queue " + q
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		a := e.GetActivityTaskStartedEventAttributes()
		o := hr.label(a.GetScheduledEventId(), "activity")
		hr.open[e.GetEventId()] = openEvent{Label: o.Label, At: at, Attempt: a.GetAttempt()}
		ev.Category, ev.Text = "activity", o.Label+" started"
		if a.GetAttempt() > 1 {
			ev.Text += fmt.Sprintf(", attempt %d", a.GetAttempt())
			if lf := a.GetLastFailure(); lf != nil {
				ev.Text += " (the last one failed: " + failureText(lf) + ")"
			}
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		a := e.GetActivityTaskCompletedEventAttributes()
		st := hr.label(a.GetStartedEventId(), hr.label(a.GetScheduledEventId(), "activity").Label)
		ev.Category, ev.Text = "activity", st.Label+" completed"+tookSince(st, at)
		if st.Attempt > 1 {
			ev.Text += fmt.Sprintf(", attempt %d", st.Attempt)
		}
		hr.close(a.GetScheduledEventId(), a.GetStartedEventId())
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		a := e.GetActivityTaskFailedEventAttributes()
		hr.activityFailed(&ev, a.GetScheduledEventId(), a.GetStartedEventId(), "failed", a.GetFailure())
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		a := e.GetActivityTaskTimedOutEventAttributes()
		hr.activityFailed(&ev, a.GetScheduledEventId(), a.GetStartedEventId(), "timed out", a.GetFailure())
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
		a := e.GetActivityTaskCancelRequestedEventAttributes()
		ev.Category, ev.Text = "activity", "cancel of "+hr.label(a.GetScheduledEventId(), "activity").Label+" requested"
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
		a := e.GetActivityTaskCanceledEventAttributes()
		ev.Category, ev.Text = "activity", hr.label(a.GetScheduledEventId(), "activity").Label+" cancelled"
		hr.close(a.GetScheduledEventId(), a.GetStartedEventId())

	case enumspb.EVENT_TYPE_TIMER_STARTED:
		a := e.GetTimerStartedEventAttributes()
		label := "timer " + a.GetStartToFireTimeout().AsDuration().Round(time.Millisecond).String()
		hr.open[e.GetEventId()] = openEvent{Label: label, At: at}
		ev.Category, ev.Text = "timer", label+" started"
	case enumspb.EVENT_TYPE_TIMER_FIRED:
		a := e.GetTimerFiredEventAttributes()
		ev.Category, ev.Text = "timer", hr.label(a.GetStartedEventId(), "timer").Label+" fired"
		hr.close(a.GetStartedEventId())
	case enumspb.EVENT_TYPE_TIMER_CANCELED:
		a := e.GetTimerCanceledEventAttributes()
		o := hr.label(a.GetStartedEventId(), "timer")
		ev.Category, ev.Text = "timer", o.Label+" cancelled"+tookSince(o, at)
		hr.close(a.GetStartedEventId())

	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		hr.marker(e.GetMarkerRecordedEventAttributes(), &ev)

	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		a := e.GetWorkflowExecutionSignaledEventAttributes()
		ev.Category, ev.Text = "signal", "signal "+a.GetSignalName()+hr.signalFrom(a.GetInput(), a.GetIdentity())
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
		ev.Category, ev.Text = "update", "update "+e.GetWorkflowExecutionUpdateAdmittedEventAttributes().GetRequest().GetInput().GetName()+" admitted"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		a := e.GetWorkflowExecutionUpdateAcceptedEventAttributes()
		ev.Category, ev.Text = "update", "update "+a.GetAcceptedRequest().GetInput().GetName()+" accepted"
		if id := a.GetAcceptedRequest().GetMeta().GetIdentity(); id != "" {
			ev.Text += " (from " + id + ")"
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
		a := e.GetWorkflowExecutionUpdateRejectedEventAttributes()
		ev.Category, ev.Failed = "update", true
		ev.Text = "update " + a.GetRejectedRequest().GetInput().GetName() + " rejected: " + failureText(a.GetFailure())
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
		a := e.GetWorkflowExecutionUpdateCompletedEventAttributes()
		ev.Category, ev.Text = "update", "update completed"
		if f := a.GetOutcome().GetFailure(); f != nil {
			ev.Text, ev.Failed = "update failed: "+failureText(f), true
		}

	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
		label := "child workflow " + a.GetWorkflowType().GetName() + " (" + a.GetWorkflowId() + ")"
		hr.open[e.GetEventId()] = openEvent{Label: label, At: at}
		ev.Category, ev.Text = "child-workflow", label+" requested"
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := e.GetStartChildWorkflowExecutionFailedEventAttributes()
		ev.Category, ev.Failed = "child-workflow", true
		ev.Text = hr.label(a.GetInitiatedEventId(), "child workflow "+a.GetWorkflowId()).Label + " could not start: " + enumWords(a.GetCause().String())
		hr.close(a.GetInitiatedEventId())
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
		a := e.GetChildWorkflowExecutionStartedEventAttributes()
		ev.Category, ev.Text = "child-workflow", hr.label(a.GetInitiatedEventId(), "child workflow "+a.GetWorkflowType().GetName()).Label+" started"
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
		a := e.GetChildWorkflowExecutionCompletedEventAttributes()
		o := hr.label(a.GetInitiatedEventId(), "child workflow "+a.GetWorkflowType().GetName())
		ev.Category, ev.Text = "child-workflow", o.Label+" completed"+tookSince(o, at)
		hr.close(a.GetInitiatedEventId())
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
		a := e.GetChildWorkflowExecutionFailedEventAttributes()
		ev.Category, ev.Failed = "child-workflow", true
		ev.Text = hr.label(a.GetInitiatedEventId(), "child workflow "+a.GetWorkflowType().GetName()).Label + " failed: " + failureText(a.GetFailure())
		hr.close(a.GetInitiatedEventId())
	case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
		enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
		ev.Category, ev.Failed = "child-workflow", true

	case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
		a := e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes()
		ev.Category, ev.Text = "signal", "signal "+a.GetSignalName()+" sent to workflow "+a.GetWorkflowExecution().GetWorkflowId()
	case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
		ev.Category, ev.Failed = "signal", true
		ev.Text = "signal to workflow " + e.GetSignalExternalWorkflowExecutionFailedEventAttributes().GetWorkflowExecution().GetWorkflowId() + " failed"
	case enumspb.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
		ev.Category, ev.Text = "signal", "signal delivered to workflow "+e.GetExternalWorkflowExecutionSignaledEventAttributes().GetWorkflowExecution().GetWorkflowId()
	case enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
		ev.Text = "cancel of workflow " + e.GetRequestCancelExternalWorkflowExecutionInitiatedEventAttributes().GetWorkflowExecution().GetWorkflowId() + " requested"
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		ev.Text = "search attributes updated"
	}
	return ev
}

// pascal turns TIMER_FIRED into TimerFired, the name the Temporal UI shows.
func pascal(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(s), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// activityFailed describes an activity attempt that failed or timed out
// (how says which), with its attempt number, and closes it.
func (hr *reader) activityFailed(ev *Event, scheduled, started int64, how string, f *failurepb.Failure) {
	st := hr.label(started, hr.label(scheduled, "activity").Label)
	ev.Category, ev.Failed = "activity", true
	ev.Text = st.Label + " " + how + ": " + failureText(f)
	if st.Attempt > 0 {
		ev.Text += fmt.Sprintf(", attempt %d", st.Attempt)
	}
	hr.close(scheduled, started)
}

func (hr *reader) marker(a *historypb.MarkerRecordedEventAttributes, ev *Event) {
	ev.Category = "marker"
	switch a.GetMarkerName() {
	case "LocalActivity":
		ev.Category = "local-activity"
		var data struct {
			ActivityType string
			Attempt      int32
		}
		if p := a.GetDetails()["data"].GetPayloads(); len(p) > 0 {
			_ = hr.dc.FromPayload(p[0], &data)
		}
		name := data.ActivityType
		if name == "" {
			name = "(unnamed)"
		}
		ev.Text = "local activity " + name + " completed"
		if f := a.GetFailure(); f != nil {
			ev.Text, ev.Failed = "local activity "+name+" failed: "+failureText(f), true
		}
		if data.Attempt > 1 {
			ev.Text += fmt.Sprintf(", attempt %d", data.Attempt)
		}
	case "Version":
		var change string
		var version int64
		if p := a.GetDetails()["change-id"].GetPayloads(); len(p) > 0 {
			_ = hr.dc.FromPayload(p[0], &change)
		}
		if p := a.GetDetails()["version"].GetPayloads(); len(p) > 0 {
			_ = hr.dc.FromPayload(p[0], &version)
		}
		ev.Text = fmt.Sprintf("version marker: change %s at version %d", change, version)
	case "SideEffect", "MutableSideEffect":
		ev.Text = "side effect recorded"
	default:
		ev.Text = "marker " + a.GetMarkerName() + " recorded"
	}
}

func (hr *reader) memoString(m *commonpb.Memo, key string) string {
	p, ok := m.GetFields()[key]
	if !ok {
		return ""
	}
	var s string
	if err := hr.dc.FromPayload(p, &s); err != nil {
		return ""
	}
	return s
}

// maxDecode bounds the payloads decoded to find names in (a compose spec may be large).
const maxDecode = 64 << 10

func (hr *reader) first(p *commonpb.Payloads) map[string]any {
	ps := p.GetPayloads()
	if len(ps) == 0 || len(ps[0].GetData()) > maxDecode {
		return nil
	}
	var v map[string]any
	if err := hr.dc.FromPayload(ps[0], &v); err != nil {
		return nil
	}
	return v
}

// subject names what an activity works on, from its input: " for instance
// X on host Y", as far as the input says.
func (hr *reader) subject(p *commonpb.Payloads) string {
	v := hr.first(p)
	if v == nil {
		return ""
	}
	inst, host := "", ""
	switch {
	case strField(v, "uid") != "" && strField(v, "name") != "": // a planned instance
		inst = strField(v, "name")
	case strField(v, "endpoint") != "" && strField(v, "name") != "": // a host
		host = strField(v, "name")
	}
	if inst == "" {
		inst = strField(v, "instance")
	}
	if m, ok := v["instance"].(map[string]any); ok && inst == "" {
		inst = strField(m, "name")
		if h, ok := m["host"].(map[string]any); ok {
			host = strField(h, "name")
		}
	}
	if h, ok := v["host"].(map[string]any); ok && host == "" {
		host = strField(h, "name")
	}
	if host == "" {
		host = strField(v, "host")
	}
	out := ""
	if inst != "" {
		out += " for instance " + inst
	}
	if host != "" {
		out += " on host " + host
	}
	return out
}

func strField(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// signalFrom says who sent a signal: berth's signals carry who decided
// ("by"), and what ("state"); else the sender's Temporal identity.
func (hr *reader) signalFrom(p *commonpb.Payloads, identity string) string {
	v := hr.first(p)
	by := ""
	switch b := v["by"].(type) {
	case string:
		by = b
	case []any:
		names := []string{}
		for _, x := range b {
			if s, ok := x.(string); ok {
				names = append(names, s)
			}
		}
		by = strings.Join(names, ", ")
	}
	out := ""
	if by != "" {
		out = " from " + by
	} else if identity != "" {
		out = " from " + identity
	}
	if st := strField(v, "state"); st != "" {
		out += " (" + strings.ReplaceAll(st, "_", " ") + ")"
	}
	if cm := strField(v, "comment"); cm != "" {
		if len(cm) > 200 {
			cm = cm[:200] + "…"
		}
		out += ": “" + cm + "”"
	}
	return out
}
