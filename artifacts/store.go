package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Package kinds, from the upload's file name extension.
const (
	KindWAR   = "war"    // .war, a zip; copied as one file
	KindJAR   = "jar"    // .jar, a zip; copied as one file
	KindTarGz = "tar.gz" // .tar.gz or .tgz; unpacked
	KindZip   = "zip"    // .zip; unpacked
)

// Where packages land in a container, and the marker file TarForContainer
// writes there.
const (
	ContainerPath = "/berth/package"
	MarkerFile    = ".berth-package"
)

// Default limits of New.
const (
	DefaultMaxBytes    int64 = 512 << 20 // 512 MiB uploaded
	DefaultMaxUnpacked int64 = 1 << 30   // 1 GiB unpacked
	DefaultMaxEntries        = 100000
	// DefaultMaxRatio is how many bytes one compressed byte may unpack to,
	// in an entry and in the whole archive, beyond RatioGrace: real
	// packages compress a few times, archive bombs a thousand.
	DefaultMaxRatio int64 = 100
	// RatioGrace is how much may unpack before the ratio counts, so a small
	// package of highly compressible text is never refused for it.
	RatioGrace int64 = 8 << 20
)

// maxNameLen bounds upload names and entry names, in bytes.
const maxNameLen = 255

// Package describes a stored package. It is also the JSON sidecar.
type Package struct {
	SHA256        string `json:"sha256"`        // lower-case hex digest of the uploaded bytes
	Size          int64  `json:"size"`          // uploaded bytes
	Name          string `json:"name"`          // base name of the first upload of these bytes
	Kind          string `json:"kind"`          // KindWAR, KindJAR, KindTarGz or KindZip
	Entries       int    `json:"entries"`       // files and directories (for tar.gz/zip including implied parent directories)
	UnpackedBytes int64  `json:"unpackedBytes"` // sum of the decompressed file sizes
	// Warnings lists entries whose modes TarForContainer will sanitise
	// (setuid/setgid/sticky, group- or world-writable); at most 21 lines.
	Warnings []string `json:"warnings,omitempty"`
}

// Store keeps packages under Root. The limits apply to Put and
// TarForContainer; a zero or negative limit means its default.
type Store struct {
	Root        string
	MaxBytes    int64 // largest upload accepted
	MaxUnpacked int64 // largest sum of decompressed file sizes of an archive
	MaxEntries  int   // most entries of an archive
	MaxRatio    int64 // most unpacked bytes per compressed byte, beyond RatioGrace
}

// Option adjusts a Store made by New.
type Option func(*Store)

// WithMaxBytes sets Store.MaxBytes.
func WithMaxBytes(n int64) Option { return func(s *Store) { s.MaxBytes = n } }

// WithMaxUnpacked sets Store.MaxUnpacked.
func WithMaxUnpacked(n int64) Option { return func(s *Store) { s.MaxUnpacked = n } }

// WithMaxRatio sets Store.MaxRatio.
func WithMaxRatio(n int64) Option { return func(s *Store) { s.MaxRatio = n } }

// WithMaxEntries sets Store.MaxEntries.
func WithMaxEntries(n int) Option { return func(s *Store) { s.MaxEntries = n } }

// New returns a Store rooted at root, creating root/staging and root/sha256
// (mode 0700) if needed.
func New(root string, opts ...Option) (*Store, error) {
	if root == "" {
		return nil, errors.New("artifacts: empty store root")
	}
	s := &Store{
		Root:        filepath.Clean(root),
		MaxBytes:    DefaultMaxBytes,
		MaxUnpacked: DefaultMaxUnpacked,
		MaxEntries:  DefaultMaxEntries,
		MaxRatio:    DefaultMaxRatio,
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.MaxBytes <= 0 || s.MaxUnpacked <= 0 || s.MaxEntries <= 0 || s.MaxRatio <= 0 {
		return nil, fmt.Errorf("artifacts: limits must be positive (MaxBytes %d, MaxUnpacked %d, MaxEntries %d, MaxRatio %d)",
			s.MaxBytes, s.MaxUnpacked, s.MaxEntries, s.MaxRatio)
	}
	for _, dir := range []string{s.stagingDir(), s.blobDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("artifacts: %w", err)
		}
	}
	return s, nil
}

// limits are a Store's limits with defaults filled in.
type limits struct {
	maxBytes    int64
	maxUnpacked int64
	maxEntries  int
	maxRatio    int64
}

func (s *Store) limits() limits {
	l := limits{s.MaxBytes, s.MaxUnpacked, s.MaxEntries, s.MaxRatio}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.maxUnpacked <= 0 {
		l.maxUnpacked = DefaultMaxUnpacked
	}
	if l.maxEntries <= 0 {
		l.maxEntries = DefaultMaxEntries
	}
	if l.maxRatio <= 0 {
		l.maxRatio = DefaultMaxRatio
	}
	return l
}

func (s *Store) stagingDir() string            { return filepath.Join(s.Root, "staging") }
func (s *Store) blobDir() string               { return filepath.Join(s.Root, "sha256") }
func (s *Store) blobPath(sha string) string    { return filepath.Join(s.blobDir(), sha) }
func (s *Store) sidecarPath(sha string) string { return filepath.Join(s.blobDir(), sha+".json") }

