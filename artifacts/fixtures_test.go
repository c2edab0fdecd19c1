package artifacts

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Regenerate the committed fixtures with
//
//	go test ./artifacts/ -run TestWriteFixtures -update-fixtures
var updateFixtures = flag.Bool("update-fixtures", false, "rewrite the fixtures in testdata/packages")

const fixtureDir = "../testdata/packages"

func goodTarGz(tb testing.TB) []byte {
	return tarGz(tb,
		tarEnt{Name: "./", Type: tar.TypeDir},
		tarEnt{Name: "./VERSION", Body: "v9\n"},
		tarEnt{Name: "./index.html", Body: "<!doctype html>\n<title>berth sample</title>\n<p>version v9</p>\n"},
		tarEnt{Name: "./bin/", Type: tar.TypeDir},
		tarEnt{Name: "./bin/start.sh", Mode: 0o755, Body: "#!/bin/sh\nexec python3 -m http.server 8080\n"},
		tarEnt{Name: "./static/", Type: tar.TypeDir, Mode: 0o775},
		tarEnt{Name: "./static/app.js", Body: "console.log('v9');\n"},
	)
}

func goodZip(tb testing.TB) []byte {
	return makeZip(tb,
		zipEnt{Name: "VERSION", Body: "v9\n", Mode: 0o644},
		zipEnt{Name: "index.html", Body: "<!doctype html>\n<title>berth sample</title>\n<p>version v9</p>\n", Mode: 0o644},
		zipEnt{Name: "css/site.css", Body: "body { font-family: sans-serif; }\n", Mode: 0o644},
		zipEnt{Name: "run.sh", Body: "#!/bin/sh\necho v9\n", Mode: 0o755},
	)
}

func goodWar(tb testing.TB) []byte {
	return makeZip(tb,
		zipEnt{Name: "META-INF/"},
		zipEnt{Name: "META-INF/MANIFEST.MF", Body: "Manifest-Version: 1.0\r\nImplementation-Version: v9\r\n\r\n"},
		zipEnt{Name: "WEB-INF/"},
		zipEnt{Name: "WEB-INF/web.xml", Body: `<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0">
  <display-name>berth sample v9</display-name>
  <welcome-file-list><welcome-file>index.jsp</welcome-file></welcome-file-list>
</web-app>
`},
		zipEnt{Name: "index.jsp", Body: "<html><body>version v9</body></html>\n"},
	)
}

// writeBombTarGz streams a gzip bomb: one entry "zeros.bin" whose header
// declares 3 GiB, followed by 1 GiB of zeros (about 1 MB compressed) and no
// more; a naive extractor writes 1 GiB before noticing anything.
func writeBombTarGz(tb testing.TB, w io.Writer) {
	tb.Helper()
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	require.NoError(tb, err)
	tw := tar.NewWriter(zw)
	require.NoError(tb, tw.WriteHeader(&tar.Header{
		Name: "zeros.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3 << 30, ModTime: fixtureTime,
	}))
	_, err = io.Copy(tw, io.LimitReader(zeros{}, 1<<30))
	require.NoError(tb, err)
	// No tw.Close: the tar writer would insist on the missing 2 GiB.
	require.NoError(tb, zw.Close())
}

// hostileFixtures are the committed fixtures Put must refuse with default
// limits, with parts of the reason.
var hostileFixtures = []struct {
	name   string
	gen    func(testing.TB) []byte // nil: bomb.tar.gz, streamed by writeBombTarGz
	reason []string
}{
	{"traversal.tar.gz", func(tb testing.TB) []byte {
		return tarGz(tb, tarEnt{Name: "../evil", Body: "escaped\n"})
	}, []string{`"../evil"`, `".." element`}},
	{"absolute.tar.gz", func(tb testing.TB) []byte {
		return tarGz(tb, tarEnt{Name: "/etc/passwd", Body: "root::0:0:root:/root:/bin/sh\n"})
	}, []string{`"/etc/passwd"`, "absolute path"}},
	{"symlink.tar.gz", func(tb testing.TB) []byte {
		return tarGz(tb,
			tarEnt{Name: "etc", Type: tar.TypeSymlink, Link: "/etc"},
			tarEnt{Name: "etc/cron.d/evil", Body: "* * * * * root id\n"})
	}, []string{`"etc"`, `symbolic link to "/etc"`}},
	{"hardlink.tar.gz", func(tb testing.TB) []byte {
		return tarGz(tb, tarEnt{Name: "x", Type: tar.TypeLink, Link: "../../x"})
	}, []string{`"x"`, `hard link to "../../x"`}},
	{"device.tar.gz", func(tb testing.TB) []byte {
		return tarGz(tb, tarEnt{Name: "null", Type: tar.TypeChar, Mode: 0o666})
	}, []string{`"null"`, "character device 1,3"}},
	{"bomb.tar.gz", nil, []string{`"zeros.bin"`, "3221225472 bytes", "limit of 1073741824 bytes"}},
	{"zipbomb.zip", func(tb testing.TB) []byte {
		return lyingZip(tb, 256<<20, 1024)
	}, []string{`"bomb.bin"`, "more data than the 1024 bytes its header declares"}},
	{"traversal.zip", func(tb testing.TB) []byte {
		return makeZip(tb, zipEnt{Name: "ok.txt", Body: "fine\n"}, zipEnt{Name: "../evil", Body: "escaped\n"})
	}, []string{`"../evil"`, `".." element`}},
	{"symlink.zip", func(tb testing.TB) []byte {
		return makeZip(tb, zipEnt{Name: "etc", Body: "/etc", Mode: fs.ModeSymlink | 0o777})
	}, []string{`"etc"`, "symbolic link"}},
	{"notazip.war", func(testing.TB) []byte {
		return []byte("This is not a web archive, just text with a .war name.\n")
	}, []string{"not a valid zip archive"}},
	{"encrypted.zip", encryptedZip, []string{`"secret.txt"`, "encrypted"}},
}

