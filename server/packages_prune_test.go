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

// Uploaded packages that no release keeps are removed after the grace:
// orphans, and those of releases a later good one superseded; the current,
// last-good and newest (even rolled back) releases' packages stay.
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

	tn, err := st.CreateTenant(ctx, "acme")
	require.NoError(t, err)
	env, err := st.CreateEnvironment(ctx, tn.ID, "dev")
	require.NoError(t, err)
	app := store.Application{EnvironmentID: env.ID, Name: "shop", State: berth.StateRunning}
	require.NoError(t, st.DB().Create(&app).Error)
	svc := store.Service{ApplicationID: app.ID, Name: "web", Image: "img:1", Replicas: 1}
	require.NoError(t, st.DB().Create(&svc).Error)

	put := func(name string) *artifacts.Package {
		p, err := pkgs.Put(ctx, name+".tar.gz", bytes.NewReader(tinyTarGz(t, name)), "")
		require.NoError(t, err)
		return p
	}
	orphan, superseded, current, rolledBack := put("orphan"), put("superseded"), put("current"), put("rolledback")
	for _, r := range []struct {
		pkg     *artifacts.Package
		outcome berth.ReleaseOutcome
	}{{superseded, berth.ReleaseSucceeded}, {current, berth.ReleaseSucceeded}, {rolledBack, berth.ReleaseRolledBack}} {
		rel := store.Release{ServiceID: svc.ID, Kind: berth.ReleaseFile, Version: r.pkg.Name, PackageSHA256: r.pkg.SHA256, Outcome: berth.ReleaseRunning}
		require.NoError(t, st.DB().Create(&rel).Error)
		require.NoError(t, st.FinishRelease(ctx, rel.ID, r.outcome, ""))
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []*artifacts.Package{orphan, superseded, current, rolledBack} {
		for _, f := range []string{p.SHA256, p.SHA256 + ".json"} {
			require.NoError(t, os.Chtimes(filepath.Join(dir, "artifacts", "sha256", f), old, old))
		}
	}

	removed, err := s.PrunePackages(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{orphan.SHA256, superseded.SHA256}, removed)
	for _, gone := range []*artifacts.Package{orphan, superseded} {
		_, err = pkgs.Open(gone.SHA256)
		require.ErrorIs(t, err, artifacts.ErrNotFound)
	}
	for _, kept := range []*artifacts.Package{current, rolledBack} {
		_, err = pkgs.Open(kept.SHA256)
		require.NoError(t, err)
	}
}