// KindOf returns the kind of package a file name announces, by its extension
// (case-insensitive): .war, .jar, .tar.gz, .tgz or .zip. Any other name is
// refused with ErrInvalid.
func KindOf(name string) (string, error) {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return KindTarGz, nil
	case strings.HasSuffix(lower, ".zip"):
		return KindZip, nil
	case strings.HasSuffix(lower, ".war"):
		return KindWAR, nil
	case strings.HasSuffix(lower, ".jar"):
		return KindJAR, nil
	}
	return "", invalidf("file name %q: unknown package type (want .war, .jar, .tar.gz, .tgz or .zip)", name)
}

// baseName strips any directories, Unix or Windows style, from an upload's
// file name.
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// Put stores the package read from r, uploaded under the file name name
// (only its base name is kept; its extension gives the kind). It reads at
// most MaxBytes+1 bytes into a temporary file under root/staging, hashing
// them; refuses the upload with ErrTooLarge beyond MaxBytes, with
// ErrChecksum when wantSHA256 is not empty and differs (case-insensitive),
// and with ErrInvalid when the content is not a well-formed package of its
// kind. It then moves the file to root/sha256/<hex> and writes its sidecar.
//
// Put is idempotent: when the same bytes are already stored, the stored
// Package is returned unchanged (with the name and kind of the first upload).
// On any error nothing is left in staging.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, wantSHA256 string) (*Package, error) {
	lim := s.limits()
	base := baseName(name)
	switch {
	case base == "":
		return nil, invalidf("empty file name %q", name)
	case len(base) > maxNameLen:
		return nil, invalidf("file name longer than %d bytes", maxNameLen)
	case strings.ContainsRune(base, 0):
		return nil, invalidf("file name %q contains a NUL byte", base)
	}
	kind, err := KindOf(base)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	tmp, err := os.CreateTemp(s.stagingDir(), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	tmpName, published := tmp.Name(), false
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		if !published {
			os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), io.LimitReader(&ctxReader{ctx: ctx, r: r}, lim.maxBytes+1), buf)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("artifacts: receiving %q: %w", base, err)
	}
	if n > lim.maxBytes {
		return nil, &TooLargeError{Limit: lim.maxBytes}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if wantSHA256 != "" && !strings.EqualFold(strings.TrimSpace(wantSHA256), sum) {
		return nil, &ChecksumError{Want: wantSHA256, Got: sum}
	}

	st, err := validate(ctx, tmp, n, kind, lim, nil)
	if err != nil {
		return nil, err
	}

	if existing, err := s.Open(sum); err == nil {
		return existing, nil // the deferred cleanup drops the temporary file
	}

	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	pkg := &Package{
		SHA256:        sum,
		Size:          n,
		Name:          base,
		Kind:          kind,
		Entries:       st.entries,
		UnpackedBytes: st.unpacked,
		Warnings:      st.warnings,
	}
	// The bytes first, then the sidecar: Open needs both, and a Put after a
	// crash between the two renames repairs the entry.
	if err := os.Rename(tmpName, s.blobPath(sum)); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	published = true
	if err := s.writeSidecar(pkg); err != nil {
		return nil, err
	}
	return pkg, nil
}

// writeSidecar publishes pkg's JSON sidecar atomically, through a temporary
// file in staging.
func (s *Store) writeSidecar(pkg *Package) (err error) {
	data, err := json.MarshalIndent(pkg, "", "  ")
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	f, err := os.CreateTemp(s.stagingDir(), "sidecar-*")
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if err = os.Rename(f.Name(), s.sidecarPath(pkg.SHA256)); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// checkSHA accepts exactly 64 hex digits and returns them in lower case.
func checkSHA(sha string) (string, error) {
	if len(sha) != sha256.Size*2 {
		return "", invalidf("sha256 %q: want 64 hex digits", sha)
	}
	for i := 0; i < len(sha); i++ {
		c := sha[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", invalidf("sha256 %q: want 64 hex digits", sha)
		}
	}
	return strings.ToLower(sha), nil
}

// Open returns the stored package with that sha256 (64 hex digits), or
// ErrNotFound.
func (s *Store) Open(sha string) (*Package, error) {
	sha, err := checkSHA(sha)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.sidecarPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: sha256 %s", ErrNotFound, sha)
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	defer f.Close()
	var pkg Package
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&pkg); err != nil {
		return nil, fmt.Errorf("artifacts: sidecar of %s: %w", sha, err)
	}
	if pkg.SHA256 != sha {
		return nil, fmt.Errorf("artifacts: sidecar of %s names sha256 %q", sha, pkg.SHA256)
	}
	switch pkg.Kind {
	case KindWAR, KindJAR, KindTarGz, KindZip:
	default:
		return nil, fmt.Errorf("artifacts: sidecar of %s has unknown kind %q", sha, pkg.Kind)
	}
	fi, err := os.Lstat(s.blobPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: sha256 %s", ErrNotFound, sha)
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != pkg.Size {
		return nil, fmt.Errorf("artifacts: stored package %s is damaged (mode %v, %d bytes, sidecar says %d)",
			sha, fi.Mode(), fi.Size(), pkg.Size)
	}
	return &pkg, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
