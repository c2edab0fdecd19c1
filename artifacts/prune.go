package artifacts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Prune removes the packages last uploaded more than grace ago that inUse
// does not claim (no release refers to them), and staging files older than
// grace (left by uploads that died). It returns the digests it removed.
//
// Every upload renames its bytes into place, so a package uploaded again is
// young again: one being re-released is never pruned under a new release.
func (s *Store) Prune(ctx context.Context, grace time.Duration, inUse func(sha string) bool) ([]string, error) {
	cutoff := time.Now().Add(-grace)
	var removed []string
	names, err := os.ReadDir(s.blobDir())
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	for _, e := range names {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		name := e.Name()
		sha := strings.TrimSuffix(name, ".json")
		if _, err := checkSHA(sha); err != nil {
			continue // not ours
		}
		if name != sha {
			// A sidecar: it goes with its package, or alone once its
			// package is gone (a crash between the two removals).
			if _, err := os.Stat(s.blobPath(sha)); errors.Is(err, os.ErrNotExist) && olderThan(filepath.Join(s.blobDir(), name), cutoff) {
				_ = os.Remove(filepath.Join(s.blobDir(), name))
			}
			continue
		}
		if inUse(sha) || !olderThan(s.blobPath(sha), cutoff) {
			continue
		}
		// The bytes first: a package without its bytes is "not found",
		// never half-readable.
		if err := os.Remove(s.blobPath(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("artifacts: %w", err)
		}
		if err := os.Remove(s.sidecarPath(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("artifacts: %w", err)
		}
		removed = append(removed, sha)
	}
	staging, err := os.ReadDir(s.stagingDir())
	if err != nil {
		return removed, fmt.Errorf("artifacts: %w", err)
	}
	for _, e := range staging {
		if p := filepath.Join(s.stagingDir(), e.Name()); olderThan(p, cutoff) {
			_ = os.Remove(p)
		}
	}
	return removed, nil
}

func olderThan(path string, cutoff time.Time) bool {
	st, err := os.Stat(path)
	return err == nil && st.ModTime().Before(cutoff)
}
