package cmdbtest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/cmdb"
)

// Receiver holds CIs by id and answers the contract's PUT, DELETE and GET.
type Receiver struct {
	// Token, when set, is the bearer token every request must carry.
	Token string

	mu         sync.Mutex
	cis        map[string]cmdb.CI
	tombstones map[string]cmdb.Tombstone
	puts       int
	deletes    int
	fail       int
}

// New returns an empty receiver.
func New(token string) *Receiver {
	return &Receiver{Token: token, cis: map[string]cmdb.CI{}, tombstones: map[string]cmdb.Tombstone{}}
}

// ServeHTTP answers one request of the contract.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Token != "" && req.Header.Get("Authorization") != "Bearer "+r.Token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if r.fail > 0 {
		r.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if req.URL.Path == "/cis" && req.Method == http.MethodGet {
		mark := req.URL.Query().Get("managedBy")
		out := []cmdb.CI{}
		for _, id := range r.sortedIDs("") {
			if ci := r.cis[id]; mark == "" || ci.Attributes["managedBy"] == mark {
				out = append(out, ci)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	id, ok := strings.CutPrefix(req.URL.Path, "/cis/")
	if !ok || id == "" {
		http.NotFound(w, req)
		return
	}
	switch req.Method {
	case http.MethodPut:
		var ci cmdb.CI
		if err := json.NewDecoder(req.Body).Decode(&ci); err != nil || ci.ID != id {
			http.Error(w, "bad ci", http.StatusBadRequest)
			return
		}
		r.puts++
		r.cis[id] = ci
		delete(r.tombstones, id)
	case http.MethodDelete:
		r.deletes++
		if _, ok := r.cis[id]; !ok {
			http.NotFound(w, req)
			return
		}
		var t cmdb.Tombstone
		_ = json.NewDecoder(req.Body).Decode(&t)
		delete(r.cis, id)
		r.tombstones[id] = t
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (r *Receiver) sortedIDs(prefix string) []string {
	var out []string
	for id := range r.cis {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// IDs lists the held CI ids that start with prefix, sorted.
func (r *Receiver) IDs(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sortedIDs(prefix)
}

// Get returns a held CI.
func (r *Receiver) Get(id string) (cmdb.CI, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ci, ok := r.cis[id]
	return ci, ok
}

// Tombstone returns what the delete of id said, if it was deleted.
func (r *Receiver) Tombstone(id string) (cmdb.Tombstone, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tombstones[id]
	return t, ok
}

// Put stores a CI as if another writer had, so a test can drift on purpose.
func (r *Receiver) Put(ci cmdb.CI) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cis[ci.ID] = ci
}

// Drop removes a CI behind berth's back.
func (r *Receiver) Drop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.cis, id)
}

// FailNext makes the next n requests answer 503.
func (r *Receiver) FailNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = n
}

// Counts says how many PUTs and DELETEs were asked.
func (r *Receiver) Counts() (puts, deletes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.puts, r.deletes
}
