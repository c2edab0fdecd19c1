package runhistory

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-dev/berth"
)

// fakeHistory serves a workflow's history in pages, keyed by page token.
type fakeHistory struct {
	workflowservice.WorkflowServiceClient
	mu    sync.Mutex
	pages map[string]*workflowservice.GetWorkflowExecutionHistoryResponse
	err   error
	asked []*workflowservice.GetWorkflowExecutionHistoryRequest
}

func (f *fakeHistory) GetWorkflowExecutionHistory(_ context.Context, in *workflowservice.GetWorkflowExecutionHistoryRequest, _ ...grpc.CallOption) (*workflowservice.GetWorkflowExecutionHistoryResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, in)
	if f.err != nil {
		return nil, f.err
	}
	return f.pages[string(in.GetNextPageToken())], nil
}

func payloads(t *testing.T, v any) *commonpb.Payloads {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayloads(v)
	require.NoError(t, err)
	return p
}

func payload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

// deployHistory is a deploy that retried an activity, waited on a timer, was
// approved, and failed probing a host: twelve events, one of them engine
// bookkeeping.
func deployHistory(t *testing.T) []*historypb.HistoryEvent {
	t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	ev := func(id int64, ms int, typ enumspb.EventType) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventId: id, EventTime: timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond)), EventType: typ}
	}
	e1 := ev(1, 0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
	e1.Attributes = &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
		WorkflowType: &commonpb.WorkflowType{Name: "DeployStack"}, Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{"startedBy": payload(t, "dana")}}}}
	e2 := ev(2, 1, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
	e3 := ev(3, 50, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	e3.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
		ActivityType: &commonpb.ActivityType{Name: "StartInstance"},
		Input:        payloads(t, map[string]any{"instance": map[string]any{"name": "shop-dev-web-1", "uid": "u1", "host": map[string]any{"name": "h1"}}})}}
	e4 := ev(4, 100, enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED)
	e4.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{
		ScheduledEventId: 3, Attempt: 3, LastFailure: &failurepb.Failure{Message: "engine busy"}}}
	e5 := ev(5, 112, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
	e5.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: 3, StartedEventId: 4}}
	e6 := ev(6, 120, enumspb.EVENT_TYPE_MARKER_RECORDED)
	e6.Attributes = &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{
		MarkerName: "LocalActivity", Details: map[string]*commonpb.Payloads{"data": payloads(t, map[string]any{"ActivityType": "RecordInstances", "Attempt": 1})}}}
	e7 := ev(7, 130, enumspb.EVENT_TYPE_TIMER_STARTED)
	e7.Attributes = &historypb.HistoryEvent_TimerStartedEventAttributes{TimerStartedEventAttributes: &historypb.TimerStartedEventAttributes{StartToFireTimeout: durationpb.New(30 * time.Second)}}
	e8 := ev(8, 30130, enumspb.EVENT_TYPE_TIMER_FIRED)
	e8.Attributes = &historypb.HistoryEvent_TimerFiredEventAttributes{TimerFiredEventAttributes: &historypb.TimerFiredEventAttributes{StartedEventId: 7}}
	e9 := ev(9, 30200, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
	// The approval signal as the workflows define it ("approval", an ApprovalDecision).
	e9.Attributes = &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
		SignalName: "approval", Identity: "123@api",
		Input: payloads(t, berth.ApprovalDecision{ApprovalID: 1, State: berth.ApprovalApproved, By: []string{"alice"}, Comment: "<script>window.x=1</script>"})}}
	e10 := ev(10, 30300, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
	e10.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
		ActivityType: &commonpb.ActivityType{Name: "ProbeHost"}, Input: payloads(t, berth.HostRef{Name: "h2", Endpoint: "unix:///x"})}}
	e11 := ev(11, 30400, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED)
	e11.Attributes = &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{
		ScheduledEventId: 10, Failure: &failurepb.Failure{Message: "host h2 does not answer"}}}
	e12 := ev(12, 30500, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
	e12.Attributes = &historypb.HistoryEvent_WorkflowExecutionFailedEventAttributes{WorkflowExecutionFailedEventAttributes: &historypb.WorkflowExecutionFailedEventAttributes{
		Failure: &failurepb.Failure{Message: "activity error", Cause: &failurepb.Failure{Message: "host h2 does not answer"}}}}
	return []*historypb.HistoryEvent{e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12}
}

var deployWords = []string{
	"workflow DeployStack started for dana",
	"workflow task scheduled",
	"activity StartInstance for instance shop-dev-web-1 on host h1 scheduled",
	"activity StartInstance for instance shop-dev-web-1 on host h1 started, attempt 3 (the last one failed: engine busy)",
	"activity StartInstance for instance shop-dev-web-1 on host h1 completed (12 ms), attempt 3",
	"local activity RecordInstances completed",
	"timer 30s started",
	"timer 30s fired",
	// Markup stays text here; escaping it is the page's job.
	"signal approval from alice (approved): “<script>window.x=1</script>”",
	"activity ProbeHost on host h2 scheduled",
	"activity ProbeHost on host h2 failed: host h2 does not answer",
	"workflow failed: activity error: host h2 does not answer",
}

func texts(evs []Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}

