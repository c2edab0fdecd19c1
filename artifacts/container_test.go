package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTarForContainerTarGz(t *testing.T) {
	s, parent := newStore(t)
	pkg, err := put(t, s, "app.tar.gz", tarGz(t,
		tarEnt{Name: "./", Type: tar.TypeDir, Mode: 0o700},
		tarEnt{Name: "./app/", Type: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000},
		tarEnt{Name: "./app/run", Mode: 0o4775, Body: "#!/bin/sh\n", Uid: 1000, Gid: 1000},
		tarEnt{Name: "./app/data.txt", Mode: 0o666, Body: "data"},
		tarEnt{Name: "deep/er/file", Mode: 0o600, Body: "x"},
		tarEnt{Name: "deep/", Type: tar.TypeDir, Mode: 0o777},
		tarEnt{Name: "empty", Mode: 0o640},
		tarEnt{Name: "tool", Mode: 0o710, Body: "\x7fELF"},
	))
	require.NoError(t, err)

	want := []tarFile{
		{Name: "app/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "app/run", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"},
		{Name: "app/data.txt", Type: tar.TypeReg, Mode: 0o644, Body: "data"},
		{Name: "deep/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "deep/er/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "deep/er/file", Type: tar.TypeReg, Mode: 0o644, Body: "x"},
		{Name: "empty", Type: tar.TypeReg, Mode: 0o644},
		{Name: "tool", Type: tar.TypeReg, Mode: 0o755, Body: "\x7fELF"},
		{Name: MarkerFile, Type: tar.TypeReg, Mode: 0o644, Body: pkg.SHA256 + "\n"},
	}
	require.Equal(t, want, containerTar(t, s, pkg.SHA256))
	require.Equal(t, len(want)-1, pkg.Entries)

	// The same package always gives the same bytes.
	var a, b bytes.Buffer
	require.NoError(t, s.TarForContainer(context.Background(), pkg.SHA256, &a))
	require.NoError(t, s.TarForContainer(context.Background(), strings.ToUpper(pkg.SHA256), &b))
	require.Equal(t, a.Bytes(), b.Bytes())
	requireStoreHolds(t, s, parent, pkg.SHA256)
}

func TestTarForContainerZip(t *testing.T) {
	s, _ := newStore(t)
	pkg, err := put(t, s, "site.zip", goodZip(t))
	require.NoError(t, err)
	require.Equal(t, []tarFile{
		{Name: "VERSION", Type: tar.TypeReg, Mode: 0o644, Body: "v9\n"},
		{Name: "index.html", Type: tar.TypeReg, Mode: 0o644, Body: "<!doctype html>\n<title>berth sample</title>\n<p>version v9</p>\n"},
		{Name: "css/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "css/site.css", Type: tar.TypeReg, Mode: 0o644, Body: "body { font-family: sans-serif; }\n"},
		{Name: "run.sh", Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\necho v9\n"},
		{Name: MarkerFile, Type: tar.TypeReg, Mode: 0o644, Body: pkg.SHA256 + "\n"},
	}, containerTar(t, s, pkg.SHA256))
}

func TestTarForContainerWarJar(t *testing.T) {
	s, _ := newStore(t)
	jar := makeZip(t, zipEnt{Name: "META-INF/MANIFEST.MF", Body: "Manifest-Version: 1.0\r\n\r\n"})
	pkg, err := put(t, s, "uploads/my service (1).jar", jar)
	require.NoError(t, err)
	require.Equal(t, "my service (1).jar", pkg.Name)
	require.Equal(t, []tarFile{
		{Name: "app.jar", Type: tar.TypeReg, Mode: 0o644, Body: string(jar)},
		{Name: MarkerFile, Type: tar.TypeReg, Mode: 0o644, Body: pkg.SHA256 + "\n"},
	}, containerTar(t, s, pkg.SHA256))

	for name, want := range map[string]string{
		"shop.war":                        "shop.war",
		"Shop-1.2_b.WAR":                  "Shop-1.2_b.WAR",
		"ROOT.war":                        "ROOT.war",
		"my app.war":                      "app.war",
		".war":                            "app.war",
		".hidden.war":                     "app.war",
		"ünicode.war":                     "app.war",
		"a;rm -rf ~.war":                  "app.war",
		"shop.war.jar.war":                "shop.war.jar.war",
		"shop.jar":                        "app.war", // kind war, but the name says jar
		strings.Repeat("a", 300) + ".war": "app.war",
	} {
		require.Equal(t, want, ContainerFileName(&Package{Name: name, Kind: KindWAR}), name)
	}
	require.Equal(t, "lib.jar", ContainerFileName(&Package{Name: "lib.jar", Kind: KindJAR}))
	require.Equal(t, "", ContainerFileName(&Package{Name: "site.zip", Kind: KindZip}))
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errors.New("connection reset")
	}
	return len(p), nil
}

func TestTarForContainerErrors(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	for _, bad := range []string{"", "..", "../sha256/x", strings.Repeat("z", 64)} {
		requireInvalid(t, s.TarForContainer(ctx, bad, &buf), "64 hex digits")
	}
	require.ErrorIs(t, s.TarForContainer(ctx, strings.Repeat("ab", 32), &buf), ErrNotFound)
	require.Zero(t, buf.Len())

	big := strings.Repeat("x", 100<<10)
	pkg, err := put(t, s, "a.tar.gz", tarGz(t, tarEnt{Name: "a", Body: big}, tarEnt{Name: "b", Body: big}))
	require.NoError(t, err)

	// A failing writer is not the package's fault.
	err = s.TarForContainer(ctx, pkg.SHA256, &failWriter{after: 150 << 10})
	require.ErrorContains(t, err, "writing tar stream: connection reset")
	require.False(t, errors.Is(err, ErrInvalid))

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.TarForContainer(canceled, pkg.SHA256, &buf), context.Canceled)

	// The stored archive is checked again, with the Store's current limits.
	s.MaxUnpacked = 150 << 10
	buf.Reset()
	requireInvalid(t, s.TarForContainer(ctx, pkg.SHA256, &buf), `"b"`, "limit of 153600 bytes")
}
