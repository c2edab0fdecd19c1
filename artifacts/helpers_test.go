package artifacts

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fixtureTime is the mtime of generated fixtures, so they are reproducible.
var fixtureTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// tarEnt describes one entry of a generated tar archive. Type defaults to a
// regular file, Mode to 0644 (0755 for directories).
type tarEnt struct {
	Name     string
	Type     byte
	Mode     int64
	Body     string
	Link     string
	Uid, Gid int
	PAX      map[string]string
}

func (e tarEnt) header() *tar.Header {
	if e.Type == tar.TypeXGlobalHeader {
		return &tar.Header{Typeflag: e.Type, Name: e.Name, PAXRecords: e.PAX}
	}
	h := &tar.Header{
		Name:       e.Name,
		Typeflag:   e.Type,
		Mode:       e.Mode,
		Size:       int64(len(e.Body)),
		Linkname:   e.Link,
		Uid:        e.Uid,
		Gid:        e.Gid,
		ModTime:    fixtureTime,
		PAXRecords: e.PAX,
	}
	if h.Typeflag == 0 {
		h.Typeflag = tar.TypeReg
	}
	if h.Mode == 0 {
		h.Mode = 0o644
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
	}
	if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
		h.Devmajor, h.Devminor = 1, 3
	}
	if e.PAX != nil {
		h.Format = tar.FormatPAX
	}
	return h
}

// writeTar writes the entries as a tar archive to w, without closing w.
func writeTar(tb testing.TB, w io.Writer, ents ...tarEnt) {
	tb.Helper()
	tw := tar.NewWriter(w)
	for _, e := range ents {
		require.NoError(tb, tw.WriteHeader(e.header()), e.Name)
		_, err := io.WriteString(tw, e.Body)
		require.NoError(tb, err)
	}
	require.NoError(tb, tw.Close())
}

// gz compresses data.
func gz(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(tb, err)
	_, err = zw.Write(data)
	require.NoError(tb, err)
	require.NoError(tb, zw.Close())
	return buf.Bytes()
}

// tarGz builds a .tar.gz of the entries.
func tarGz(tb testing.TB, ents ...tarEnt) []byte {
	tb.Helper()
	var buf bytes.Buffer
	writeTar(tb, &buf, ents...)
	return gz(tb, buf.Bytes())
}

// zipEnt describes one entry of a generated zip archive. Mode, if set, is
// stored as Unix attributes; Method defaults to deflate (directories: store).
type zipEnt struct {
	Name   string
	Body   string
	Mode   fs.FileMode
	Method uint16
}

// makeZip builds a zip archive of the entries.
func makeZip(tb testing.TB, ents ...zipEnt) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.Name, Method: e.Method, Modified: fixtureTime}
		if fh.Method == 0 && len(e.Name) > 0 && e.Name[len(e.Name)-1] != '/' {
			fh.Method = zip.Deflate
		}
		if e.Mode != 0 {
			fh.SetMode(e.Mode)
		}
		w, err := zw.CreateHeader(fh)
		require.NoError(tb, err, e.Name)
		_, err = io.WriteString(w, e.Body)
		require.NoError(tb, err)
	}
	require.NoError(tb, zw.Close())
	return buf.Bytes()
}

// rawZip builds a zip archive of one entry written with CreateRaw: the header
// says whatever fh says, the data is raw as given.
func rawZip(tb testing.TB, fh *zip.FileHeader, raw []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fh.Modified = fixtureTime
	fh.CompressedSize64 = uint64(len(raw))
	w, err := zw.CreateRaw(fh)
	require.NoError(tb, err)
	_, err = w.Write(raw)
	require.NoError(tb, err)
	require.NoError(tb, zw.Close())
	return buf.Bytes()
}

// deflateZeros returns n zero bytes deflated, and their CRC-32.
func deflateZeros(tb testing.TB, n int64) ([]byte, uint32) {
	tb.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	require.NoError(tb, err)
	crc := crc32.NewIEEE()
	_, err = io.Copy(io.MultiWriter(fw, crc), io.LimitReader(zeros{}, n))
	require.NoError(tb, err)
	require.NoError(tb, fw.Close())
	return buf.Bytes(), crc.Sum32()
}

