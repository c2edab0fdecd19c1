package artifacts

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestNew(t *testing.T) {
	parent := t.TempDir()
	s, err := New(filepath.Join(parent, "root"))
	require.NoError(t, err)
	require.Equal(t, DefaultMaxBytes, s.MaxBytes)
	require.Equal(t, int64(512<<20), s.MaxBytes)
	require.Equal(t, int64(1<<30), s.MaxUnpacked)
	require.Equal(t, int64(100), s.MaxRatio)
	require.Equal(t, 100000, s.MaxEntries)
	for _, dir := range []string{"staging", "sha256"} {
		fi, err := os.Stat(filepath.Join(parent, "root", dir))
		require.NoError(t, err)
		require.True(t, fi.IsDir())
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), dir)
	}

	s, err = New(filepath.Join(parent, "other"), WithMaxBytes(10), WithMaxUnpacked(20), WithMaxEntries(3), WithMaxRatio(7))
	require.NoError(t, err)
	require.Equal(t, &Store{Root: filepath.Join(parent, "other"), MaxBytes: 10, MaxUnpacked: 20, MaxEntries: 3, MaxRatio: 7}, s)

	_, err = New("")
	require.Error(t, err)
	_, err = New(filepath.Join(parent, "bad"), WithMaxEntries(0))
	require.Error(t, err)
}

