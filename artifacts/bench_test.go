package artifacts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchTarGz is a tar.gz of files of 1 MiB read from content, about size
// bytes compressed.
func benchTarGz(b *testing.B, size int, content io.Reader) []byte {
	b.Helper()
	var buf bytes.Buffer
	buf.Grow(size + size/50)
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	require.NoError(b, err)
	tw := tar.NewWriter(zw)
	for i := 0; buf.Len() < size; i++ {
		require.NoError(b, tw.WriteHeader(&tar.Header{
			Name: fmt.Sprintf("data/part-%03d.bin", i), Mode: 0o644, Size: 1 << 20, ModTime: fixtureTime,
		}))
		_, err := io.CopyN(tw, content, 1<<20)
		require.NoError(b, err)
		require.NoError(b, zw.Flush())
	}
	require.NoError(b, tw.Close())
	require.NoError(b, zw.Close())
	return buf.Bytes()
}

// hexText reads as random lower-case hex digits: text that gzip compresses
// to a little over half.
type hexText struct{ rng *rand.ChaCha8 }

func (h hexText) Read(p []byte) (int, error) {
	_, _ = h.rng.Read(p)
	for i, c := range p {
		p[i] = "0123456789abcdef"[c&15]
	}
	return len(p), nil
}

// BenchmarkPut measures Put of a 50 MiB tar.gz (receive, hash, validate by
// decompressing and checking every entry, publish), of incompressible data
// and of text that unpacks to about 90 MiB. MB/s are of the uploaded bytes.
func BenchmarkPut(b *testing.B) {
	seed := [32]byte{'b', 'e', 'r', 't', 'h'}
	for _, c := range []struct {
		name    string
		content io.Reader
	}{
		{"incompressible", rand.NewChaCha8(seed)},
		{"text", hexText{rand.NewChaCha8(seed)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := benchTarGz(b, 50<<20, c.content)
			s, err := New(filepath.Join(b.TempDir(), "root"))
			require.NoError(b, err)
			ctx := context.Background()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				pkg, err := s.Put(ctx, "bench.tar.gz", bytes.NewReader(data), "")
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				require.NoError(b, os.Remove(s.blobPath(pkg.SHA256)))
				require.NoError(b, os.Remove(s.sidecarPath(pkg.SHA256)))
				b.StartTimer()
			}
		})
	}
}
