package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

// serverCert writes a CA and a certificate it signed for 127.0.0.1 into
// dir, and returns the pool that trusts the CA and the two file paths.
func serverCert(t testing.TB, dir string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test API CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "berth API"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, certFile, keyFile
}

// The API over HTTPS, served by berth itself (-tls-cert, -tls-key): a
// client that trusts the certificate's CA is served, tokens and sessions
// work, the session cookie is Secure, and plain HTTP, TLS below 1.2 and a
// client that does not trust the certificate get nothing.
func TestAPIOverHTTPS(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-https"
	hs.newEnv(t, "https")
	dev := hs.newPerson(t, "https-dev", tenant, berth.RoleDeveloper)

	pool, certFile, keyFile := serverCert(t, t.TempDir())
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	trusting := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base, _ := hs.startServer(t, "server-https", "https", trusting, "BERTH_TLS_CERT="+certFile, "BERTH_TLS_KEY="+keyFile)
	addr := strings.TrimPrefix(base, "https://")

	req, _ := http.NewRequest("GET", base+"/api/v1/hosts", nil)
	req.Header.Set("Authorization", "Bearer "+hs.token)
	resp, err := trusting.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "a token works over HTTPS")
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)

	req, _ = http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"name": {dev.name}, "password": {dev.password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err = trusting.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sign in over HTTPS")
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "berth_session" {
			session = c
		}
	}
	require.NotNil(t, session, "a session cookie")
	require.True(t, session.Secure, "the session cookie only travels over HTTPS")
	resp, err = trusting.Get(base + "/inbox")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), dev.name, "the session is the person's")

	resp, err = http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP on the HTTPS port is refused")
	old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	_, err = old.Get(base + "/healthz")
	require.Error(t, err, "TLS below 1.2 is refused")
	stranger := &http.Client{Timeout: 10 * time.Second}
	_, err = stranger.Get(base + "/healthz")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "a client that does not trust the certificate does not proceed")
}