func TestPutTarGzAndOpen(t *testing.T) {
	s, parent := newStore(t)
	data := goodTarGz(t)
	pkg, err := s.Put(context.Background(), "releases/shop-1.2.tgz", bytes.NewReader(data), "")
	require.NoError(t, err)
	want := &Package{
		SHA256:        sha(data),
		Size:          int64(len(data)),
		Name:          "shop-1.2.tgz",
		Kind:          KindTarGz,
		Entries:       6,
		UnpackedBytes: 3 + 62 + 43 + 19,
		Warnings:      nil,
	}
	require.Equal(t, want, pkg)
	requireStoreHolds(t, s, parent, pkg.SHA256)

	stored, err := os.ReadFile(filepath.Join(s.Root, "sha256", pkg.SHA256))
	require.NoError(t, err)
	require.Equal(t, data, stored)
	var sidecar map[string]any
	raw, err := os.ReadFile(filepath.Join(s.Root, "sha256", pkg.SHA256+".json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &sidecar))
	require.Equal(t, map[string]any{
		"sha256": pkg.SHA256, "size": float64(len(data)), "name": "shop-1.2.tgz", "kind": "tar.gz",
		"entries": float64(6), "unpackedBytes": float64(127),
	}, sidecar)

	opened, err := s.Open(pkg.SHA256)
	require.NoError(t, err)
	require.Equal(t, want, opened)
	opened, err = s.Open(strings.ToUpper(pkg.SHA256))
	require.NoError(t, err)
	require.Equal(t, want, opened)
}

func TestPutIdempotent(t *testing.T) {
	s, parent := newStore(t)
	data := goodZip(t)
	first, err := put(t, s, "site.zip", data)
	require.NoError(t, err)
	second, err := put(t, s, "site.zip", data)
	require.NoError(t, err)
	require.Equal(t, first, second)
	// Same bytes under another name: the first upload's record stands.
	third, err := put(t, s, "renamed.zip", data)
	require.NoError(t, err)
	require.Equal(t, first, third)
	requireStoreHolds(t, s, parent, first.SHA256)

	// A blob whose sidecar was lost (crash between the renames) is repaired.
	require.NoError(t, os.Remove(s.sidecarPath(first.SHA256)))
	_, err = s.Open(first.SHA256)
	require.ErrorIs(t, err, ErrNotFound)
	again, err := put(t, s, "site.zip", data)
	require.NoError(t, err)
	require.Equal(t, first, again)
	requireStoreHolds(t, s, parent, first.SHA256)
}

func TestPutConcurrent(t *testing.T) {
	s, parent := newStore(t)
	inputs := [][]byte{goodTarGz(t), goodZip(t), goodTarGz(t), goodZip(t), goodTarGz(t), goodZip(t)}
	names := []string{"a.tar.gz", "a.zip", "b.tar.gz", "b.zip", "c.tar.gz", "c.zip"}
	pkgs := make([]*Package, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	for i := range inputs {
		wg.Go(func() {
			pkgs[i], errs[i] = s.Put(context.Background(), names[i], bytes.NewReader(inputs[i]), "")
		})
	}
	wg.Wait()
	for i := range inputs {
		require.NoError(t, errs[i])
		require.Equal(t, sha(inputs[i]), pkgs[i].SHA256)
	}
	requireStoreHolds(t, s, parent, sha(inputs[0]), sha(inputs[1]))
	for _, sum := range []string{sha(inputs[0]), sha(inputs[1])} {
		_, err := s.Open(sum)
		require.NoError(t, err)
	}
}

func TestPutChecksum(t *testing.T) {
	s, parent := newStore(t)
	data := goodTarGz(t)
	wrong := strings.Repeat("ab", 32)
	_, err := s.Put(context.Background(), "a.tar.gz", bytes.NewReader(data), wrong)
	require.ErrorIs(t, err, ErrChecksum)
	var ce *ChecksumError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, &ChecksumError{Want: wrong, Got: sha(data)}, ce)
	require.False(t, errors.Is(err, ErrInvalid))
	requireStoreHolds(t, s, parent)

	pkg, err := s.Put(context.Background(), "a.tar.gz", bytes.NewReader(data), strings.ToUpper(sha(data)))
	require.NoError(t, err)
	require.Equal(t, sha(data), pkg.SHA256)
	requireStoreHolds(t, s, parent, pkg.SHA256)
}

func TestPutTooLarge(t *testing.T) {
	s, parent := newStore(t, WithMaxBytes(1000))
	src := &countingReader{r: zeros{}}
	_, err := s.Put(context.Background(), "big.tar.gz", src, "")
	require.ErrorIs(t, err, ErrTooLarge)
	var tle *TooLargeError
	require.ErrorAs(t, err, &tle)
	require.Equal(t, int64(1000), tle.Limit)
	require.Equal(t, int64(1001), src.n, "reads at most MaxBytes+1 bytes")
	requireStoreHolds(t, s, parent)

	// Exactly MaxBytes is fine.
	data := goodTarGz(t)
	s, parent = newStore(t, WithMaxBytes(int64(len(data))))
	pkg, err := put(t, s, "exact.tar.gz", data)
	require.NoError(t, err)
	requireStoreHolds(t, s, parent, pkg.SHA256)
}

func TestPutNames(t *testing.T) {
	s, parent := newStore(t)
	for _, name := range []string{"", "dir/", "app.exe", "app.tar", "app.tar.bz2", "app.war.txt", "a\x00.zip", strings.Repeat("a", 300) + ".zip"} {
		_, err := put(t, s, name, goodZip(t))
		requireInvalid(t, err)
	}
	_, err := put(t, s, "README", goodZip(t))
	requireInvalid(t, err, `"README"`, "unknown package type")
	requireStoreHolds(t, s, parent)

	// A zip that lists its root as "./" is fine; the root is not an entry.
	pkg, err := put(t, s, "rooted.zip", makeZip(t, zipEnt{Name: "./"}, zipEnt{Name: "./a.txt", Body: "a"}))
	require.NoError(t, err)
	require.Equal(t, 1, pkg.Entries)

	pkg, err = put(t, s, `C:\Users\dev\Shop.WAR`, goodWar(t))
	require.NoError(t, err)
	require.Equal(t, "Shop.WAR", pkg.Name)
	require.Equal(t, KindWAR, pkg.Kind)

	for name, kind := range map[string]string{"a.tar.gz": KindTarGz, "A.TGZ": KindTarGz, "a.zip": KindZip, "a.jar": KindJAR, "a.war": KindWAR} {
		got, err := KindOf(name)
		require.NoError(t, err)
		require.Equal(t, kind, got, name)
	}
}

// cancelReader cancels its context after handing out n bytes.
type cancelReader struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestPutCanceled(t *testing.T) {
	s, parent := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Put(ctx, "a.zip", bytes.NewReader(goodZip(t)), "")
	require.ErrorIs(t, err, context.Canceled)

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, err = s.Put(ctx, "a.tar.gz", &cancelReader{r: zeros{}, n: 1 << 20, cancel: cancel}, "")
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, ErrInvalid))
	requireStoreHolds(t, s, parent)
}

