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
	Kind       string            `json:"kind"` // service or instance
	Attributes map[string]string `json:"attributes"`
}

// Driver pushes CIs.
type Driver interface {
	Upsert(ctx context.Context, ci CI) error
	Delete(ctx context.Context, id string) error
}

// ErrRejected marks a refusal no retry can fix (a 4xx other than 404/409/429).
var ErrRejected = errors.New("cmdb rejected the request")

// None pushes nothing.
type None struct{}

// Upsert does nothing.
func (None) Upsert(context.Context, CI) error { return nil }

// Delete does nothing.
func (None) Delete(context.Context, string) error { return nil }

// HTTP is the contract berth speaks to a CMDB:
//
//	PUT    {base}/cis/{id}  body: CI as JSON → 2xx (created or replaced)
//	DELETE {base}/cis/{id}                  → 2xx, or 404 when already gone
//
// Both are idempotent by CI id, so retries are safe.
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
func (h *HTTP) Delete(ctx context.Context, id string) error {
	return h.do(ctx, http.MethodDelete, id, nil, true)
}

func (h *HTTP) do(ctx context.Context, method, id string, body []byte, goneOK bool) error {
	req, err := http.NewRequestWithContext(ctx, method, h.Base+"/cis/"+url.PathEscape(id), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
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
