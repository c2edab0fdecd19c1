package artifacts

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	require.NoError(t, os.Chtimes(path, old, old))
}

// Packages no release refers to go once they are older than the grace;
// referenced and young ones stay, and so does everything Open needs of them.
func TestPrune(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	unused, err := put(t, s, "a.tar.gz", tarGz(t, tarEnt{Name: "a.txt", Body: "a"}))
	require.NoError(t, err)
	used, err := put(t, s, "b.tar.gz", tarGz(t, tarEnt{Name: "b.txt", Body: "b"}))
	require.NoError(t, err)
	young, err := put(t, s, "c.tar.gz", tarGz(t, tarEnt{Name: "c.txt", Body: "c"}))
	require.NoError(t, err)
	for _, p := range []*Package{unused, used} {
		age(t, s.blobPath(p.SHA256), 48*time.Hour)
		age(t, s.sidecarPath(p.SHA256), 48*time.Hour)
	}
	stale := filepath.Join(s.stagingDir(), "upload-123")
	require.NoError(t, os.WriteFile(stale, []byte("half an upload"), 0o600))
	age(t, stale, 48*time.Hour)

	removed, err := s.Prune(ctx, 24*time.Hour, func(sha string) bool { return sha == used.SHA256 })
	require.NoError(t, err)
	require.Equal(t, []string{unused.SHA256}, removed)
	_, err = s.Open(unused.SHA256)
	require.ErrorIs(t, err, ErrNotFound)
	for _, p := range []*Package{used, young} {
		_, err := s.Open(p.SHA256)
		require.NoError(t, err, p.Name)
	}
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "a dead upload's staging file goes too")

	// Uploading the same bytes again makes the package young again.
	again, err := put(t, s, "a.tar.gz", tarGz(t, tarEnt{Name: "a.txt", Body: "a"}))
	require.NoError(t, err)
	removed, err = s.Prune(ctx, 24*time.Hour, func(sha string) bool { return sha == used.SHA256 })
	require.NoError(t, err)
	require.Empty(t, removed)
	_, err = s.Open(again.SHA256)
	require.NoError(t, err)
}