func TestPutWarJar(t *testing.T) {
	s, parent := newStore(t)
	jar := makeZip(t,
		zipEnt{Name: "META-INF/MANIFEST.MF", Body: "Manifest-Version: 1.0\r\nMain-Class: app.Main\r\n\r\n"},
		zipEnt{Name: "app/Main.class", Body: "\xca\xfe\xba\xbe"},
		// Duplicates are tolerated in archives that are not unpacked.
		zipEnt{Name: "app/Main.class", Body: "\xca\xfe\xba\xbe"},
	)
	pkg, err := put(t, s, "app.jar", jar)
	require.NoError(t, err)
	require.Equal(t, KindJAR, pkg.Kind)
	require.Equal(t, 3, pkg.Entries)

	for _, c := range []struct {
		data   []byte
		reason []string
	}{
		{[]byte("PK\x03\x04 truncated"), []string{"not a valid zip archive"}},
		{goodTarGz(t), []string{"not a valid zip archive"}},
		{makeZip(t, zipEnt{Name: "WEB-INF/../../evil.jsp", Body: "x"}), []string{`"WEB-INF/../../evil.jsp"`, `".." element`}},
		{lyingZip(t, 1<<20, 10), []string{`"bomb.bin"`, "more data than the 10 bytes"}},
	} {
		_, err := put(t, s, "hostile.war", c.data)
		requireInvalid(t, err, c.reason...)
	}
	requireStoreHolds(t, s, parent, pkg.SHA256)
}

// sparseTarGz holds a PAX (GNU 0.1) sparse file. tar.Writer drops GNU.sparse
// records, so they are written under another key of the same length and
// renamed in the bytes.
func sparseTarGz(tb testing.TB) []byte {
	var buf bytes.Buffer
	writeTar(tb, &buf, tarEnt{Name: "s", Body: "x", PAX: map[string]string{"GNX.sparse.numblocks": "1", "GNX.sparse.map": "0,1"}})
	raw := bytes.ReplaceAll(buf.Bytes(), []byte("GNX.sparse."), []byte("GNU.sparse."))
	hdr, err := tar.NewReader(bytes.NewReader(raw)).Next()
	require.NoError(tb, err)
	require.Equal(tb, "0,1", hdr.PAXRecords["GNU.sparse.map"])
	return gz(tb, raw)
}

