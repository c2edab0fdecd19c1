package cmdb

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// contractCMDB is an in-memory CMDB that speaks the contract of HTTP and
// counts what it was asked, so idempotency can be checked.
type contractCMDB struct {
	mu      sync.Mutex
	cis     map[string]CI
	puts    int
	deletes int
	fail    int // answer 503 this many times first
}

func (c *contractCMDB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer secret" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if c.fail > 0 {
		c.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/cis/")
	if !ok || id == "" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		var ci CI
		if err := json.NewDecoder(r.Body).Decode(&ci); err != nil || ci.ID != id {
			http.Error(w, "bad ci", http.StatusBadRequest)
			return
		}
		c.puts++
		c.cis[id] = ci
	case http.MethodDelete:
		c.deletes++
		if _, ok := c.cis[id]; !ok {
			http.NotFound(w, r)
			return
		}
		delete(c.cis, id)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func newContract(t *testing.T) (*contractCMDB, *HTTP) {
	t.Helper()
	c := &contractCMDB{cis: map[string]CI{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, NewHTTP(srv.URL, "secret")
}

func TestHTTPUpsertAndDeleteAreIdempotent(t *testing.T) {
	c, d := newContract(t)
	ctx := context.Background()
	ci := CI{ID: "instance:acme-dev-shop-web-1", Kind: "instance", Attributes: map[string]string{"host": "h1", "port": "30001"}}
	require.NoError(t, d.Upsert(ctx, ci))
	require.NoError(t, d.Upsert(ctx, ci))
	require.Len(t, c.cis, 1)
	require.Equal(t, ci, c.cis[ci.ID])
	require.NoError(t, d.Delete(ctx, ci.ID))
	require.NoError(t, d.Delete(ctx, ci.ID), "deleting a CI that is gone is not an error")
	require.Empty(t, c.cis)
	require.Equal(t, 2, c.puts)
	require.Equal(t, 2, c.deletes)
}

func TestHTTPErrorsSayWhetherARetryHelps(t *testing.T) {
	c, d := newContract(t)
	ctx := context.Background()
	c.fail = 1
	err := d.Upsert(ctx, CI{ID: "service:a/b/c/web", Kind: "service"})
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrRejected), "a 503 is worth retrying")
	require.NoError(t, d.Upsert(ctx, CI{ID: "service:a/b/c/web", Kind: "service"}))

	bad := NewHTTP(d.Base, "wrong")
	err = bad.Upsert(ctx, CI{ID: "x", Kind: "service"})
	require.ErrorIs(t, err, ErrRejected)
	require.Contains(t, err.Error(), "401")
}

func TestHTTPEscapesIDs(t *testing.T) {
	c, d := newContract(t)
	require.NoError(t, d.Upsert(context.Background(), CI{ID: "service:a/b", Kind: "service"}))
	_, ok := c.cis["service:a/b"]
	require.True(t, ok)
}
