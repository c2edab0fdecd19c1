package ui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static returns the UI's static files, rooted at the static folder.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the folder is embedded at build time; missing means a broken build
	}
	return sub
}