func TestPutHostileTarGz(t *testing.T) {
	long := strings.Repeat("d/", 127) + "xy" // 256 bytes
	pax := func(n int) map[string]string { return map[string]string{"comment": strings.Repeat("c", n)} }
	withTrailing := func(tb testing.TB) []byte {
		var buf bytes.Buffer
		writeTar(tb, &buf, tarEnt{Name: "a.txt", Body: "a"})
		buf.Write(make([]byte, 2<<20))
		return gz(tb, buf.Bytes())
	}
	cases := []struct {
		name   string
		data   []byte
		opts   []Option
		reason []string
	}{
		{"dotdot inside", tarGz(t, tarEnt{Name: "a/../../b", Body: "x"}), nil, []string{`"a/../../b"`, `".." element`}},
		{"dotdot dir", tarGz(t, tarEnt{Name: "../", Type: tar.TypeDir}), nil, []string{`"../"`, `".." element`}},
		{"unclean", tarGz(t, tarEnt{Name: "a//b", Body: "x"}), nil, []string{`"a//b"`, "not clean"}},
		{"dot inside", tarGz(t, tarEnt{Name: "a/./b", Body: "x"}), nil, []string{`"a/./b"`, "not clean"}},
		{"backslash", tarGz(t, tarEnt{Name: `..\evil`, Body: "x"}), nil, []string{`"..\\evil"`, "backslash"}},
		{"long name", tarGz(t, tarEnt{Name: long, Body: "x"}), nil, []string{"longer than 255 bytes"}},
		{"fifo", tarGz(t, tarEnt{Name: "pipe", Type: tar.TypeFifo}), nil, []string{`"pipe"`, "fifo"}},
		{"block device", tarGz(t, tarEnt{Name: "sda", Type: tar.TypeBlock}), nil, []string{`"sda"`, "block device"}},
		{"symlink in dir", tarGz(t, tarEnt{Name: "www/", Type: tar.TypeDir}, tarEnt{Name: "www/up", Type: tar.TypeSymlink, Link: "../.."}), nil, []string{`"www/up"`, `symbolic link to "../.."`}},
		{"link target on a file", tarGz(t, tarEnt{Name: "f", Body: "x", Link: "/etc/shadow"}), nil, []string{`"f"`, `link target "/etc/shadow"`}},
		{"sparse (PAX)", sparseTarGz(t), nil, []string{`"s"`, "sparse"}},
		{"contiguous file", tarGz(t, tarEnt{Name: "c", Type: tar.TypeCont, Body: "x"}), nil, []string{`"c"`, "entry type '7'"}},
		{"duplicate file", tarGz(t, tarEnt{Name: "a", Body: "1"}, tarEnt{Name: "./a", Body: "2"}), nil, []string{`"a"`, "duplicate"}},
		{"file then dir", tarGz(t, tarEnt{Name: "a", Body: "1"}, tarEnt{Name: "a/", Type: tar.TypeDir}), nil, []string{`"a"`, "duplicate"}},
		{"file as parent", tarGz(t, tarEnt{Name: "a", Body: "1"}, tarEnt{Name: "a/b", Body: "2"}), nil, []string{`"a/b"`, `parent "a" is a file`}},
		{"marker file", tarGz(t, tarEnt{Name: ".berth-package", Body: "forged"}), nil, []string{`".berth-package"`, "reserved"}},
		{"root file", tarGz(t, tarEnt{Name: ".", Body: ""}), nil, []string{`"."`, "package root"}},
		{"not gzip", []byte("plain text"), nil, []string{"not a gzip stream"}},
		{"truncated gzip", goodTarGz(t)[:100], nil, []string{"corrupt"}},
		{"not tar", gz(t, bytes.Repeat([]byte("not a tar header "), 64)), nil, []string{"corrupt tar archive"}},
		{"trailing data", withTrailing(t), nil, []string{"follow the end of the tar archive"}},
		{"too many entries", tarGz(t, tarEnt{Name: "a"}, tarEnt{Name: "b"}, tarEnt{Name: "c"}, tarEnt{Name: "d"}), []Option{WithMaxEntries(3)}, []string{"more than 3 entries"}},
		{"implied dirs count", tarGz(t, tarEnt{Name: "a/b/c"}), []Option{WithMaxEntries(2)}, []string{"more than 2 entries"}},
		{"one big entry", tarGz(t, tarEnt{Name: "big", Body: strings.Repeat("\x00", 8<<20)}), []Option{WithMaxUnpacked(1 << 20)}, []string{`"big"`, "limit of 1048576 bytes"}},
		{"sum of entries", tarGz(t,
			tarEnt{Name: "p1", Body: strings.Repeat("1", 300<<10)},
			tarEnt{Name: "p2", Body: strings.Repeat("2", 300<<10)},
			tarEnt{Name: "p3", Body: strings.Repeat("3", 300<<10)},
			tarEnt{Name: "p4", Body: strings.Repeat("4", 300<<10)},
		), []Option{WithMaxUnpacked(1 << 20)}, []string{`"p4"`, "limit of 1048576 bytes"}},
		{"metadata bomb", tarGz(t, tarEnt{Name: "m1", PAX: pax(900 << 10)}, tarEnt{Name: "m2", PAX: pax(900 << 10)}),
			[]Option{WithMaxUnpacked(1), WithMaxEntries(2)}, []string{"decompressed stream exceeds"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, parent := newStore(t, c.opts...)
			_, err := put(t, s, "hostile.tar.gz", c.data)
			requireInvalid(t, err, c.reason...)
			requireStoreHolds(t, s, parent)
		})
	}
}

func TestPutTarGzAccepts(t *testing.T) {
	s, parent := newStore(t)
	data := tarGz(t,
		// git archive writes a global header first.
		tarEnt{Name: "pax_global_header", Type: tar.TypeXGlobalHeader, PAX: map[string]string{"comment": "0123abcd"}},
		tarEnt{Name: "app/", Type: tar.TypeDir},
		tarEnt{Name: "app/", Type: tar.TypeDir}, // listed twice: harmless
		tarEnt{Name: "app/run", Mode: 0o4755, Body: "#!/bin/sh\n", Uid: 1000, Gid: 1000},
		tarEnt{Name: "app/data.txt", Mode: 0o666, Body: "data"},
		tarEnt{Name: "deep/er/file", Body: "x"},               // parents implied
		tarEnt{Name: "deep/", Type: tar.TypeDir, Mode: 0o777}, // named after its content: harmless
		tarEnt{Name: "empty", Body: ""},
	)
	pkg, err := put(t, s, "ok.tgz", data)
	require.NoError(t, err)
	require.Equal(t, 7, pkg.Entries) // app/, run, data.txt, deep/, deep/er/, file, empty
	require.Equal(t, int64(10+4+1), pkg.UnpackedBytes)
	require.Equal(t, []string{
		`entry "app/run": mode 4755 becomes 0755`,
		`entry "app/data.txt": mode 0666 becomes 0644`,
	}, pkg.Warnings)
	requireStoreHolds(t, s, parent, pkg.SHA256)

	// Many odd modes: the warnings stay short.
	var ents []tarEnt
	for i := range 30 {
		ents = append(ents, tarEnt{Name: "f" + strings.Repeat("x", i), Mode: 0o777})
	}
	pkg, err = put(t, s, "modes.tgz", tarGz(t, ents...))
	require.NoError(t, err)
	require.Len(t, pkg.Warnings, maxWarnings+1)
	require.Equal(t, "and 10 more entries whose modes will be sanitised", pkg.Warnings[maxWarnings])
}

