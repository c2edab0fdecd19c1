package artifacts

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// packageModTime is the mtime of everything TarForContainer writes, so the
// same package always gives the same stream.
var packageModTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// containerMode is the mode an entry gets in the container: directories and
// executable files 0755, other files 0644.
func containerMode(e entry) int64 {
	if e.dir || e.exec {
		return 0o755
	}
	return 0o644
}

// ContainerFileName is the file name a .war or .jar package gets in the
// package folder: its upload's base name if that is made of [A-Za-z0-9._-],
// does not start with a dot and ends in the kind's extension, else "app.war"
// or "app.jar". For other kinds it returns "".
func ContainerFileName(pkg *Package) string {
	if pkg.Kind != KindWAR && pkg.Kind != KindJAR {
		return ""
	}
	name := pkg.Name
	ok := name != "" && name[0] != '.' && len(name) <= maxNameLen &&
		strings.HasSuffix(strings.ToLower(name), "."+pkg.Kind)
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return "app." + pkg.Kind
	}
	return name
}

func tarHeader(e entry) *tar.Header {
	h := &tar.Header{
		Name:     e.name,
		Typeflag: tar.TypeReg,
		Mode:     containerMode(e),
		Size:     e.size,
		ModTime:  packageModTime,
	}
	if e.dir {
		h.Name += "/"
		h.Typeflag = tar.TypeDir
		h.Size = 0
	}
	return h
}

// TarForContainer writes to w the tar stream that, given to Docker's
// CopyToContainer with ContainerPath (/berth/package) as destination, puts
// the package with that sha256 there:
//
//   - .war and .jar: one file, named by ContainerFileName;
//   - .tar.gz and .zip: the archive's entries, parents before children
//     (parents the archive leaves out are added), regular files with mode
//     0644 or, if any execute bit was set, 0755, directories 0755;
//
// and last a file MarkerFile holding the sha256 and a newline. Everything is
// owned by 0:0, without setuid/setgid/sticky bits, with a fixed mtime. The
// archive is read again through the checks of Put (with the Store's current
// limits); if it fails them, the stream is left unterminated and the error
// returned. sha must be 64 hex digits; it is checked before any file is
// opened.
func (s *Store) TarForContainer(ctx context.Context, sha string, w io.Writer) error {
	pkg, err := s.Open(sha)
	if err != nil {
		return err
	}
	f, err := os.Open(s.blobPath(pkg.SHA256))
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer f.Close()

	tw := tar.NewWriter(w)
	writeErr := func(err error) error { return fmt.Errorf("artifacts: writing tar stream: %w", err) }
	switch pkg.Kind {
	case KindWAR, KindJAR:
		if err := tw.WriteHeader(tarHeader(entry{name: ContainerFileName(pkg), size: pkg.Size})); err != nil {
			return writeErr(err)
		}
		// The bytes are copied as stored; the sidecar's size was checked
		// against the file by Open.
		if _, err := io.CopyN(tw, &srcReader{&ctxReader{ctx: ctx, r: f}}, pkg.Size); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			var re *readError
			if errors.As(err, &re) {
				return re
			}
			return writeErr(err)
		}
	case KindTarGz, KindZip:
		var werr error // the first write error, to tell it from the archive's
		_, err := validate(ctx, f, pkg.Size, pkg.Kind, s.limits(), func(e entry, content io.Reader) error {
			if werr = tw.WriteHeader(tarHeader(e)); werr != nil {
				return werr
			}
			if !e.dir {
				ew := &errWriter{w: tw}
				_, err := io.Copy(ew, content)
				werr = ew.err
				return err
			}
			return nil
		})
		if err != nil {
			if werr != nil {
				return writeErr(werr)
			}
			return err
		}
	}
	marker := pkg.SHA256 + "\n"
	if err := tw.WriteHeader(tarHeader(entry{name: MarkerFile, size: int64(len(marker))})); err != nil {
		return writeErr(err)
	}
	if _, err := io.WriteString(tw, marker); err != nil {
		return writeErr(err)
	}
	if err := tw.Close(); err != nil {
		return writeErr(err)
	}
	return nil
}

// errWriter remembers the first error of its writer.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
