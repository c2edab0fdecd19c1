package ui

import (
	"embed"
	"io/fs"
)

//go:embed static templates
var files embed.FS

// Static returns the UI's static files (CSS, JS), rooted at the static folder.
func Static() fs.FS { return sub("static") }

// Templates returns the page templates (html/template syntax), rooted at the templates folder.
func Templates() fs.FS { return sub("templates") }

func sub(dir string) fs.FS {
	s, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the folder is embedded at build time; missing means a broken build
	}
	return s
}