func TestPutHostileZip(t *testing.T) {
	manyNames := func(tb testing.TB, n int) []byte {
		ents := make([]zipEnt, n)
		for i := range ents {
			ents[i] = zipEnt{Name: strings.Repeat("n", 40) + string(rune('a'+i%26)) + strings.Repeat("/x", i%5), Method: 0}
		}
		return makeZip(tb, ents...)
	}
	bomb, _ := deflateZeros(t, 64<<20)
	cases := []struct {
		name   string
		data   []byte
		opts   []Option
		reason []string
	}{
		{"absolute", makeZip(t, zipEnt{Name: "/etc/passwd", Body: "x"}), nil, []string{`"/etc/passwd"`, "absolute path"}},
		{"backslash traversal", makeZip(t, zipEnt{Name: `..\..\evil`, Body: "x"}), nil, []string{"backslash"}},
		{"nul", makeZip(t, zipEnt{Name: "a\x00.txt", Body: "x"}), nil, []string{`"a\x00.txt"`, "NUL"}},
		{"char device", makeZip(t, zipEnt{Name: "null", Mode: os.ModeDevice | os.ModeCharDevice | 0o666}), nil, []string{`"null"`, "character device"}},
		{"block device", makeZip(t, zipEnt{Name: "sda", Mode: os.ModeDevice | 0o660}), nil, []string{`"sda"`, "block device"}},
		{"fifo", makeZip(t, zipEnt{Name: "pipe", Mode: os.ModeNamedPipe | 0o644}), nil, []string{`"pipe"`, "fifo"}},
		{"socket", makeZip(t, zipEnt{Name: "sock", Mode: os.ModeSocket | 0o644}), nil, []string{`"sock"`, "socket"}},
		{"encrypted", encryptedZip(t), nil, []string{`"secret.txt"`, "encrypted"}},
		{"unsupported method", rawZip(t, &zip.FileHeader{Name: "b.bz2", Method: 12, UncompressedSize64: 3}, []byte("BZh")), nil, []string{`"b.bz2"`, "compression method 12"}},
		{"lying header", lyingZip(t, 64<<20, 4096), nil, []string{`"bomb.bin"`, "more data than the 4096 bytes"}},
		{"lying header, short", lyingZip(t, 10, 4096), nil, []string{`"bomb.bin"`, "ends after 10 of the 4096 bytes"}},
		{"honest bomb", rawZip(t, &zip.FileHeader{Name: "zeros", Method: zip.Deflate, UncompressedSize64: 64 << 20}, bomb), []Option{WithMaxUnpacked(1 << 20), WithMaxRatio(1 << 30)}, []string{`"zeros"`, "limit of 1048576 bytes"}},
		{"crc", rawZip(t, &zip.FileHeader{Name: "c.txt", Method: 0, CRC32: 1, UncompressedSize64: 3}, []byte("abc")), nil, []string{`"c.txt"`, "CRC-32 mismatch"}},
		{"dir with data", rawZip(t, dirHeader("d"), []byte("abc")), nil, []string{`"d"`, "directory with 3 bytes"}},
		{"duplicate", makeZip(t, zipEnt{Name: "a", Body: "1"}, zipEnt{Name: "a", Body: "2"}), nil, []string{`"a"`, "duplicate"}},
		{"marker file", makeZip(t, zipEnt{Name: ".berth-package", Body: "x"}), nil, []string{"reserved"}},
		{"too many entries", makeZip(t, zipEnt{Name: "a"}, zipEnt{Name: "b"}, zipEnt{Name: "c"}), []Option{WithMaxEntries(2)}, []string{"more than 2 entries"}},
		{"huge central directory", manyNames(t, 5000), []Option{WithMaxEntries(1)}, []string{"central directory is larger than 1 entries need"}},
		{"truncated", goodZip(t)[:200], nil, []string{"not a valid zip archive"}},
		{"empty", nil, nil, []string{"not a valid zip archive"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, parent := newStore(t, c.opts...)
			_, err := put(t, s, "hostile.zip", c.data)
			requireInvalid(t, err, c.reason...)
			requireStoreHolds(t, s, parent)
		})
	}
}

