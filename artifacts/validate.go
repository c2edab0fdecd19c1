package artifacts

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"
)

const (
	// maxWarnings bounds Package.Warnings (plus one summary line).
	maxWarnings = 20
	// tarOverheadPerEntry bounds the tar metadata per entry (header block,
	// PAX or GNU long-name blocks, padding) that the decompressed stream may
	// hold beyond the file data.
	tarOverheadPerEntry = 4 << 10
	// maxTarTrailing bounds what may follow the tar end-of-archive marker in
	// the decompressed stream (record padding is at most 10 KiB).
	maxTarTrailing = 1 << 20
	// zipDirBytesPerEntry bounds, with zipDirSlack, the bytes zip.NewReader may
	// read for the central directory, so an archive of millions of tiny
	// entries is refused before they are all parsed into memory.
	zipDirBytesPerEntry = 512
	zipDirSlack         = 128 << 10
)

// entry is a file or directory of an archive that lands in the package.
type entry struct {
	name string // relative, clean, without trailing slash
	dir  bool
	exec bool  // some execute bit is set in the archive's mode
	size int64 // files: the declared size, which the data must match
}

// visitFunc receives the entries in archive order, parent directories before
// what they contain. For files, content yields exactly e.size bytes; the walk
// checks what visit did not read.
type visitFunc func(e entry, content io.Reader) error

type stats struct {
	entries  int
	unpacked int64
	warnings []string
}

// validate reads the package of the given kind from src (size bytes) through
// all checks, calling visit (if not nil) for the entries of tar.gz and zip
// packages. It writes nothing.
func validate(ctx context.Context, src io.ReaderAt, size int64, kind string, lim limits, visit visitFunc) (*stats, error) {
	w := &walker{ctx: ctx, lim: lim, visit: visit}
	var err error
	switch kind {
	case KindTarGz:
		w.tree = map[string]bool{}
		// compressed counts what gzip has taken from the file, read ahead
		// by at most the buffer: a bomb shows once unpacked outgrows it.
		w.compressed = &counted{r: &srcReader{io.NewSectionReader(src, 0, size)}}
		w.buffered = bufio.NewReaderSize(w.compressed, 256<<10)
		err = walkTarGz(w, w.buffered)
	case KindZip:
		w.tree = map[string]bool{}
		err = walkZip(w, src, size)
	case KindWAR, KindJAR:
		// Copied as one file, but still a zip that must pass the same checks.
		err = walkZip(w, src, size)
	default:
		err = invalidf("unknown package kind %q", kind)
	}
	if err != nil {
		return nil, err
	}
	if w.modeNotes > maxWarnings {
		w.warnings = append(w.warnings, fmt.Sprintf("and %d more entries whose modes will be sanitised", w.modeNotes-maxWarnings))
	}
	return &w.stats, nil
}

// walker applies the checks common to all archive formats.
type walker struct {
	ctx   context.Context
	lim   limits
	visit visitFunc
	// tree maps every path seen so far to whether it is a directory. Only
	// packages that are unpacked (tar.gz, zip) have one: their paths must form
	// a tree without duplicates, and parents missing from the archive are
	// emitted as directories.
	tree      map[string]bool
	counted   int // entries counted against MaxEntries, including skipped ones
	modeNotes int
	// compressed counts the compressed bytes read, for the ratio checks of
	// a tar.gz (a zip's entries declare their compressed sizes).
	compressed *counted
	buffered   *bufio.Reader
	stats
}

// taken is how many compressed bytes of a tar.gz gzip has consumed: it reads
// the buffered reader byte by byte, so what is still buffered is not taken.
func (w *walker) taken() int64 { return w.compressed.n - int64(w.buffered.Buffered()) }

