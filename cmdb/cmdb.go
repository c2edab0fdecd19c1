package cmdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CI is one configuration item.
type CI struct {
	ID         string            `json:"id"`
	Kind       string            `json:"kind"` // tenant, environment, application, service, instance or host
	Attributes map[string]string `json:"attributes"`
	Relations  []Relation        `json:"relations,omitempty"`
}

// Relation points from one CI to another (instance runs-on host, …).
type Relation struct {
	Type   string `json:"type"`
	Target string `json:"target"`
}

// Tombstone says when and by whom a CI was deleted, for a CMDB that keeps
// the history of what it held.
type Tombstone struct {
	Deleted   string `json:"deleted,omitempty"`
	DeletedBy string `json:"deletedBy,omitempty"`
}

// Driver pushes CIs, and lists the ones berth manages so a resync can
// repair drift both ways.
type Driver interface {
	Upsert(ctx context.Context, ci CI) error
	Delete(ctx context.Context, id string, t Tombstone) error
	List(ctx context.Context, managedBy string) ([]CI, error)
}

// MaxList is the most CIs one list answer may hold: a CMDB that answers
// with more is refused rather than read into memory without bound.
const MaxList = 200_000

// ErrRejected marks a refusal no retry can fix (a 4xx other than 404/409/429).
var ErrRejected = errors.New("cmdb rejected the request")

// None pushes nothing.
type None struct{}

// Upsert does nothing.
func (None) Upsert(context.Context, CI) error { return nil }

// Delete does nothing.
func (None) Delete(context.Context, string, Tombstone) error { return nil }

// List holds nothing.
func (None) List(context.Context, string) ([]CI, error) { return nil, nil }

// HTTP is the contract berth speaks to a CMDB:
//
//	PUT    {base}/cis/{id}  body: CI as JSON        → 2xx (created or replaced)
//	DELETE {base}/cis/{id}  body: Tombstone as JSON → 2xx, or 404 when already gone
//	GET    {base}/cis?managedBy=berth               → 200, a JSON array of CIs
//
// PUT and DELETE are idempotent by CI id, so retries are safe. The list
// holds every CI whose managedBy attribute is berth's mark.
type HTTP struct {
	Base   string
	Token  string
	Client *http.Client
}

// NewHTTP returns the HTTP driver.
func NewHTTP(base, token string) *HTTP {
	return &HTTP{Base: strings.TrimRight(base, "/"), Token: token, Client: &http.Client{Timeout: 10 * time.Second}}
}

// Upsert creates or replaces a CI.
func (h *HTTP) Upsert(ctx context.Context, ci CI) error {
	body, err := json.Marshal(ci)
	if err != nil {
		return err
	}
	return h.do(ctx, http.MethodPut, ci.ID, body, false)
}

// Delete removes a CI; one that is already gone counts as deleted.
func (h *HTTP) Delete(ctx context.Context, id string, t Tombstone) error {
	body, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return h.do(ctx, http.MethodDelete, id, body, true)
}

// List reads every CI the CMDB holds with managedBy's mark.
func (h *HTTP) List(ctx context.Context, managedBy string) ([]CI, error) {
	req, err := h.request(ctx, http.MethodGet, h.Base+"/cis?managedBy="+url.QueryEscape(managedBy), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cmdb list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("cmdb list: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	dec := json.NewDecoder(resp.Body)
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("cmdb list: %w", err)
	}
	var out []CI
	for dec.More() {
		if len(out) == MaxList {
			return nil, fmt.Errorf("%w: the list holds more than %d items", ErrRejected, MaxList)
		}
		var ci CI
		if err := dec.Decode(&ci); err != nil {
			return nil, fmt.Errorf("cmdb list: %w", err)
		}
		out = append(out, ci)
	}
	return out, nil
}

func (h *HTTP) request(ctx context.Context, method, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	return req, nil
}

func (h *HTTP) do(ctx context.Context, method, id string, body []byte, goneOK bool) error {
	req, err := h.request(ctx, method, h.Base+"/cis/"+url.PathEscape(id), body)
	if err != nil {
		return err
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("cmdb %s %s: %w", method, id, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusNotFound && goneOK:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s %s: %d %s", ErrRejected, method, id, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("cmdb %s %s: %d %s", method, id, resp.StatusCode, strings.TrimSpace(string(msg)))
}
