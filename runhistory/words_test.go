package runhistory

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runhistory/historytest"
)

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
	for _, e := range historytest.DeployHistory(t) {
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
	evs := historytest.DeployHistory(t)
	fh := historytest.InTwoPages(evs, 4)
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
	require.Equal(t, "ns", fh.Asked[0].GetNamespace())
	require.Equal(t, "deploy/shop/dev/web", fh.Asked[0].GetExecution().GetWorkflowId())
	require.Equal(t, "run-1", fh.Asked[0].GetExecution().GetRunId())
	require.EqualValues(t, 4, fh.Asked[0].GetMaximumPageSize())
	require.Equal(t, "p2", string(fh.Asked[1].GetNextPageToken()))

	// One page large enough reads on through both of Temporal's pages.
	p, err := Read(ctx, fh, nil, "ns", "w", "r", "", 100)
	require.NoError(t, err)
	require.Equal(t, deployWords, texts(p.Events))
	require.Empty(t, p.Next)
}

// TestReadErrors: a token berth did not give out is refused before Temporal
// is asked; Temporal's errors come back unchanged for the caller to word.
func TestReadErrors(t *testing.T) {
	fh := &historytest.Service{}
	for _, tok := range []string{"garbage", "e30", "eyJzIjotMX0"} { // not base64 JSON, {}, {"s":-1}
		_, err := Read(context.Background(), fh, nil, "ns", "w", "r", tok, 10)
		require.Equal(t, berth.EInvalid, berth.ErrorCode(err), tok)
	}
	require.Empty(t, fh.Asked)

	fh.Err = serviceerror.NewNotFound("gone")
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
