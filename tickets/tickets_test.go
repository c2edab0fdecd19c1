package tickets_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/tickets"
	"github.com/berth-dev/berth/tickets/ticketstest"
)

// Opening twice updates one ticket, resolving twice (or resolving one the
// system never had) is no error, and errors say whether a retry helps.
func TestHTTPIsIdempotentByKey(t *testing.T) {
	sys := ticketstest.New("secret")
	srv := httptest.NewServer(sys)
	defer srv.Close()
	d := tickets.NewHTTP(srv.URL, "secret")
	ctx := context.Background()
	tk := tickets.Ticket{Key: "run-failed/release:acme/dev/shop/web#1", Title: "release failed", Severity: "major", Occurrences: 1}
	require.NoError(t, d.Open(ctx, tk))
	tk.Occurrences = 2
	require.NoError(t, d.Open(ctx, tk))
	got := sys.Find("run-failed/")
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Occurrences)
	require.Equal(t, 1, got[0].Updates)
	require.NoError(t, d.Resolve(ctx, tk.Key, tickets.Resolution{Note: "run 9 succeeded"}))
	require.NoError(t, d.Resolve(ctx, tk.Key, tickets.Resolution{Note: "again"}))
	require.NoError(t, d.Resolve(ctx, "never-opened#1", tickets.Resolution{}), "a ticket the system does not hold counts as resolved")
	require.Equal(t, "resolved", sys.Find("run-failed/")[0].State)

	sys.SetDown(true)
	err := d.Open(ctx, tk)
	require.Error(t, err)
	require.False(t, errors.Is(err, tickets.ErrRejected), "a 503 is worth retrying")
	sys.SetDown(false)
	err = tickets.NewHTTP(srv.URL, "wrong").Open(ctx, tk)
	require.ErrorIs(t, err, tickets.ErrRejected)
	err = d.Open(ctx, tickets.Ticket{Key: "no-title#1"})
	require.ErrorIs(t, err, tickets.ErrRejected, "a 400 is not retried")
}
