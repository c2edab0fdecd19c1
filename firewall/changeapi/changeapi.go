package changeapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/firewall"
)

// Actions of a change.
const (
	ActionOpen  = "open"
	ActionClose = "close"
)

// States of a change.
const (
	StatePending  = "pending"
	StateApplied  = "applied"
	StateRejected = "rejected"
)

// Change is what berth asks of the network team.
type Change struct {
	ID       string             `json:"id"`
	Action   string             `json:"action"`
	Openings []firewall.Opening `json:"openings,omitempty"` // open: what to allow
	IDs      []string           `json:"ids,omitempty"`      // close: the openings to remove
	Reason   string             `json:"reason"`             // why, for the reviewer: run and subject
}

// Status is where a change stands.
type Status struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"` // why it was rejected, or a note
}

// ChangeID names a change by what it asks, so a retried submission of the
// same openings finds the change already made.
func ChangeID(action string, keys []string) string {
	ks := append([]string(nil), keys...)
	sort.Strings(ks)
	sum := sha256.Sum256([]byte(action + "\n" + strings.Join(ks, "\n")))
	return "berth-" + action + "-" + hex.EncodeToString(sum[:10])
}

// ErrRejected marks a refusal no retry can fix (a 4xx other than 404, 409, 429).
var ErrRejected = errors.New("the change API rejected the request")

// HTTP is the contract berth speaks to a change API:
//
//	PUT {base}/changes/{id}  body: Change → 200 or 201, a Status
//	GET {base}/changes/{id}               → 200, a Status; 404 if unknown
//
// PUT is idempotent by id: a change already submitted answers its status.
type HTTP struct {
	Base   string
	Token  string
	Client *http.Client
}

// NewHTTP returns the driver.
func NewHTTP(base, token string) *HTTP {
	return &HTTP{Base: strings.TrimRight(base, "/"), Token: token, Client: &http.Client{Timeout: 15 * time.Second}}
}

// Submit sends a change (or finds it, when it was sent before).
func (h *HTTP) Submit(ctx context.Context, c Change) (Status, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return Status{}, err
	}
	return h.call(ctx, http.MethodPut, c.ID, body)
}

// Status reads where a change stands.
func (h *HTTP) Status(ctx context.Context, id string) (Status, error) {
	return h.call(ctx, http.MethodGet, id, nil)
}

func (h *HTTP) call(ctx context.Context, method, id string, body []byte) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.Base+"/changes/"+url.PathEscape(id), bytes.NewReader(body))
	if err != nil {
		return Status{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("change %s: %w", id, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusNotFound &&
		resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusTooManyRequests:
		return Status{}, fmt.Errorf("%w: %s change %s: %d %s", ErrRejected, method, id, resp.StatusCode, strings.TrimSpace(string(data)))
	default:
		return Status{}, fmt.Errorf("%s change %s: %d %s", method, id, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, fmt.Errorf("change %s: the answer is not a status: %w", id, err)
	}
	switch st.State {
	case StatePending, StateApplied, StateRejected:
	default:
		return Status{}, fmt.Errorf("change %s: unknown state %q", id, st.State)
	}
	return st, nil
}
