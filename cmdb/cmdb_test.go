package cmdb_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/cmdb"
	"github.com/berth-dev/berth/cmdb/cmdbtest"
)

func newContract(t *testing.T) (*cmdbtest.Receiver, *cmdb.HTTP) {
	t.Helper()
	c := cmdbtest.New("secret")
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, cmdb.NewHTTP(srv.URL, "secret")
}

func TestHTTPUpsertAndDeleteAreIdempotent(t *testing.T) {
	c, d := newContract(t)
	ctx := context.Background()
	ci := cmdb.CI{ID: "instance:acme-dev-shop-web-1", Kind: "instance", Attributes: map[string]string{"host": "h1", "port": "30001", "managedBy": "berth"},
		Relations: []cmdb.Relation{{Type: "runs-on", Target: "host:h1"}}}
	require.NoError(t, d.Upsert(ctx, ci))
	require.NoError(t, d.Upsert(ctx, ci))
	require.Equal(t, []string{ci.ID}, c.IDs(""))
	got, _ := c.Get(ci.ID)
	require.Equal(t, ci, got)
	c.Put(cmdb.CI{ID: "server:other-tool", Kind: "server", Attributes: map[string]string{"managedBy": "someone-else"}})
	listed, err := d.List(ctx, "berth")
	require.NoError(t, err)
	require.Equal(t, []cmdb.CI{ci}, listed, "the list holds berth's items only")

	tomb := cmdb.Tombstone{Deleted: "2026-12-07T06:00:00Z", DeletedBy: "alice"}
	require.NoError(t, d.Delete(ctx, ci.ID, tomb))
	require.NoError(t, d.Delete(ctx, ci.ID, tomb), "deleting a CI that is gone is not an error")
	require.Equal(t, []string{"server:other-tool"}, c.IDs(""))
	gotTomb, ok := c.Tombstone(ci.ID)
	require.True(t, ok)
	require.Equal(t, tomb, gotTomb)
	puts, deletes := c.Counts()
	require.Equal(t, 2, puts)
	require.Equal(t, 2, deletes)
}

func TestHTTPErrorsSayWhetherARetryHelps(t *testing.T) {
	c, d := newContract(t)
	ctx := context.Background()
	c.FailNext(1)
	err := d.Upsert(ctx, cmdb.CI{ID: "service:a/b/c/web", Kind: "service"})
	require.Error(t, err)
	require.False(t, errors.Is(err, cmdb.ErrRejected), "a 503 is worth retrying")
	require.NoError(t, d.Upsert(ctx, cmdb.CI{ID: "service:a/b/c/web", Kind: "service"}))
	c.FailNext(1)
	_, err = d.List(ctx, "berth")
	require.ErrorContains(t, err, "503")

	bad := cmdb.NewHTTP(d.Base, "wrong")
	err = bad.Upsert(ctx, cmdb.CI{ID: "x", Kind: "service"})
	require.ErrorIs(t, err, cmdb.ErrRejected)
	require.Contains(t, err.Error(), "401")
}

func TestHTTPEscapesIDs(t *testing.T) {
	c, d := newContract(t)
	require.NoError(t, d.Upsert(context.Background(), cmdb.CI{ID: "service:a/b", Kind: "service"}))
	_, ok := c.Get("service:a/b")
	require.True(t, ok)
}
