package codec

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

type secretInput struct {
	Image string            `json:"image"`
	Env   map[string]string `json:"env"`
}

func TestRoundTripHidesTheValue(t *testing.T) {
	c, err := New(key(1))
	require.NoError(t, err)
	dc := c.DataConverter()
	in := secretInput{Image: "web:1", Env: map[string]string{"DB_PASSWORD": "hunter2-very-secret"}}
	p, err := dc.ToPayload(in)
	require.NoError(t, err)
	require.Equal(t, encEncrypted, string(p.Metadata[metaEncoding]))
	require.NotContains(t, string(p.Data), "hunter2", "the value is sealed")
	require.NotContains(t, string(p.Data), "DB_PASSWORD", "so are the names")
	var out secretInput
	require.NoError(t, dc.FromPayload(p, &out))
	require.Equal(t, in, out)
}

func TestPlainPayloadsPassThrough(t *testing.T) {
	c, err := New(key(1))
	require.NoError(t, err)
	plain, err := converter.GetDefaultDataConverter().ToPayload(secretInput{Image: "old"})
	require.NoError(t, err)
	var out secretInput
	require.NoError(t, c.DataConverter().FromPayload(plain, &out), "a history written before encryption still reads")
	require.Equal(t, "old", out.Image)
}

func TestTamperedOrForeignPayloadsAreRefused(t *testing.T) {
	c, err := New(key(1))
	require.NoError(t, err)
	ps, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}})
	require.NoError(t, err)

	bad := &commonpb.Payload{Metadata: ps[0].Metadata, Data: append([]byte(nil), ps[0].Data...)}
	bad.Data[len(bad.Data)-1] ^= 1
	_, err = c.Decode([]*commonpb.Payload{bad})
	require.ErrorContains(t, err, "does not open")

	other, err := New(key(2))
	require.NoError(t, err)
	_, err = other.Decode(ps)
	require.ErrorContains(t, err, "does not hold")
}

func TestRotation(t *testing.T) {
	old, err := New(key(1))
	require.NoError(t, err)
	sealed, err := old.Encode([]*commonpb.Payload{{Data: []byte("a")}})
	require.NoError(t, err)
	rotated, err := New(key(2), key(1))
	require.NoError(t, err)
	got, err := rotated.Decode(sealed)
	require.NoError(t, err, "an old key still decrypts")
	require.Equal(t, []byte("a"), got[0].Data)
	fresh, err := rotated.Encode([]*commonpb.Payload{{Data: []byte("b")}})
	require.NoError(t, err)
	require.Equal(t, KeyID(key(2)), string(fresh[0].Metadata[metaKeyID]), "the first key encrypts")
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "payload.key")
	c1, err := EnsureFile(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	c2, err := EnsureFile(path)
	require.NoError(t, err, "a second start keeps the key")
	require.Equal(t, c1.current, c2.current)

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadFile(path)
	require.ErrorContains(t, err, "readable by others")

	short := filepath.Join(dir, "short.key")
	require.NoError(t, os.WriteFile(short, []byte(hex.EncodeToString(key(1)[:16])+"\n"), 0o600))
	_, err = LoadFile(short)
	require.ErrorContains(t, err, "64 hex digits")

	_, err = New(key(1)[:5])
	require.Error(t, err)
}

func TestStoredSecretsSealUnderTheirOwnKey(t *testing.T) {
	old, err := New(key(1))
	require.NoError(t, err)
	id, sealed, err := old.Seal([]byte("hunter2"), []byte("acme/prod/db/1"))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "hunter2")

	// The payload key itself does not open it: a leaked history key does
	// not open the secret store, and the other way round.
	raw, err := newAEAD(key(1))
	require.NoError(t, err)
	_, err = raw.Open(nil, sealed[:raw.NonceSize()], sealed[raw.NonceSize():], []byte("acme/prod/db/1"))
	require.Error(t, err)

	rotated, err := New(key(2), key(1))
	require.NoError(t, err)
	plain, err := rotated.Open(id, sealed, []byte("acme/prod/db/1"))
	require.NoError(t, err, "a rotated key file still opens older secrets")
	require.Equal(t, "hunter2", string(plain))

	_, err = rotated.Open(id, sealed, []byte("globex/prod/db/1"))
	require.Error(t, err, "a value moved to another tenant's row does not open")
	other, err := New(key(3))
	require.NoError(t, err)
	_, err = other.Open(id, sealed, []byte("acme/prod/db/1"))
	require.ErrorContains(t, err, "does not hold")
}
