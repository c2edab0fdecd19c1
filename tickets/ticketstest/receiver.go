package ticketstest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/tickets"
)

// Held is one ticket as the system holds it.
type Held struct {
	tickets.Ticket
	State      string // open or resolved
	Updates    int    // PUTs after the one that created it
	Resolution tickets.Resolution
}

// Receiver holds tickets by key.
type Receiver struct {
	Token string

	mu      sync.Mutex
	tickets map[string]*Held
	down    bool
}

// New returns an empty ticket system.
func New(token string) *Receiver { return &Receiver{Token: token, tickets: map[string]*Held{}} }

// ServeHTTP answers one request of the contract.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.Token != "" && req.Header.Get("Authorization") != "Bearer "+r.Token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/tickets/")
	if !ok || rest == "" {
		http.NotFound(w, req)
		return
	}
	switch {
	case req.Method == http.MethodPut:
		var t tickets.Ticket
		if err := json.NewDecoder(req.Body).Decode(&t); err != nil || t.Key != rest || t.Title == "" {
			http.Error(w, "bad ticket", http.StatusBadRequest)
			return
		}
		if h, ok := r.tickets[t.Key]; ok && h.State == "open" {
			h.Ticket = t
			h.Updates++
			return
		}
		r.tickets[t.Key] = &Held{Ticket: t, State: "open"}
		w.WriteHeader(http.StatusCreated)
	case req.Method == http.MethodPost && strings.HasSuffix(rest, "/resolve"):
		key := strings.TrimSuffix(rest, "/resolve")
		h, ok := r.tickets[key]
		if !ok {
			http.NotFound(w, req)
			return
		}
		_ = json.NewDecoder(req.Body).Decode(&h.Resolution)
		h.State = "resolved"
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// Find returns the tickets whose key starts with prefix, by key.
func (r *Receiver) Find(prefix string) []Held {
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys []string
	for k := range r.tickets {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]Held, 0, len(keys))
	for _, k := range keys {
		out = append(out, *r.tickets[k])
	}
	return out
}

// SetDown makes every request fail with 503 until it is set back.
func (r *Receiver) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}
