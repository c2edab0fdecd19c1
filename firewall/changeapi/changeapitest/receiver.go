package changeapitest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/firewall/changeapi"
)

// Receiver holds changes by id.
type Receiver struct {
	// Delay is how long a change stays pending before it is decided.
	Delay time.Duration

	mu      sync.Mutex
	changes map[string]*held
	reject  map[string]string // instance-name prefix → reason
	open    map[string]bool   // opening ids applied and not closed
}

type held struct {
	change   changeapi.Change
	received time.Time
	status   changeapi.Status
}

// New returns a change API that decides changes after delay.
func New(delay time.Duration) *Receiver {
	return &Receiver{Delay: delay, changes: map[string]*held{}, reject: map[string]string{}, open: map[string]bool{}}
}

// SetDelay changes how long new decisions wait.
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Delay = d
}

// RejectFor makes every change that opens a port of an instance whose name
// starts with prefix be rejected with reason.
func (r *Receiver) RejectFor(prefix, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject[prefix] = reason
}

// Open says whether an opening is applied (and not closed since).
func (r *Receiver) Open(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open[id]
}

// Changes lists the changes received that touch an opening whose id starts with prefix.
func (r *Receiver) Changes(prefix string) []changeapi.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []changeapi.Change
	for _, h := range r.changes {
		for _, o := range h.change.Openings {
			if strings.HasPrefix(o.ID, prefix) {
				out = append(out, h.change)
				break
			}
		}
		for _, id := range h.change.IDs {
			if strings.HasPrefix(id, prefix) {
				out = append(out, h.change)
				break
			}
		}
	}
	return out
}

// decide settles a pending change whose delay has passed.
func (r *Receiver) decide(h *held) {
	if h.status.State != changeapi.StatePending || time.Since(h.received) < r.Delay {
		return
	}
	if h.change.Action == changeapi.ActionOpen {
		for _, o := range h.change.Openings {
			for prefix, reason := range r.reject {
				if strings.HasPrefix(o.ID, prefix) {
					h.status.State, h.status.Reason = changeapi.StateRejected, reason
					return
				}
			}
		}
		for _, o := range h.change.Openings {
			r.open[o.ID] = true
		}
	} else {
		for _, id := range h.change.IDs {
			delete(r.open, id)
		}
	}
	h.status.State, h.status.Reason = changeapi.StateApplied, "applied by the network team"
}

// ServeHTTP answers the contract's PUT and GET.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := strings.CutPrefix(req.URL.Path, "/changes/")
	if !ok || id == "" {
		http.NotFound(w, req)
		return
	}
	h := r.changes[id]
	switch req.Method {
	case http.MethodPut:
		var c changeapi.Change
		if err := json.NewDecoder(req.Body).Decode(&c); err != nil || c.ID != id ||
			(c.Action != changeapi.ActionOpen && c.Action != changeapi.ActionClose) {
			http.Error(w, "bad change", http.StatusBadRequest)
			return
		}
		if h == nil {
			h = &held{change: c, received: time.Now(), status: changeapi.Status{ID: id, State: changeapi.StatePending}}
			r.changes[id] = h
			if c.Action == changeapi.ActionClose {
				// Closing what is not open here is done at once.
				isOpen := false
				for _, oid := range c.IDs {
					isOpen = isOpen || r.open[oid]
				}
				if !isOpen {
					h.status.State = changeapi.StateApplied
				}
			}
			w.WriteHeader(http.StatusCreated)
		}
	case http.MethodGet:
		if h == nil {
			http.NotFound(w, req)
			return
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	r.decide(h)
	_ = json.NewEncoder(w).Encode(h.status)
}