// counted counts the bytes read through it.
type counted struct {
	r io.Reader
	n int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// overRatio says unpacked bytes from compressed ones exceed the ratio
// limit, past the grace that lets small, very compressible files through.
func (w *walker) overRatio(unpacked, compressed int64) bool {
	return unpacked > RatioGrace && unpacked/max(compressed, 1) >= w.lim.maxRatio
}

func (w *walker) ratioError(what string, unpacked, compressed int64) error {
	return invalidf("%s unpacks to more than %d bytes from %d compressed, more than %d:1; archive bombs are refused (the ratio counts beyond the first %d MiB)",
		what, unpacked, compressed, w.lim.maxRatio, RatioGrace>>20)
}

// tick counts one entry against MaxEntries.
func (w *walker) tick() error {
	w.counted++
	if w.counted > w.lim.maxEntries {
		return invalidf("more than %d entries", w.lim.maxEntries)
	}
	return nil
}

func (w *walker) emit(e entry, content io.Reader) error {
	if w.visit == nil {
		return nil
	}
	return w.visit(e, content)
}

// add checks one file or directory whose name passed cleanName, passes it to
// visit and reads (the rest of) its content, counting the bytes actually
// decompressed. mode holds the archive's Unix permission bits (0 if none).
func (w *walker) add(e entry, mode int64, content io.Reader) error {
	if w.tree != nil {
		if e.name == MarkerFile {
			return invalidf("entry %q: the name is reserved for berth's marker file", e.name)
		}
		for i := 0; i < len(e.name); i++ {
			if e.name[i] != '/' {
				continue
			}
			parent := e.name[:i]
			isDir, seen := w.tree[parent]
			if seen && !isDir {
				return invalidf("entry %q: its parent %q is a file", e.name, parent)
			}
			if !seen {
				if err := w.tick(); err != nil {
					return err
				}
				w.tree[parent] = true
				w.entries++
				if err := w.emit(entry{name: parent, dir: true}, nil); err != nil {
					return err
				}
			}
		}
		if isDir, seen := w.tree[e.name]; seen {
			if isDir && e.dir {
				return nil // a directory listed twice, or after something inside it
			}
			return invalidf("entry %q: duplicate entry", e.name)
		}
		w.tree[e.name] = e.dir
	}
	w.entries++
	w.noteMode(e, mode)
	if e.dir {
		return w.emit(e, nil)
	}

	if e.size < 0 {
		return invalidf("entry %q: negative size %d", e.name, e.size)
	}
	if e.size > w.lim.maxUnpacked-w.unpacked {
		return invalidf("entry %q: its %d bytes take the unpacked size past the limit of %d bytes",
			e.name, e.size, w.lim.maxUnpacked)
	}
	// The declared size was checked against the limit; the data is read
	// through a reader that never yields more than that, and one byte more is
	// asked for afterwards, so a header that under-declares is caught after
	// size+1 bytes whatever the data really holds.
	cr := &countReader{ctx: w.ctx, r: content}
	body := io.LimitReader(cr, e.size)
	if err := w.emit(e, body); err != nil {
		if cr.err != nil {
			return w.fail(fmt.Sprintf("entry %q", e.name), cr.err)
		}
		return err
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return w.fail(fmt.Sprintf("entry %q", e.name), err)
	}
	if cr.n < e.size {
		return invalidf("entry %q: its data ends after %d of the %d bytes its header declares", e.name, cr.n, e.size)
	}
	var one [1]byte
	k, err := io.ReadAtLeast(cr, one[:], 1)
	if k > 0 {
		return invalidf("entry %q: holds more data than the %d bytes its header declares", e.name, e.size)
	}
	if err != nil && err != io.EOF {
		return w.fail(fmt.Sprintf("entry %q", e.name), err)
	}
	w.unpacked += cr.n
	return nil
}

// noteMode records entries whose modes TarForContainer changes in ways worth
// telling: setuid, setgid and sticky bits, and world-writable modes.
func (w *walker) noteMode(e entry, mode int64) {
	if mode&0o7002 == 0 {
		return
	}
	w.modeNotes++
	if w.modeNotes > maxWarnings {
		return
	}
	w.warnings = append(w.warnings, fmt.Sprintf("entry %q: mode %04o becomes %04o", e.name, mode&0o7777, containerMode(e)))
}

// fail turns an error met while reading the archive into the error Put
// reports: the context's error and I/O errors of the store as they are,
// anything else as an invalid package.
func (w *walker) fail(where string, err error) error {
	if ctxErr := w.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var re *readError
	if errors.As(err, &re) {
		return re
	}
	var ip *InvalidPackageError
	if errors.As(err, &ip) {
		return ip // already says what is wrong (a ratio check inside a reader)
	}
	var ce *capError
	if errors.As(err, &ce) {
		return invalidf("%s: the decompressed stream exceeds %d bytes", where, ce.limit)
	}
	return invalidf("%s: %v", where, err)
}

// quote shortens a hostile name for an error message.
func quote(name string) string {
	if len(name) > 80 {
		name = name[:80] + "..."
	}
	return fmt.Sprintf("%q", name)
}

// cleanName checks an entry name and returns it relative, clean and without
// trailing slash; "" means the package root ("./"). Names must be at most 255
// bytes, without NUL or backslash, not absolute, without ".." elements, and
// clean apart from one leading "./" and, for directories, a trailing "/".
func cleanName(raw string, isDir bool) (string, error) {
	switch {
	case raw == "":
		return "", invalidf("entry with an empty name")
	case len(raw) > maxNameLen:
		return "", invalidf("entry %s: name longer than %d bytes", quote(raw), maxNameLen)
	case strings.ContainsRune(raw, 0):
		return "", invalidf("entry %s: name contains a NUL byte", quote(raw))
	case strings.Contains(raw, `\`):
		return "", invalidf("entry %s: name contains a backslash", quote(raw))
	case strings.HasPrefix(raw, "/"):
		return "", invalidf("entry %s: absolute path", quote(raw))
	}
	name := raw
	if isDir {
		name = strings.TrimSuffix(name, "/")
	}
	if name == "." {
		return "", nil
	}
	name = strings.TrimPrefix(name, "./")
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", invalidf(`entry %s: path has a ".." element`, quote(raw))
		}
	}
	if name == "" || path.Clean(name) != name {
		return "", invalidf("entry %s: path is not clean", quote(raw))
	}
	return name, nil
}

// walkTarGz checks a gzip-compressed tar stream.
func walkTarGz(w *walker, src io.Reader) error {
	zr, err := gzip.NewReader(src)
	if err != nil {
		return w.fail("not a gzip stream", err)
	}
	defer zr.Close()
	// Everything decompressed counts: file data against MaxUnpacked (in add),
	// and the whole stream, metadata and padding included, against a cap.
	ratio := &ratioReader{w: w, r: zr, entry: "the archive"}
	capped := &capReader{r: ratio, left: w.lim.maxUnpacked + int64(w.lim.maxEntries)*tarOverheadPerEntry + maxTarTrailing}
	capped.limit = capped.left
	tr := tar.NewReader(capped)
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath (GODEBUG tarinsecurepath=0) comes with the header;
		// cleanName gives the reason.
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return w.fail(fmt.Sprintf("corrupt tar archive after %d entries", w.counted), err)
		}
		if err := w.tick(); err != nil {
			return err
		}
		ratio.mark(fmt.Sprintf("entry %s", quote(hdr.Name)))
		var isDir bool
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			isDir = true
		case tar.TypeXGlobalHeader:
			continue // metadata only (git archive writes one); nothing lands on disk
		default:
			return invalidf("entry %s: %s", quote(hdr.Name), tarTypeReason(hdr))
		}
		if hdr.Linkname != "" {
			return invalidf("entry %s: a %s with a link target %s is not allowed", quote(hdr.Name), tarTypeName(hdr), quote(hdr.Linkname))
		}
		for key := range hdr.PAXRecords {
			if strings.HasPrefix(key, "GNU.sparse.") {
				return invalidf("entry %s: sparse files are not allowed", quote(hdr.Name))
			}
		}
		name, err := cleanName(hdr.Name, isDir)
		if err != nil {
			return err
		}
		if name == "" {
			if isDir {
				continue // "./": the package folder itself
			}
			return invalidf("entry %s: a file cannot be the package root", quote(hdr.Name))
		}
		e := entry{name: name, dir: isDir, exec: hdr.Mode&0o111 != 0, size: hdr.Size}
		if err := w.add(e, hdr.Mode, tr); err != nil {
			return err
		}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(capped, maxTarTrailing+1))
	if err != nil {
		return w.fail("corrupt gzip stream after the tar archive", err)
	}
	if n > maxTarTrailing {
		return invalidf("more than %d bytes follow the end of the tar archive", maxTarTrailing)
	}
	return nil
}

func tarTypeName(hdr *tar.Header) string {
	if hdr.Typeflag == tar.TypeDir {
		return "directory"
	}
	return "regular file"
}

func tarTypeReason(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return fmt.Sprintf("symbolic link to %s is not allowed", quote(hdr.Linkname))
	case tar.TypeLink:
		return fmt.Sprintf("hard link to %s is not allowed", quote(hdr.Linkname))
	case tar.TypeChar:
		return fmt.Sprintf("character device %d,%d is not allowed", hdr.Devmajor, hdr.Devminor)
	case tar.TypeBlock:
		return fmt.Sprintf("block device %d,%d is not allowed", hdr.Devmajor, hdr.Devminor)
	case tar.TypeFifo:
		return "named pipe (fifo) is not allowed"
	case tar.TypeGNUSparse:
		return "GNU sparse file is not allowed"
	}
	return fmt.Sprintf("entry type %q is not allowed (only regular files and directories)", hdr.Typeflag)
}

// walkZip checks a zip archive (also .war and .jar).
func walkZip(w *walker, src io.ReaderAt, size int64) error {
	b := &budgetReaderAt{r: src, left: zipDirSlack + int64(w.lim.maxEntries)*zipDirBytesPerEntry, limited: true}
	zr, err := zip.NewReader(b, size)
	if b.exceeded {
		return invalidf("the zip central directory is larger than %d entries need", w.lim.maxEntries)
	}
	// ErrInsecurePath (GODEBUG zipinsecurepath=0) comes with a usable reader;
	// cleanName gives the reason.
	if err != nil && (zr == nil || !errors.Is(err, zip.ErrInsecurePath)) {
		var re *readError
		if errors.As(err, &re) {
			return re
		}
		return invalidf("not a valid zip archive: %v", err)
	}
	b.limited = false
	if len(zr.File) > w.lim.maxEntries {
		return invalidf("more than %d entries", w.lim.maxEntries)
	}
	// The declared sizes are the most add lets any entry unpack to.
	var declared int64
	for _, f := range zr.File {
		n := int64(min(f.UncompressedSize64, math.MaxInt64>>1))
		if w.overRatio(n, int64(f.CompressedSize64)) {
			return w.ratioError(fmt.Sprintf("entry %s", quote(f.Name)), n, int64(f.CompressedSize64))
		}
		declared += n
	}
	if w.overRatio(declared, size) {
		return w.ratioError("the archive", declared, size)
	}
	for _, f := range zr.File {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.tick(); err != nil {
			return err
		}
		if err := walkZipFile(w, f); err != nil {
			return err
		}
	}
	return nil
}

func walkZipFile(w *walker, f *zip.File) error {
	mode := f.Mode()
	unixMode := zipUnixMode(f)
	isDir := strings.HasSuffix(f.Name, "/") || mode.IsDir()
	switch {
	case f.Flags&0x1 != 0 || f.Flags&0x40 != 0 || f.Method == 99:
		return invalidf("entry %s: encrypted entries are not allowed", quote(f.Name))
	case mode&fs.ModeSymlink != 0:
		return invalidf("entry %s: symbolic link is not allowed", quote(f.Name))
	case mode&fs.ModeCharDevice != 0:
		return invalidf("entry %s: character device is not allowed", quote(f.Name))
	case mode&fs.ModeDevice != 0:
		return invalidf("entry %s: block device is not allowed", quote(f.Name))
	case mode&fs.ModeNamedPipe != 0:
		return invalidf("entry %s: named pipe (fifo) is not allowed", quote(f.Name))
	case mode&fs.ModeSocket != 0:
		return invalidf("entry %s: socket is not allowed", quote(f.Name))
	case mode&fs.ModeIrregular != 0:
		return invalidf("entry %s: irregular file is not allowed", quote(f.Name))
	}
	name, err := cleanName(f.Name, isDir)
	if err != nil {
		return err
	}
	if name == "" {
		if isDir {
			return nil // "./": the package folder itself
		}
		return invalidf("entry %s: a file cannot be the package root", quote(f.Name))
	}
	if isDir {
		if f.UncompressedSize64 != 0 {
			return invalidf("entry %s: a directory with %d bytes of data", quote(f.Name), f.UncompressedSize64)
		}
		return w.add(entry{name: name, dir: true}, unixMode, nil)
	}
	if f.UncompressedSize64 > math.MaxInt64 {
		return invalidf("entry %s: size %d is out of range", quote(f.Name), f.UncompressedSize64)
	}
	if w.overRatio(int64(f.UncompressedSize64), int64(f.CompressedSize64)) {
		return w.ratioError(fmt.Sprintf("entry %s", quote(f.Name)), int64(f.UncompressedSize64), int64(f.CompressedSize64))
	}
	// The data is decompressed here rather than by zip.File.Open, so the size
	// limits of add are the ones that stop it.
	raw, err := f.OpenRaw()
	if err != nil {
		return w.fail(fmt.Sprintf("entry %s", quote(f.Name)), err)
	}
	var data io.Reader
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return invalidf("entry %s: stored entry declares %d bytes compressed but %d uncompressed",
				quote(f.Name), f.CompressedSize64, f.UncompressedSize64)
		}
		data = raw
	case zip.Deflate:
		fr := flate.NewReader(raw)
		defer fr.Close()
		data = fr
	default:
		return invalidf("entry %s: compression method %d is not supported (only stored and deflate)", quote(f.Name), f.Method)
	}
	crc := crc32.NewIEEE()
	e := entry{name: name, exec: unixMode&0o111 != 0, size: int64(f.UncompressedSize64)}
	if err := w.add(e, unixMode, io.TeeReader(data, crc)); err != nil {
		return err
	}
	// As archive/zip does, a zero CRC-32 in the header is not checked.
	if f.CRC32 != 0 && crc.Sum32() != f.CRC32 {
		return invalidf("entry %s: CRC-32 mismatch (%08x, header says %08x)", quote(f.Name), crc.Sum32(), f.CRC32)
	}
	return nil
}

// zipUnixMode returns the Unix mode bits of an entry made on Unix or macOS,
// and 0 for others (whose attributes carry no permissions worth keeping).
func zipUnixMode(f *zip.File) int64 {
	switch f.CreatorVersion >> 8 {
	case 3, 19: // Unix, macOS
		return int64(f.ExternalAttrs>>16) & 0o7777
	}
	return 0
}

// countReader counts the bytes read, remembers the first error other than
// io.EOF, and stops once the context is done.
type countReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
	err error
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// capError: a decompressed stream went past its cap.
type capError struct{ limit int64 }

func (e *capError) Error() string {
	return fmt.Sprintf("decompressed stream exceeds %d bytes", e.limit)
}

// capReader fails once more than limit bytes have been read.
type capReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Only fail if there is more to read.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, &capError{c.limit}
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// srcReader marks errors of the stored file as the store's own.
type srcReader struct{ r io.Reader }

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

var errZipDirBudget = errors.New("zip central directory too large")

// budgetReaderAt lets at most left bytes be read while limited, and marks
// errors of the stored file as the store's own.
type budgetReaderAt struct {
	r        io.ReaderAt
	left     int64
	limited  bool
	exceeded bool
}

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if b.limited {
		if int64(len(p)) > b.left {
			b.exceeded = true
			return 0, errZipDirBudget
		}
		b.left -= int64(len(p))
	}
	n, err := b.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// ratioReader stops a tar.gz whose data unpacks too far beyond what it
// took from the compressed file, for the whole archive and for the entry
// being read (from the mark of its header on).
type ratioReader struct {
	w     *walker
	r     io.Reader
	n     int64
	entry string
	// where the current entry began, unpacked and compressed
	entryN, entryC int64
}

func (rr *ratioReader) mark(entry string) {
	rr.entry, rr.entryN, rr.entryC = entry, rr.n, rr.w.taken()
}

func (rr *ratioReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.n += int64(n)
	c := rr.w.taken()
	if rr.w.overRatio(rr.n-rr.entryN, c-rr.entryC) {
		return n, rr.w.ratioError(rr.entry, rr.n-rr.entryN, c-rr.entryC)
	}
	if rr.w.overRatio(rr.n, c) {
		return n, rr.w.ratioError("the archive", rr.n, c)
	}
	return n, err
}
