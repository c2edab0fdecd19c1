package runhistory

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/berth-dev/berth"
)

// maxOpen bounds what a page token carries forward.
const maxOpen = 100

// Event is one workflow event in domain words.
type Event struct {
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

// Page is one page of a workflow's history.
type Page struct {
	Events []Event
	// Next is the token that asks for the next page; "" on the last one.
	Next string
}

// cursor is what a page token holds: Temporal's token of the page to read,
// how many of that page's events were already shown (Temporal's pages
// follow its stored batches, not the size asked for, so berth cuts its
// own), and the events still open at the page's end (an activity scheduled
// on this page may complete on the next), so later pages can name what they
// close.
type cursor struct {
	T    []byte              `json:"t,omitempty"`
	Skip int                 `json:"s,omitempty"`
	Open map[int64]openEvent `json:"o,omitempty"`
}

type openEvent struct {
	Label   string    `json:"l"`
	At      time.Time `json:"a"`
	Attempt int32     `json:"n,omitempty"`
}

func decodeCursor(tok string) (cursor, error) {
	var cur cursor
	if tok == "" {
		return cur, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(b, &cur)
	}
	if err != nil || (len(cur.T) == 0 && cur.Skip == 0) || cur.Skip < 0 {
		return cur, &berth.Error{Code: berth.EInvalid, Message: "pageToken is not one this server gave out; start from the first page"}
	}
	return cur, nil
}

func (cur cursor) encode() string {
	b, _ := json.Marshal(cur)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Read reads one page of at most size events of a workflow run's history,
// from where token (a Page's Next, or "" for the first page) left off. A
// token it did not give out is a *berth.Error (EInvalid), refused before
// Temporal is asked; Temporal's own errors come back as they are, for the
// caller to say what they mean for its run. dc decodes the events' payloads
// (berth's encrypting converter; nil is Temporal's default).
func Read(ctx context.Context, svc workflowservice.WorkflowServiceClient, dc converter.DataConverter, namespace, workflowID, runID, token string, size int) (*Page, error) {
	cur, err := decodeCursor(token)
	if err != nil {
		return nil, err
	}
	hr := newReader(cur.Open)
	if dc != nil {
		hr.dc = dc
	}
	page := &Page{Events: []Event{}}
	var next *cursor
	t, skip := cur.T, cur.Skip
	// Fill the page from as many of Temporal's pages as it takes (a few at most).
	for reads := 0; ; reads++ {
		if reads == 10 {
			next = &cursor{T: t, Skip: skip}
			break
		}
		resp, err := svc.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
			Namespace:              namespace,
			Execution:              &commonpb.WorkflowExecution{WorkflowId: workflowID, RunId: runID},
			MaximumPageSize:        int32(size),
			NextPageToken:          t,
			HistoryEventFilterType: enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
		})
		if err != nil {
			return nil, err
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
			next = &cursor{T: t, Skip: skip + room}
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
			next = &cursor{T: t}
			break
		}
	}
	if next != nil {
		next.Open = hr.carry()
		page.Next = next.encode()
	}
	return page, nil
}
