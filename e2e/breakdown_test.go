package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// stepTimes is where runs spent their time, read from their Temporal
// histories: the workflow tasks (waiting for a worker, then running the
// workflow code and its local activities, which are berth's store writes),
// and each activity type (waiting for a worker, then running). make bench
// prints it beside the overhead ratio, so each change to the pipeline is
// measured step by step against the one before.
type stepTimes struct {
	runs  int
	walls []time.Duration
	// localActivities counts store writes and reads done inside workflow
	// tasks; the payloads are sealed, so they are counted, not named.
	localActivities int
	rows            map[string]*stepRow
}

// stepRow is one kind of step: its schedule-to-start waits and its
// start-to-close times.
type stepRow struct {
	wait, run []time.Duration
}

const workflowTaskRow = "(workflow task)"

// add reads one closed run's history into s.
func (s *stepTimes) add(events []*historypb.HistoryEvent) {
	if s.rows == nil {
		s.rows = map[string]*stepRow{}
	}
	row := func(name string) *stepRow {
		r := s.rows[name]
		if r == nil {
			r = &stepRow{}
			s.rows[name] = r
		}
		return r
	}
	at := map[int64]time.Time{}    // event id → time, for scheduled and started events
	activity := map[int64]string{} // scheduled event id → activity type
	var begin time.Time
	for _, ev := range events {
		t := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			begin = t
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			s.runs++
			s.walls = append(s.walls, t.Sub(begin))
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			at[ev.GetEventId()] = t
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			at[ev.GetEventId()] = t
			r := row(workflowTaskRow)
			r.wait = append(r.wait, t.Sub(at[ev.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]))
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			r := row(workflowTaskRow)
			r.run = append(r.run, t.Sub(at[ev.GetWorkflowTaskCompletedEventAttributes().GetStartedEventId()]))
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				s.localActivities++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			at[ev.GetEventId()] = t
			activity[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			// Written when the last attempt ends: the wait includes retries.
			id := ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()
			at[ev.GetEventId()] = t
			row(activity[id]).wait = append(row(activity[id]).wait, t.Sub(at[id]))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			row(activity[a.GetScheduledEventId()]).run = append(row(activity[a.GetScheduledEventId()]).run, t.Sub(at[a.GetStartedEventId()]))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			a := ev.GetActivityTaskFailedEventAttributes()
			row(activity[a.GetScheduledEventId()]).run = append(row(activity[a.GetScheduledEventId()]).run, t.Sub(at[a.GetStartedEventId()]))
		}
	}
}

// table writes s as aligned columns: per run, then per kind of step its
// count, median and largest wait for a worker, and median, largest and
// total run time. Totals of steps that run side by side exceed the wall.
func (s *stepTimes) table(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d run(s), wall median %s, %d local activities per run\n", title, s.runs,
		ms(median(s.walls)), s.localActivities/max(s.runs, 1))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tper run\twait p50\twait max\trun p50\trun max\trun total per run\t")
	names := make([]string, 0, len(s.rows))
	for n := range s.rows {
		names = append(names, n)
	}
	// Most time first: where to cut next.
	sort.Slice(names, func(i, j int) bool {
		ti, tj := sum(s.rows[names[i]].run), sum(s.rows[names[j]].run)
		if ti != tj {
			return ti > tj
		}
		return names[i] < names[j]
	})
	runs := time.Duration(max(s.runs, 1))
	for _, n := range names {
		r := s.rows[n]
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", n, float64(len(r.run))/float64(runs),
			ms(median(r.wait)), ms(slices.Max(append([]time.Duration{0}, r.wait...))),
			ms(median(r.run)), ms(slices.Max(append([]time.Duration{0}, r.run...))), ms(sum(r.run)/runs))
	}
	_ = tw.Flush()
	return b.String()
}

// engineOverhead is the median time a workflow task waits for a worker
// plus the median time it runs: what the engine adds to every sequential
// step of a run.
func (s *stepTimes) engineOverhead() time.Duration {
	r := s.rows[workflowTaskRow]
	if r == nil {
		return 0
	}
	return median(r.wait) + median(r.run)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// readSteps adds a closed run's history to s.
func (hs *harness) readSteps(t testing.TB, s *stepTimes, workflowID, runID string) {
	t.Helper()
	events, closed := hs.history(t, workflowID, runID)
	if !closed {
		t.Fatalf("run %s/%s has not closed", workflowID, runID)
	}
	s.add(events)
}
