package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A run's workflow history, read from Temporal a page at a time and told in
// berth's words: which activity ran on which host, how long it took, why it
// failed and on which attempt, who sent a signal. Release managers read it
// here; the Temporal UI link is there for the engine's own view.

// defaultTemporalUI is the dev server's web UI, used when no BERTH_TEMPORAL_UI_URL is set.
const defaultTemporalUI = "http://127.0.0.1:8233"

const (
	historyPageSize    = 100
	historyMaxPageSize = 500
	// historyMaxOpen bounds what a page token carries forward.
	historyMaxOpen = 100
)

// historyEvent is one workflow event in domain words.
type historyEvent struct {
	ID   int64     `json:"id"`
	At   time.Time `json:"at"`
	Type string    `json:"type"` // Temporal's event type, e.g. ActivityTaskCompleted
	// Category groups events: workflow, activity, local-activity, timer,
	// signal, update, child-workflow, marker or engine.
	Category string `json:"category"`
	Text     string `json:"text"`
	Failed   bool   `json:"failed,omitempty"`
	// Engine marks the engine's own bookkeeping (workflow tasks), which the
	// page hides unless asked.
	Engine bool `json:"engine,omitempty"`
}

// historyPage is one page of a run's history.
type historyPage struct {
	RunID         uint           `json:"runId"`
	WorkflowID    string         `json:"workflowId"`
	TemporalRunID string         `json:"temporalRunId"`
	Events        []historyEvent `json:"events"`
	// NextPageToken asks for the next page; empty on the last one.
	NextPageToken string `json:"nextPageToken,omitempty"`
	TemporalURL   string `json:"temporalUrl"`
}

// historyCursor is what a page token holds: Temporal's token of the page
// to read, how many of that page's events were already shown (Temporal's
// pages follow its stored batches, not the size asked for, so berth cuts
// its own), and the events still open at the page's end (an activity
// scheduled on this page may complete on the next), so later pages can
// name what they close.
type historyCursor struct {
	T    []byte              `json:"t,omitempty"`
	Skip int                 `json:"s,omitempty"`
	Open map[int64]openEvent `json:"o,omitempty"`
}

type openEvent struct {
	Label   string    `json:"l"`
	At      time.Time `json:"a"`
	Attempt int32     `json:"n,omitempty"`
}

func decodeCursor(tok string) (historyCursor, error) {
	var cur historyCursor
	if tok == "" {
		return cur, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(b, &cur)
	}
	if err != nil || (len(cur.T) == 0 && cur.Skip == 0) || cur.Skip < 0 {
		return cur, badRequest("pageToken is not one this server gave out; start from the first page")
	}
	return cur, nil
}

func (cur historyCursor) encode() string {
	b, _ := json.Marshal(cur)
	return base64.RawURLEncoding.EncodeToString(b)
}

// temporalURL links a run to its workflow in the Temporal UI, or "" before it has one.
func (s *Server) temporalURL(run *store.Run) string {
	if run.WorkflowID == "" || run.TemporalRunID == "" {
		return ""
	}
	base := strings.TrimRight(s.cfg.TemporalUIURL, "/")
	if base == "" {
		base = defaultTemporalUI
	}
	return base + "/namespaces/" + url.PathEscape(s.cfg.TemporalNamespace) + "/workflows/" +
		url.PathEscape(run.WorkflowID) + "/" + url.PathEscape(run.TemporalRunID) + "/history"
}

// noWorkflow says a run has no workflow history to read yet.
func noWorkflow(run *store.Run) error {
	msg := fmt.Sprintf("run %d has no workflow yet: it is %s and its workflow has not started", run.ID, run.Status)
	if run.Status == berth.RunFailed || run.Status == berth.RunCancelled {
		msg = fmt.Sprintf("run %d has no workflow history: it ended (%s) before its workflow started", run.ID, run.Status)
	}
	return &berth.Error{Code: berth.EConflict, Reason: "no_workflow", Message: msg}
}

