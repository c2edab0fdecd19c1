package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// emptyDir removes everything inside dir, not dir itself: berth runs it in
// a one-shot container on a host, with an instance's package folder
// mounted, so a file release leaves no file of the package before it. A
// symbolic link is removed, never followed.
func emptyDir(args []string) error {
	if len(args) != 1 || !filepath.IsAbs(args[0]) {
		return fmt.Errorf("usage: berth empty-dir /absolute/dir")
	}
	entries, err := os.ReadDir(args[0])
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(args[0], e.Name())); err != nil {
			return err
		}
	}
	return nil
}