// dirHeader is a stored entry without trailing slash whose Unix mode says
// directory, declaring 3 bytes.
func dirHeader(name string) *zip.FileHeader {
	fh := &zip.FileHeader{Name: name, Method: zip.Store, UncompressedSize64: 3, CRC32: crc32.ChecksumIEEE([]byte("abc"))}
	fh.SetMode(os.ModeDir | 0o755)
	return fh
}

func TestOpenErrors(t *testing.T) {
	s, _ := newStore(t)
	for _, bad := range []string{"", "../../etc/passwd", strings.Repeat("a", 63), strings.Repeat("g", 64), strings.Repeat("a", 65), strings.Repeat("a", 62) + "/."} {
		_, err := s.Open(bad)
		requireInvalid(t, err, "64 hex digits")
	}
	_, err := s.Open(strings.Repeat("0", 64))
	require.ErrorIs(t, err, ErrNotFound)
	require.False(t, errors.Is(err, ErrInvalid))
}

// Archive bombs that stay under the unpacked-size limit: the shapes of the
// security review's findings (about 1000:1), at a size that keeps the test
// quick. Each is refused for its ratio, and nothing is stored.
func TestPutRefusesCompressionBombs(t *testing.T) {
	zerosTarGz := func(tb testing.TB, n int64) []byte {
		tb.Helper()
		var tarBuf bytes.Buffer
		tw := tar.NewWriter(&tarBuf)
		require.NoError(tb, tw.WriteHeader(&tar.Header{Name: "zeros.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: n, ModTime: fixtureTime}))
		_, err := io.Copy(tw, io.LimitReader(zeros{}, n))
		require.NoError(tb, err)
		require.NoError(tb, tw.Close())
		return gz(tb, tarBuf.Bytes())
	}
	zerosZip := func(tb testing.TB, n int64) []byte {
		tb.Helper()
		raw, crc := deflateZeros(tb, n)
		return rawZip(tb, &zip.FileHeader{Name: "zeros.bin", Method: zip.Deflate, CRC32: crc, UncompressedSize64: uint64(n)}, raw)
	}
	for _, c := range []struct {
		name, file string
		data       []byte
		reason     []string
	}{
		{"tar.gz, one entry", "bomb.tar.gz", zerosTarGz(t, 96<<20), []string{"more than 100:1"}},
		{"zip, one entry", "bomb.zip", zerosZip(t, 96<<20), []string{`"zeros.bin"`, "more than 100:1"}},
		{"war", "bomb.war", zerosZip(t, 96<<20), []string{"more than 100:1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, parent := newStore(t)
			require.Less(t, int64(96<<20), s.MaxUnpacked, "under the size limit: only the ratio stops it")
			_, err := put(t, s, c.file, c.data)
			requireInvalid(t, err, c.reason...)
			requireStoreHolds(t, s, parent)
		})
	}

	// Packages that compress well but are no bombs still go in: small ones
	// of any ratio, and large ones of a real package's ratio.
	s, _ := newStore(t)
	_, err := put(t, s, "small.tar.gz", zerosTarGz(t, 4<<20))
	require.NoError(t, err, "under the grace, any ratio")
	var text bytes.Buffer
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; text.Len() < 24<<20; i++ {
		fmt.Fprintf(&text, "%d GET /item/%d?q=%x 200 %d \"Mozilla/5.0\"\n", i, rnd.IntN(100000), rnd.Uint64(), rnd.IntN(5000))
	}
	_, err = put(t, s, "logs.tar.gz", tarGz(t, tarEnt{Name: "access.log", Body: text.String()}))
	require.NoError(t, err, "repetitive text compresses far less than 100:1")
}
