package logship

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTagRoundTrip(t *testing.T) {
	f := Fields{Tenant: "acme", Env: "dev", App: "shop", Service: "web", Instance: "acme-dev-shop-web-1", Host: "h1",
		Release: Release("127.0.0.1:5000/acme/shop:v2")}
	tag := f.Tag()
	require.Equal(t, "berth,tenant=acme,env=dev,app=shop,service=web,instance=acme-dev-shop-web-1,host=h1,release=v2", tag)
	got, ok := ParseTag(tag + "[123]")
	require.True(t, ok)
	require.Equal(t, "acme-dev-shop-web-1", got["instance"])
	require.Equal(t, "v2", got["release"])
	_, ok = ParseTag("sshd[22]")
	require.False(t, ok)
	require.Equal(t, "a_b_c_d", Fields{Tenant: "a b:c,d"}.Tag()[len("berth,tenant="):], "no separator survives in a value")
	require.Equal(t, "latest", Release("berth-sample"))
	require.Equal(t, "sha256:0123456789ab", Release("r/x@sha256:0123456789abcdef0123"))
}

func writeDay(t *testing.T, root, instance string, day time.Time, lines ...string) {
	t.Helper()
	dir := filepath.Join(root, instance)
	require.NoError(t, os.MkdirAll(dir, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, day.Format(dayLayout)+".log"), []byte(strings.Join(lines, "\n")+"\n"), 0o640))
}

func TestSearchWindowQueryAndLimit(t *testing.T) {
	root := t.TempDir()
	now := time.Now().UTC()
	tag := Fields{Instance: "acme-dev-shop-web-1", Service: "web"}.Tag()
	line := func(at time.Time, sev, text string) string {
		return at.Format(time.RFC3339Nano) + " " + sev + " " + tag + "[7]: " + text
	}
	writeDay(t, root, "acme-dev-shop-web-1", now,
		line(now.Add(-2*time.Hour), "6", "old hello"),
		line(now.Add(-5*time.Minute), "3", "sampleapp: listening on :8080"),
		"garbage that is not a line",
		line(now.Add(-time.Minute), "6", "hello#011world"),
	)
	ctx := context.Background()
	res, err := Search(ctx, root, "acme-dev-shop-web-1", now.Add(-10*time.Minute), "", 0)
	require.NoError(t, err)
	require.Len(t, res.Lines, 2)
	require.Equal(t, "stderr", res.Lines[0].Stream)
	require.Equal(t, "sampleapp: listening on :8080", res.Lines[0].Text)
	require.Equal(t, "hello\tworld", res.Lines[1].Text)
	require.Equal(t, "web", res.Lines[1].Tags["service"])

	res, err = Search(ctx, root, "acme-dev-shop-web-1", now.Add(-3*time.Hour), "hello", 1)
	require.NoError(t, err)
	require.Len(t, res.Lines, 1, "the newest match is kept")
	require.True(t, res.Truncated)
	require.Equal(t, "hello\tworld", res.Lines[0].Text)

	res, err = Search(ctx, root, "nobody-1", now.Add(-time.Hour), "", 10)
	require.NoError(t, err)
	require.Empty(t, res.Lines)
	_, err = Search(ctx, root, "../etc", now.Add(-time.Hour), "", 10)
	require.ErrorIs(t, err, ErrBadInstance)
}

func TestPruneKeepsRecentDays(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	writeDay(t, root, "a-1", now.AddDate(0, 0, -20), "x")
	writeDay(t, root, "a-1", now, "x")
	writeDay(t, root, "gone-1", now.AddDate(0, 0, -30), "x")
	require.NoError(t, os.WriteFile(filepath.Join(root, "a-1", "notes.txt"), []byte("kept"), 0o600))
	n, err := Prune(root, 14*24*time.Hour, now)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = os.Stat(filepath.Join(root, "gone-1"))
	require.True(t, os.IsNotExist(err), "an emptied folder goes too")
	left, err := os.ReadDir(filepath.Join(root, "a-1"))
	require.NoError(t, err)
	require.Len(t, left, 2)
}

func TestWriterShipsTaggedLines(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	got := make(chan string, 4)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			got <- sc.Text()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWriter(ctx, l.Addr().String(), Fields{Component: "server"})
	_, err = w.Write([]byte("time=1 level=INFO msg=hello\nsecond\n"))
	require.NoError(t, err)
	first := <-got
	require.Contains(t, first, " berth,component=server[")
	require.True(t, strings.HasSuffix(first, "]: time=1 level=INFO msg=hello"), first)
	require.True(t, strings.HasSuffix(<-got, "]: second"))
	_, err = ParseAddress("udp://x:1")
	require.Error(t, err)
	hp, err := ParseAddress("tcp://127.0.0.1:5514")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:5514", hp)
}
