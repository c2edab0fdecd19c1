package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"archive/tar"
	"compress/gzip"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/mocks"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/artifacts"
	"github.com/berth-dev/berth/store"
)

func tinyTarGz(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "f.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
	_, err := io.WriteString(tw, body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// Uploaded packages that no release refers to are removed after the
// grace; those a release refers to stay, whatever the release's outcome.
func TestPrunePackages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open("sqlite", filepath.Join(dir, "berth.db"))
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	t.Cleanup(func() { _ = st.Close() })
	pkgs, err := artifacts.New(filepath.Join(dir, "artifacts"))
	require.NoError(t, err)
	s := New(Config{Token: "bootstrap-token-0123456789abcdef", Packages: pkgs}, st, &mocks.Client{}, slog.New(slog.NewTextHandler(io.Discard, nil)))

	orphan, err := pkgs.Put(ctx, "orphan.tar.gz", bytes.NewReader(tinyTarGz(t, "orphan")), "")
	require.NoError(t, err)
	kept, err := pkgs.Put(ctx, "kept.tar.gz", bytes.NewReader(tinyTarGz(t, "kept")), "")
	require.NoError(t, err)
	require.NoError(t, st.DB().Create(&store.Release{ServiceID: 1, Kind: berth.ReleaseFile, Version: "1",
		PackageSHA256: kept.SHA256, Outcome: berth.ReleaseRolledBack}).Error)
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []*artifacts.Package{orphan, kept} {
		for _, f := range []string{p.SHA256, p.SHA256 + ".json"} {
			require.NoError(t, os.Chtimes(filepath.Join(dir, "artifacts", "sha256", f), old, old))
		}
	}

	removed, err := s.PrunePackages(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, []string{orphan.SHA256}, removed)
	_, err = pkgs.Open(orphan.SHA256)
	require.ErrorIs(t, err, artifacts.ErrNotFound)
	_, err = pkgs.Open(kept.SHA256)
	require.NoError(t, err)
}