// readHistory reads one page of a run's history.
func (s *Server) readHistory(c *gin.Context, run *store.Run, token string, size int) (*historyPage, error) {
	if run.WorkflowID == "" || run.TemporalRunID == "" {
		return nil, noWorkflow(run)
	}
	cur, err := decodeCursor(token)
	if err != nil {
		return nil, err
	}
	ctx, cancel := contextWithTimeout(c.Request.Context(), 15*time.Second)
	defer cancel()
	hr := newHistoryReader(cur.Open)
	page := &historyPage{RunID: run.ID, WorkflowID: run.WorkflowID, TemporalRunID: run.TemporalRunID,
		Events: []historyEvent{}, TemporalURL: s.temporalURL(run)}
	var next *historyCursor
	t, skip := cur.T, cur.Skip
	// Fill the page from as many of Temporal's pages as it takes (a few at most).
	for reads := 0; ; reads++ {
		if reads == 10 {
			next = &historyCursor{T: t, Skip: skip}
			break
		}
		resp, err := s.temporal.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
			Namespace:              s.cfg.TemporalNamespace,
			Execution:              &commonpb.WorkflowExecution{WorkflowId: run.WorkflowID, RunId: run.TemporalRunID},
			MaximumPageSize:        int32(size),
			NextPageToken:          t,
			HistoryEventFilterType: enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
		})
		if err != nil {
			return nil, s.historyError(run, token, err)
		}
		evs := resp.GetHistory().GetEvents()
		if skip > len(evs) {
			skip = len(evs)
		}
		evs = evs[skip:]
		if room := size - len(page.Events); len(evs) > room {
			for _, e := range evs[:room] {
				page.Events = append(page.Events, hr.describe(e))
			}
			next = &historyCursor{T: t, Skip: skip + room}
			break
		}
		for _, e := range evs {
			page.Events = append(page.Events, hr.describe(e))
		}
		if len(resp.GetNextPageToken()) == 0 {
			break
		}
		t, skip = resp.GetNextPageToken(), 0
		if len(page.Events) == size {
			next = &historyCursor{T: t}
			break
		}
	}
	if next != nil {
		next.Open = hr.carry()
		page.NextPageToken = next.encode()
	}
	return page, nil
}

func (s *Server) historyError(run *store.Run, token string, err error) error {
	var nf *serviceerror.NotFound
	var inv *serviceerror.InvalidArgument
	switch {
	case errors.As(err, &nf):
		return &berth.Error{Code: berth.ENotFound, Message: fmt.Sprintf(
			"Temporal no longer has the history of run %d (workflow %s): it is past the namespace's retention", run.ID, run.WorkflowID)}
	case errors.As(err, &inv) && token != "":
		return badRequest("pageToken is not valid for this run; start from the first page")
	}
	s.log.Error("workflow history not read", "run", run.ID, "error", err)
	return &berth.Error{Code: berth.EUpstream, Reason: "temporal_unavailable", Message: "the workflow engine did not answer; try again"}
}