// lyingZip is a zip bomb: one entry "bomb.bin" whose headers declare
// `declared` bytes while its data inflates to `actual` zero bytes.
func lyingZip(tb testing.TB, actual int64, declared uint64) []byte {
	tb.Helper()
	raw, _ := deflateZeros(tb, actual)
	return rawZip(tb, &zip.FileHeader{
		Name:               "bomb.bin",
		Method:             zip.Deflate,
		CRC32:              crc32.ChecksumIEEE(make([]byte, declared)),
		UncompressedSize64: declared,
	}, raw)
}

// encryptedZip has one entry flagged as (traditional PKWARE) encrypted, with
// random-looking data after the 12-byte encryption header.
func encryptedZip(tb testing.TB) []byte {
	tb.Helper()
	data := []byte("\x8f\x13\xa2\x07\x55\xe1\x90\x3c\x21\x6b\xf4\x0d" + "secret payload, supposedly encrypted")
	return rawZip(tb, &zip.FileHeader{
		Name:               "secret.txt",
		Method:             zip.Store,
		Flags:              0x1,
		CRC32:              0x12345678,
		UncompressedSize64: uint64(len(data) - 12),
	}, data)
}

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countingReader counts the bytes it hands out.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// newStore makes a Store at <parent>/root in a fresh temporary parent and
// returns both, so tests can check nothing is written beside the root.
func newStore(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	parent := t.TempDir()
	s, err := New(filepath.Join(parent, "root"), opts...)
	require.NoError(t, err)
	return s, parent
}

func put(t *testing.T, s *Store, name string, data []byte) (*Package, error) {
	t.Helper()
	return s.Put(context.Background(), name, bytes.NewReader(data), "")
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// requireStoreHolds checks that the parent holds only the root, the root only
// staging and sha256, staging nothing, and sha256 exactly the packages with
// the given digests and their sidecars.
func requireStoreHolds(t *testing.T, s *Store, parent string, shas ...string) {
	t.Helper()
	require.Equal(t, []string{"root"}, dirNames(t, parent), "written outside the root")
	require.Equal(t, []string{"sha256", "staging"}, dirNames(t, s.Root))
	require.Empty(t, dirNames(t, s.stagingDir()), "left in staging")
	want := []string{}
	for _, sha := range shas {
		want = append(want, sha, sha+".json")
	}
	sort.Strings(want)
	require.Equal(t, want, dirNames(t, s.blobDir()))
}

// requireInvalid checks err is an *InvalidPackageError whose reason contains
// every part.
func requireInvalid(t *testing.T, err error, parts ...string) {
	t.Helper()
	require.ErrorIs(t, err, ErrInvalid)
	var ipe *InvalidPackageError
	require.True(t, errors.As(err, &ipe), "%T is not an *InvalidPackageError", err)
	for _, p := range parts {
		require.Contains(t, ipe.Reason, p)
	}
}

// tarFile is one entry of a tar stream read back.
type tarFile struct {
	Name string
	Type byte
	Mode int64
	Body string
}

// readTar reads a whole tar stream, checking what every entry of
// TarForContainer must have: owner 0:0, no names, the fixed mtime, only
// files and directories with modes 0644/0755.
func readTar(t *testing.T, data []byte) []tarFile {
	t.Helper()
	var out []tarFile
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		require.Zero(t, h.Uid, h.Name)
		require.Zero(t, h.Gid, h.Name)
		require.Empty(t, h.Uname, h.Name)
		require.Empty(t, h.Gname, h.Name)
		require.True(t, h.ModTime.Equal(packageModTime), "%s: mtime %v", h.Name, h.ModTime)
		require.Contains(t, []byte{tar.TypeReg, tar.TypeDir}, h.Typeflag, h.Name)
		require.Contains(t, []int64{0o644, 0o755}, h.Mode, h.Name)
		if h.Typeflag == tar.TypeDir {
			require.Equal(t, int64(0o755), h.Mode, h.Name)
		}
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, tarFile{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Body: string(body)})
	}
}

func containerTar(t *testing.T, s *Store, sha string) []tarFile {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, s.TarForContainer(context.Background(), sha, &buf))
	return readTar(t, buf.Bytes())
}
