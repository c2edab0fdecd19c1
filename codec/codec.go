package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload. The encoding name is the one Temporal's
// samples and UI know as encrypted; the key id says which key sealed it.
const (
	metaEncoding = "encoding"
	metaKeyID    = "encryption-key-id"
	encEncrypted = "binary/encrypted"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// AESGCM is a PayloadCodec that seals each payload, metadata and all, with
// AES-256-GCM under a random nonce.
type AESGCM struct {
	current string
	keys    map[string]cipher.AEAD
	derive  []byte
	// secret are the keys that seal stored secrets, one per payload key and
	// derived from it, so that a stored secret is never sealed with the
	// very key that seals histories.
	secret map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*AESGCM)(nil)

// New returns a codec for the given keys: the first encrypts, all decrypt.
func New(keys ...[]byte) (*AESGCM, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no key")
	}
	c := &AESGCM{keys: map[string]cipher.AEAD{}, secret: map[string]cipher.AEAD{}}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("codec: key %d is %d bytes; it must be %d", i+1, len(k), KeySize)
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		id := KeyID(k)
		m := hmac.New(sha256.New, k)
		m.Write([]byte("berth stored secrets"))
		if c.secret[id], err = newAEAD(m.Sum(nil)); err != nil {
			return nil, err
		}
		if i == 0 {
			c.current = id
			m := hmac.New(sha256.New, k)
			m.Write([]byte("berth derived keys"))
			c.derive = m.Sum(nil)
		}
		c.keys[id] = aead
	}
	return c, nil
}

func newAEAD(k []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a stored secret's value under the current key. The aad binds
// the sealed value to what it is (tenant, environment, name, version), so a
// value copied into another row of the database does not open there.
func (c *AESGCM) Seal(plain, aad []byte) (keyID string, sealed []byte, err error) {
	aead := c.secret[c.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("codec: %w", err)
	}
	return c.current, aead.Seal(nonce, nonce, plain, aad), nil
}

// Open decrypts what Seal sealed, with the key it names.
func (c *AESGCM) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := c.secret[keyID]
	if !ok {
		return nil, fmt.Errorf("codec: secret was sealed with key %q, which this process does not hold", keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("codec: sealed secret is too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("codec: secret does not open with key %q: %w", keyID, err)
	}
	return plain, nil
}

// Derived is a key for other uses (the mesh's tunnel keys), derived from the
// current payload key so that every process holding the key file has it and
// nothing has to store it. It is not the payload key itself.
func (c *AESGCM) Derived() []byte { return c.derive }

// KeyID names a key without revealing it: the first 8 bytes of its SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// Encode seals every payload with the current key.
func (c *AESGCM) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.keys[c.current]
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{metaEncoding: []byte(encEncrypted), metaKeyID: []byte(c.current)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode opens encrypted payloads and passes any other payload through, so
// histories written before encryption still read and replay.
func (c *AESGCM) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()[metaEncoding]) != encEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[metaKeyID])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload was sealed with key %q, which this process does not hold", id)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return nil, errors.New("codec: encrypted payload is too short")
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: payload does not open with key %q: %w", id, err)
		}
		var q commonpb.Payload
		if err := proto.Unmarshal(plain, &q); err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		out[i] = &q
	}
	return out, nil
}

// DataConverter is Temporal's default JSON converter with this codec under it.
func (c *AESGCM) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Handler serves Temporal's remote-codec protocol (POST …/encode and
// …/decode). The caller must put authorisation in front of it.
func (c *AESGCM) Handler() http.Handler { return converter.NewPayloadCodecHTTPHandler(c) }

// ParseKeys reads keys written as hex, one per line; blank lines and lines
// starting with # are skipped.
func ParseKeys(text string) ([][]byte, error) {
	var keys [][]byte
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := hex.DecodeString(line)
		if err != nil || len(k) != KeySize {
			return nil, fmt.Errorf("line %d: a key is %d bytes written as %d hex digits", n+1, KeySize, 2*KeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key in it")
	}
	return keys, nil
}

// LoadFile reads a key file. It refuses a file that others than its owner
// may read: the key protects every history berth writes.
func LoadFile(path string) (*AESGCM, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("payload key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("payload key file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("payload key file: %w", err)
	}
	keys, err := ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("payload key file %s: %w", path, err)
	}
	return New(keys...)
}

// EnsureFile creates a key file with one new random key (mode 0600) unless
// it exists, then loads it. The embedded default uses it so that `make run`
// encrypts from the first start.
func EnsureFile(path string) (*AESGCM, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
	case err != nil:
		return nil, fmt.Errorf("payload key file: %w", err)
	default:
		_, werr := fmt.Fprintf(f, "# berth payload key (AES-256). Keep it: histories sealed with it need it to be read.\n%s\n", hex.EncodeToString(k))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("payload key file: %w", werr)
		}
	}
	return LoadFile(path)
}