func TestWriteFixtures(t *testing.T) {
	if !*updateFixtures {
		t.Skip("run with -update-fixtures to rewrite testdata/packages")
	}
	require.NoError(t, os.MkdirAll(fixtureDir, 0o755))
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(fixtureDir, name), data, 0o644))
	}
	write("good.tar.gz", goodTarGz(t))
	write("good.zip", goodZip(t))
	write("good.war", goodWar(t))
	for _, f := range hostileFixtures {
		if f.gen != nil {
			write(f.name, f.gen(t))
			continue
		}
		out, err := os.Create(filepath.Join(fixtureDir, f.name))
		require.NoError(t, err)
		bw := bufio.NewWriter(out)
		writeBombTarGz(t, bw)
		require.NoError(t, bw.Flush())
		require.NoError(t, out.Close())
	}
}

func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, name))
	require.NoError(t, err, "missing fixture; run go test -run TestWriteFixtures -update-fixtures")
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	require.NoError(t, err)
	require.Less(t, fi.Size(), int64(2_000_000), "fixtures stay small")
	return f
}

func TestFixturesHostileRefused(t *testing.T) {
	for _, f := range hostileFixtures {
		t.Run(f.name, func(t *testing.T) {
			s, parent := newStore(t) // default limits
			pkg, err := s.Put(context.Background(), f.name, openFixture(t, f.name), "")
			require.Nil(t, pkg)
			requireInvalid(t, err, f.reason...)
			requireStoreHolds(t, s, parent)
		})
	}
}

func TestFixturesGood(t *testing.T) {
	s, parent := newStore(t)
	ctx := context.Background()

	tgz, err := s.Put(ctx, "good.tar.gz", openFixture(t, "good.tar.gz"), "")
	require.NoError(t, err)
	require.Equal(t, KindTarGz, tgz.Kind)
	require.Equal(t, 6, tgz.Entries) // VERSION, index.html, bin/, bin/start.sh, static/, static/app.js
	files := containerTar(t, s, tgz.SHA256)
	require.Contains(t, files, tarFile{Name: "VERSION", Type: tar.TypeReg, Mode: 0o644, Body: "v9\n"})
	require.Contains(t, files, tarFile{Name: "bin/start.sh", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\nexec python3 -m http.server 8080\n"})
	require.Contains(t, files, tarFile{Name: "static/", Type: tar.TypeDir, Mode: 0o755, Body: ""})
	var html string
	for _, f := range files {
		if f.Name == "index.html" {
			html = f.Body
		}
	}
	require.Contains(t, html, "v9")

	zp, err := s.Put(ctx, "good.zip", openFixture(t, "good.zip"), "")
	require.NoError(t, err)
	require.Equal(t, KindZip, zp.Kind)
	require.Equal(t, 5, zp.Entries) // four files and the implied css/
	files = containerTar(t, s, zp.SHA256)
	require.Contains(t, files, tarFile{Name: "css/", Type: tar.TypeDir, Mode: 0o755})
	require.Contains(t, files, tarFile{Name: "run.sh", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\necho v9\n"})

	war, err := s.Put(ctx, "good.war", openFixture(t, "good.war"), "")
	require.NoError(t, err)
	require.Equal(t, KindWAR, war.Kind)
	require.Equal(t, 5, war.Entries)
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "good.war"))
	require.NoError(t, err)
	require.Equal(t, []tarFile{
		{Name: "good.war", Type: tar.TypeReg, Mode: 0o644, Body: string(raw)},
		{Name: MarkerFile, Type: tar.TypeReg, Mode: 0o644, Body: war.SHA256 + "\n"},
	}, containerTar(t, s, war.SHA256))
	zr, err := zip.OpenReader(filepath.Join(fixtureDir, "good.war"))
	require.NoError(t, err)
	defer zr.Close()
	_, err = fs.Stat(zr, "WEB-INF/web.xml")
	require.NoError(t, err)

	requireStoreHolds(t, s, parent, tgz.SHA256, zp.SHA256, war.SHA256)
}
