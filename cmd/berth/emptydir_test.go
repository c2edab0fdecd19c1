package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEmptyDirRemovesContentsNotLinkTargets(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin", "deep"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "deep", "start.sh"), []byte("x"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link")))

	require.NoError(t, emptyDir([]string{dir}))
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "everything inside is gone")
	require.FileExists(t, filepath.Join(outside, "keep"), "a link is removed, not followed")
	require.DirExists(t, dir, "the folder itself stays (it is the mount point)")

	require.Error(t, emptyDir([]string{"relative"}))
	require.Error(t, emptyDir(nil))
}
