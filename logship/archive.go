package logship

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Line is one archived line.
type Line struct {
	At     time.Time         `json:"at"`
	Stream string            `json:"stream"` // stdout or stderr
	Text   string            `json:"text"`
	Tags   map[string]string `json:"tags"`
}

// SearchResult is what a search found, oldest line first.
type SearchResult struct {
	Lines []Line `json:"lines"`
	// Truncated says more lines matched than the limit; the newest are kept.
	Truncated bool `json:"truncated,omitempty"`
	// Scanned is how many archived lines of the window were read.
	Scanned int `json:"scanned"`
}

// Limits of one search: it reads at most MaxScanBytes of an instance's
// files, and returns at most MaxLines lines of at most MaxText bytes each,
// so an answer stays well inside what a workflow result may carry.
const (
	MaxText      = 2000
	MaxLines     = 500
	MaxScanBytes = 64 << 20
	MaxWindow    = 24 * time.Hour
)

// dayLayout names an archive file: one per instance and UTC day.
const dayLayout = "2006-01-02"

var instanceName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,190}$`)

// ErrBadInstance is a search for a name that cannot be an instance's.
var ErrBadInstance = errors.New("not an instance name")

// Search reads the lines instance wrote since since, that contain query
// (any line when empty), from the archive under root. The files are
// named by the instance only, never by anything else of the request.
func Search(ctx context.Context, root, instance string, since time.Time, query string, limit int) (*SearchResult, error) {
	if !instanceName.MatchString(instance) {
		return nil, ErrBadInstance
	}
	if limit <= 0 || limit > MaxLines {
		limit = MaxLines
	}
	now := time.Now().UTC()
	if since.Before(now.Add(-MaxWindow)) {
		since = now.Add(-MaxWindow)
	}
	res := &SearchResult{Lines: []Line{}}
	budget := int64(MaxScanBytes)
	for day := since.UTC().Truncate(24 * time.Hour); !day.After(now); day = day.Add(24 * time.Hour) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(root, instance, day.Format(dayLayout)+".log")
		if err := scanFile(path, since, query, limit, &budget, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func scanFile(path string, since time.Time, query string, limit int, budget *int64, res *SearchResult) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > *budget {
		// Only the newest part of a day larger than what is left to read.
		if _, err := f.Seek(st.Size()-*budget, io.SeekStart); err != nil {
			return err
		}
		res.Truncated = true
	}
	sc := bufio.NewScanner(io.LimitReader(f, *budget))
	sc.Buffer(make([]byte, 64<<10), 256<<10)
	for sc.Scan() {
		*budget -= int64(len(sc.Bytes()) + 1)
		l, ok := parseLine(sc.Text())
		if !ok || l.At.Before(since) {
			continue
		}
		res.Scanned++
		if query != "" && !strings.Contains(l.Text, query) {
			continue
		}
		res.Lines = append(res.Lines, l)
		if len(res.Lines) > limit {
			res.Lines = res.Lines[1:]
			res.Truncated = true
		}
	}
	return sc.Err()
}

// parseLine reads "<time> <severity> <tag>[pid]: <text>", as the archive
// rules of deploy/rsyslog write it.
func parseLine(s string) (Line, bool) {
	at, rest, ok := strings.Cut(s, " ")
	if !ok {
		return Line{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return Line{}, false
	}
	sev, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return Line{}, false
	}
	tag, text, ok := strings.Cut(rest, ": ")
	if !ok {
		tag, text = strings.TrimSuffix(rest, ":"), ""
	}
	tags, ok := ParseTag(tag)
	if !ok {
		return Line{}, false
	}
	stream := "stdout"
	if n, err := strconv.Atoi(sev); err == nil && n <= 3 {
		stream = "stderr"
	}
	text = strings.ReplaceAll(text, "#011", "\t")
	if len(text) > MaxText {
		text = text[:MaxText]
	}
	return Line{At: t.UTC(), Stream: stream, Text: text, Tags: tags}, true
}

// Prune removes the archive's day files older than keep, and folders
// left empty; it returns how many files went. Only files named as the
// archive names them are touched.
func Prune(root string, keep time.Duration, now time.Time) (int, error) {
	cutoff := now.UTC().Add(-keep).Format(dayLayout)
	removed := 0
	dirs, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		if err := pruneDir(filepath.Join(root, d.Name()), cutoff, &removed); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

func pruneDir(dir, cutoff string, removed *int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	left := len(entries)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := pruneDir(p, cutoff, removed); err != nil {
				return err
			}
			continue
		}
		day, ok := strings.CutSuffix(e.Name(), ".log")
		if _, err := time.Parse(dayLayout, day); !ok || err != nil || day >= cutoff {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("prune %s: %w", p, err)
		}
		*removed++
		left--
	}
	if left == 0 {
		_ = os.Remove(dir)
	}
	return nil
}