// TestDescribe: each event in domain words, the activities named by what
// their input works on, and closing events by what they close.
func TestDescribe(t *testing.T) {
	hr := newReader(nil)
	var evs []Event
	for _, e := range deployHistory(t) {
		evs = append(evs, hr.describe(e))
	}
	require.Equal(t, deployWords, texts(evs))
	require.Equal(t, "ActivityTaskStarted", evs[3].Type)
	require.Equal(t, "WorkflowExecutionStarted", evs[0].Type)
	require.True(t, evs[1].Engine)
	require.Equal(t, "engine", evs[1].Category)
	require.Equal(t, "local-activity", evs[5].Category)
	require.Equal(t, "signal", evs[8].Category)
	require.Equal(t, time.Date(2025, 3, 4, 10, 0, 30, 400_000_000, time.UTC), evs[10].At)
	var failed []int64
	for _, e := range evs {
		if e.Failed {
			failed = append(failed, e.ID)
		}
	}
	require.Equal(t, []int64{11, 12}, failed)
	require.Empty(t, hr.open, "every activity and timer that opened also closed")
}

// TestReadPages: Temporal's pages (4 and 8 events) are cut to the size asked,
// and a page's token carries what is still open, so the next page names the
// activity it completes and how long it took.
func TestReadPages(t *testing.T) {
	evs := deployHistory(t)
	fh := &fakeHistory{pages: map[string]*workflowservice.GetWorkflowExecutionHistoryResponse{
		"":   {History: &historypb.History{Events: evs[:4]}, NextPageToken: []byte("p2")},
		"p2": {History: &historypb.History{Events: evs[4:]}},
	}}
	ctx := context.Background()
	var got []string
	token := ""
	for i := 0; i < 3; i++ {
		p, err := Read(ctx, fh, nil, "ns", "deploy/shop/dev/web", "run-1", token, 4)
		require.NoError(t, err)
		require.Len(t, p.Events, 4)
		got = append(got, texts(p.Events)...)
		token = p.Next
		require.Equal(t, i < 2, token != "", "page %d", i+1)
	}
	require.Equal(t, deployWords, got)
	require.Equal(t, "ns", fh.asked[0].GetNamespace())
	require.Equal(t, "deploy/shop/dev/web", fh.asked[0].GetExecution().GetWorkflowId())
	require.Equal(t, "run-1", fh.asked[0].GetExecution().GetRunId())
	require.EqualValues(t, 4, fh.asked[0].GetMaximumPageSize())
	require.Equal(t, "p2", string(fh.asked[1].GetNextPageToken()))

	// One page large enough reads on through both of Temporal's pages.
	p, err := Read(ctx, fh, nil, "ns", "w", "r", "", 100)
	require.NoError(t, err)
	require.Equal(t, deployWords, texts(p.Events))
	require.Empty(t, p.Next)
}

// TestReadErrors: a token berth did not give out is refused before Temporal
// is asked; Temporal's errors come back unchanged for the caller to word.
func TestReadErrors(t *testing.T) {
	fh := &fakeHistory{}
	for _, tok := range []string{"garbage", "e30", "eyJzIjotMX0"} { // not base64 JSON, {}, {"s":-1}
		_, err := Read(context.Background(), fh, nil, "ns", "w", "r", tok, 10)
		require.Equal(t, berth.EInvalid, berth.ErrorCode(err), tok)
	}
	require.Empty(t, fh.asked)

	fh.err = serviceerror.NewNotFound("gone")
	_, err := Read(context.Background(), fh, nil, "ns", "w", "r", "", 10)
	var nf *serviceerror.NotFound
	require.True(t, errors.As(err, &nf))
}

// TestCarryKeepsNewest: a token carries at most maxOpen open events, the
// newest, so a history with many parallel activities keeps tokens small.
func TestCarryKeepsNewest(t *testing.T) {
	hr := newReader(nil)
	for id := int64(1); id <= maxOpen+20; id++ {
		hr.open[id] = openEvent{Label: "activity"}
	}
	kept := hr.carry()
	require.Len(t, kept, maxOpen)
	require.Contains(t, kept, int64(maxOpen+20))
	require.NotContains(t, kept, int64(20))
}

func TestWords(t *testing.T) {
	require.Equal(t, "timer fired", enumWords("TimerFired"))
	require.Equal(t, "timer fired", enumWords("TIMER_FIRED"))
	require.Equal(t, "TimerFired", pascal("TIMER_FIRED"))
	require.Equal(t, "no reason given", failureText(nil))
	// A cause that repeats its parent is said once; a bare timeout says which.
	require.Equal(t, "activity error: start to close timeout", failureText(&failurepb.Failure{Message: "activity error",
		Cause: &failurepb.Failure{FailureInfo: &failurepb.Failure_TimeoutFailureInfo{TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{
			TimeoutType: enumspb.TIMEOUT_TYPE_START_TO_CLOSE}}}}))
	require.Equal(t, "a: b", failureText(&failurepb.Failure{Message: "a", Cause: &failurepb.Failure{Message: "a", Cause: &failurepb.Failure{Message: "b"}}}))
}

// TestDependsOnNoServerOrStore keeps the package a translator (doc.go).
func TestDependsOnNoServerOrStore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/gin-gonic/gin", "gorm.io/gorm",
			"github.com/berth-dev/berth/store", "github.com/berth-dev/berth/server",
			"github.com/berth-dev/berth/activities", "github.com/berth-dev/berth/workflows"} {
			require.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "runhistory depends on %s", dep)
		}
	}
}
