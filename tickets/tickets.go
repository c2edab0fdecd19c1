package tickets

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

// Ticket is what berth says about one incident.
type Ticket struct {
	Key         string            `json:"key"`
	Title       string            `json:"title"`
	Body        string            `json:"body"`
	Severity    string            `json:"severity"` // critical, major or minor
	Link        string            `json:"link,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Occurrences int               `json:"occurrences"`
	OpenedAt    string            `json:"openedAt"`
}

// Resolution says why a ticket is resolved.
type Resolution struct {
	Note       string `json:"note"`
	ResolvedAt string `json:"resolvedAt"`
}

// Driver opens (or updates) and resolves tickets; both are idempotent by key.
type Driver interface {
	Open(ctx context.Context, t Ticket) error
	Resolve(ctx context.Context, key string, r Resolution) error
}

// ErrRejected marks a refusal no retry can fix (a 4xx other than 404, 409, 429).
var ErrRejected = errors.New("the ticket system rejected the request")

// None opens no tickets.
type None struct{}

// Open does nothing.
func (None) Open(context.Context, Ticket) error { return nil }

// Resolve does nothing.
func (None) Resolve(context.Context, string, Resolution) error { return nil }

// HTTP is the contract berth speaks to a ticket system:
//
//	PUT  {base}/tickets/{key}          body: Ticket     → 2xx (created, or updated if open)
//	POST {base}/tickets/{key}/resolve  body: Resolution → 2xx, or 404 when there is none
//
// Both are idempotent by key, so a retried delivery never makes a second
// ticket or resolves one twice.
type HTTP struct {
	Base   string
	Token  string
	Client *http.Client
}

// NewHTTP returns the HTTP driver.
func NewHTTP(base, token string) *HTTP {
	return &HTTP{Base: strings.TrimRight(base, "/"), Token: token, Client: &http.Client{Timeout: 10 * time.Second}}
}

// Open creates the ticket, or updates it when it is already open.
func (h *HTTP) Open(ctx context.Context, t Ticket) error {
	return h.send(ctx, http.MethodPut, "/tickets/"+url.PathEscape(t.Key), t, false)
}

// Resolve resolves the ticket; one the system does not hold counts as done.
func (h *HTTP) Resolve(ctx context.Context, key string, r Resolution) error {
	return h.send(ctx, http.MethodPost, "/tickets/"+url.PathEscape(key)+"/resolve", r, true)
}

func (h *HTTP) send(ctx context.Context, method, path string, body any, goneOK bool) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, h.Base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("tickets %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusNotFound && goneOK:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s %s: %d %s", ErrRejected, method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("tickets %s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
}
