package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The step table reads waits and run times from a history's timestamps:
// here one workflow task (2 ms wait, 5 ms run), one local activity and
// one activity (10 ms wait, 300 ms run) in a run of 400 ms.
func TestStepTimesFromAHistory(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(ms int) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	events := []*historypb.HistoryEvent{
		{EventId: 1, EventTime: at(0), EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED},
		{EventId: 2, EventTime: at(1), EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED},
		{EventId: 3, EventTime: at(3), EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, Attributes: &historypb.HistoryEvent_WorkflowTaskStartedEventAttributes{
			WorkflowTaskStartedEventAttributes: &historypb.WorkflowTaskStartedEventAttributes{ScheduledEventId: 2}}},
		{EventId: 4, EventTime: at(8), EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, Attributes: &historypb.HistoryEvent_WorkflowTaskCompletedEventAttributes{
			WorkflowTaskCompletedEventAttributes: &historypb.WorkflowTaskCompletedEventAttributes{ScheduledEventId: 2, StartedEventId: 3}}},
		{EventId: 5, EventTime: at(8), EventType: enumspb.EVENT_TYPE_MARKER_RECORDED, Attributes: &historypb.HistoryEvent_MarkerRecordedEventAttributes{
			MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: "LocalActivity"}}},
		{EventId: 6, EventTime: at(8), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{
			ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{ActivityType: &commonpb.ActivityType{Name: "StartInstance"}}}},
		{EventId: 7, EventTime: at(18), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, Attributes: &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{
			ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{ScheduledEventId: 6}}},
		{EventId: 8, EventTime: at(318), EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, Attributes: &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{
			ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{ScheduledEventId: 6, StartedEventId: 7}}},
		{EventId: 9, EventTime: at(400), EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED},
	}
	var s stepTimes
	s.add(events)
	require.Equal(t, 1, s.runs)
	require.Equal(t, []time.Duration{400 * time.Millisecond}, s.walls)
	require.Equal(t, 1, s.localActivities)
	require.Equal(t, []time.Duration{2 * time.Millisecond}, s.rows[workflowTaskRow].wait)
	require.Equal(t, []time.Duration{5 * time.Millisecond}, s.rows[workflowTaskRow].run)
	require.Equal(t, []time.Duration{10 * time.Millisecond}, s.rows["StartInstance"].wait)
	require.Equal(t, []time.Duration{300 * time.Millisecond}, s.rows["StartInstance"].run)
	require.Equal(t, 7*time.Millisecond, s.engineOverhead())
	table := s.table("deploy of 1")
	require.Contains(t, table, "deploy of 1: 1 run(s), wall median 400.0ms, 1 local activities per run")
	lines := strings.Split(table, "\n")
	require.Contains(t, lines[2], "StartInstance", "most time first")
	require.Contains(t, lines[2], "300.0ms")
}
