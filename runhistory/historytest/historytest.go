package historytest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workflows"
)

// Service serves a workflow's history in pages, keyed by page token, and
// records what it was asked.
type Service struct {
	workflowservice.WorkflowServiceClient
	mu    sync.Mutex
	Pages map[string]*workflowservice.GetWorkflowExecutionHistoryResponse
	Err   error
	Asked []*workflowservice.GetWorkflowExecutionHistoryRequest
}

// GetWorkflowExecutionHistory answers the page the token names.
func (f *Service) GetWorkflowExecutionHistory(_ context.Context, in *workflowservice.GetWorkflowExecutionHistoryRequest, _ ...grpc.CallOption) (*workflowservice.GetWorkflowExecutionHistoryResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Asked = append(f.Asked, in)
	if f.Err != nil {
		return nil, f.Err
	}
	return f.Pages[string(in.GetNextPageToken())], nil
}

// InTwoPages serves events as Temporal might: the first cut events on the
// first page, the rest on a second (token "p2").
func InTwoPages(events []*historypb.HistoryEvent, cut int) *Service {
	return &Service{Pages: map[string]*workflowservice.GetWorkflowExecutionHistoryResponse{
		"":   {History: &historypb.History{Events: events[:cut]}, NextPageToken: []byte("p2")},
		"p2": {History: &historypb.History{Events: events[cut:]}},
	}}
}

func payloads(t testing.TB, v any) *commonpb.Payloads {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayloads(v)
	require.NoError(t, err)
	return p
}

func payload(t testing.TB, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

// DeployHistory is a deploy that retried an activity, waited on a timer, was
// approved, and failed probing a host: twelve events, one of them engine
// bookkeeping.
func DeployHistory(t testing.TB) []*historypb.HistoryEvent {
	t.Helper()
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
	// The approval signal as the workflows define it.
	e9.Attributes = &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{
		SignalName: workflows.ApprovalSignal, Identity: "123@api",
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