func historySize(c *gin.Context) (int, error) {
	v := c.Query("size")
	if v == "" {
		return historyPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > historyMaxPageSize {
		return 0, badRequest(fmt.Sprintf("size must be a number from 1 to %d", historyMaxPageSize))
	}
	return n, nil
}

// runHistory: GET /api/v1/runs/:id/history?pageToken=&size=
func (s *Server) runHistory(c *gin.Context) {
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	size, err := historySize(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	page, err := s.readHistory(c, run, c.Query("pageToken"), size)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// runHistoryPage: /runs/:id/history, the same page as HTML.
func (s *Server) runHistoryPage(c *gin.Context) {
	run, err := s.readableRun(c)
	if err != nil {
		s.renderError(c, err)
		return
	}
	data := struct {
		Run         *store.Run
		Page        *historyPage
		Events      []historyEvent
		Hidden      int
		Engine      bool
		Next, First string
		// Toggle is this page with engine events shown or hidden.
		Toggle      string
		TemporalURL string
		Empty       string
	}{Run: run, Engine: c.Query("engine") == "1", TemporalURL: s.temporalURL(run)}
	page, err := s.readHistory(c, run, c.Query("pageToken"), historyPageSize)
	var ae *berth.Error
	switch {
	case errors.As(err, &ae) && ae.Reason == "no_workflow":
		data.Empty = ae.Message + ". Its history appears here once a worker has started it; the run page shows why it has not."
	case err != nil:
		s.renderError(c, err)
		return
	default:
		data.Page = page
		for _, e := range page.Events {
			if e.Engine && !data.Engine {
				data.Hidden++
				continue
			}
			data.Events = append(data.Events, e)
		}
		q := url.Values{}
		if data.Engine {
			q.Set("engine", "1")
		}
		if c.Query("pageToken") != "" {
			data.First = "?" + q.Encode()
		}
		t := url.Values{}
		if !data.Engine {
			t.Set("engine", "1")
		}
		if tok := c.Query("pageToken"); tok != "" {
			t.Set("pageToken", tok)
		}
		data.Toggle = t.Encode()
		if page.NextPageToken != "" {
			q.Set("pageToken", page.NextPageToken)
			data.Next = q.Encode()
		}
	}
	s.render(c, http.StatusOK, "run_history", fmt.Sprintf("Run %d history", run.ID), "runs", data)
}

// historyReader turns events into words, remembering the open ones.
type historyReader struct {
	open map[int64]openEvent
	dc   converter.DataConverter
}

func newHistoryReader(open map[int64]openEvent) *historyReader {
	if open == nil {
		open = map[int64]openEvent{}
	}
	return &historyReader{open: open, dc: converter.GetDefaultDataConverter()}
}

// carry is the open events to hand to the next page, the newest when there are too many.
func (hr *historyReader) carry() map[int64]openEvent {
	if len(hr.open) <= historyMaxOpen {
		return hr.open
	}
	ids := make([]int64, 0, len(hr.open))
	for id := range hr.open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	out := map[int64]openEvent{}
	for _, id := range ids[:historyMaxOpen] {
		out[id] = hr.open[id]
	}
	return out
}

func (hr *historyReader) label(id int64, fallback string) openEvent {
	if o, ok := hr.open[id]; ok {
		return o
	}
	return openEvent{Label: fallback}
}

func (hr *historyReader) close(ids ...int64) {
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

func (hr *historyReader) describe(e *historypb.HistoryEvent) historyEvent {
	at := e.GetEventTime().AsTime().UTC()
	typ := e.GetEventType().String()
	if strings.Contains(typ, "_") {
		typ = pascal(strings.TrimPrefix(typ, "EVENT_TYPE_"))
	}
	ev := historyEvent{ID: e.GetEventId(), At: at, Type: typ, Category: "workflow", Text: enumWords(typ)}
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
func (hr *historyReader) activityFailed(ev *historyEvent, scheduled, started int64, how string, f *failurepb.Failure) {
	st := hr.label(started, hr.label(scheduled, "activity").Label)
	ev.Category, ev.Failed = "activity", true
	ev.Text = st.Label + " " + how + ": " + failureText(f)
	if st.Attempt > 0 {
		ev.Text += fmt.Sprintf(", attempt %d", st.Attempt)
	}
	hr.close(scheduled, started)
}

func (hr *historyReader) marker(a *historypb.MarkerRecordedEventAttributes, ev *historyEvent) {
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

func (hr *historyReader) memoString(m *commonpb.Memo, key string) string {
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

func (hr *historyReader) first(p *commonpb.Payloads) map[string]any {
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
func (hr *historyReader) subject(p *commonpb.Payloads) string {
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
func (hr *historyReader) signalFrom(p *commonpb.Payloads, identity string) string {
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
