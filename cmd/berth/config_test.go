package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(value+"\n"), 0o600))
	return p
}

// Secrets come from files so that they never show in the process list.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	tok := strings.Repeat("t", 40)
	c, err := loadConfig("server", []string{
		"-data", dir,
		"-token-file", writeSecret(t, dir, "token", tok),
		"-db-driver", "mysql", "-db-dsn-file", writeSecret(t, dir, "dsn", "berth:pw@tcp(db:3306)/berth"),
		"-cmdb", "http", "-cmdb-url", "http://cmdb", "-cmdb-token-file", writeSecret(t, dir, "cmdb", "c-token"),
		"-registry", "127.0.0.1:5000", "-registry-auth-file", writeSecret(t, dir, "registry", "berth:r-pass\n"),
	})
	require.NoError(t, err)
	require.Equal(t, "berth:r-pass", c.RegistryAuth)
	_, err = loadConfig("worker", []string{"-data", dir, "-registry-auth-file", writeSecret(t, dir, "registry-bad", "no-colon")})
	require.ErrorContains(t, err, "registry-auth must be user:password")
	require.Equal(t, tok, c.Token)
	require.Equal(t, "berth:pw@tcp(db:3306)/berth", c.DBDSN)
	require.Equal(t, "c-token", c.CMDBToken)
	require.Equal(t, filepath.Join(dir, "payload.key"), c.PayloadKeyFile)

	_, err = loadConfig("server", []string{"-token", tok, "-token-file", writeSecret(t, dir, "t2", tok)})
	require.ErrorContains(t, err, "not both")
	_, err = loadConfig("server", []string{"-token-file", writeSecret(t, dir, "empty", "")})
	require.ErrorContains(t, err, "is empty")
	_, err = loadConfig("server", []string{"-token-file", filepath.Join(dir, "missing")})
	require.ErrorContains(t, err, "token-file")
}

func TestShortTokensAreRefused(t *testing.T) {
	_, err := loadConfig("server", []string{"-token", "short-token"})
	require.ErrorContains(t, err, "at least 32")
	t.Setenv("BERTH_API_TOKEN", strings.Repeat("x", 31))
	_, err = loadConfig("server", nil)
	require.ErrorContains(t, err, "at least 32")
}

// The data folder and the SQLite database are berth's user's alone.
func TestPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	db := filepath.Join(dir, "berth.db")
	require.NoError(t, os.WriteFile(db, nil, 0o644))
	require.NoError(t, privateFiles(dir, db))
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(db)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	fresh := filepath.Join(t.TempDir(), "new")
	require.NoError(t, privateFiles(fresh, filepath.Join(fresh, "berth.db")))
	st, err = os.Stat(filepath.Join(fresh, "berth.db"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestProxySettings(t *testing.T) {
	c, err := loadConfig("server", []string{"-trusted-proxies", "10.0.0.1, 192.168.0.0/16", "-public-url", "https://berth.example.com/"})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1", "192.168.0.0/16"}, c.TrustedProxies)
	require.Equal(t, "https://berth.example.com", c.PublicURL)

	for _, bad := range [][]string{
		{"-trusted-proxies", "proxy.example.com"},
		{"-public-url", "berth.example.com"},
		{"-public-url", "https://berth.example.com/ui"},
		{"-public-url", "ftp://berth.example.com"},
		{"-tls-cert", "cert.pem"},
	} {
		_, err := loadConfig("server", bad)
		require.Error(t, err, "%v", bad)
	}
}

// The three flags of an existing HAProxy go together; the reload command
// is split into argv, never handed to a shell.
func TestExistingHAProxyFlags(t *testing.T) {
	c, err := loadConfig("worker", []string{"-haproxy-config", "/etc/haproxy/conf.d/berth.cfg",
		"-haproxy-socket", "/run/haproxy/admin.sock", "-haproxy-reload", "/usr/bin/systemctl reload haproxy"})
	require.NoError(t, err)
	require.NotNil(t, c.HAProxyExisting)
	require.Equal(t, []string{"/usr/bin/systemctl", "reload", "haproxy"}, c.HAProxyExisting.Reload)

	for _, partial := range [][]string{
		{"-haproxy-config", "/etc/haproxy/conf.d/berth.cfg"},
		{"-haproxy-socket", "/run/haproxy/admin.sock", "-haproxy-reload", "systemctl reload haproxy"},
	} {
		_, err := loadConfig("worker", partial)
		require.ErrorContains(t, err, "all of -haproxy-config, -haproxy-socket and -haproxy-reload", "%v", partial)
	}
}

func TestRegistryMirrorFlag(t *testing.T) {
	c, err := loadConfig("worker", []string{"-registry", "registry.example:5000", "-registry-mirror", "10.2.0.5:5000"})
	require.NoError(t, err)
	require.Equal(t, "10.2.0.5:5000", c.RegistryMirror)
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"-registry-mirror", "10.2.0.5:5000"}, "-registry, which is not set"},
		{[]string{"-registry", "r:5000", "-registry-mirror", "http://10.2.0.5:5000"}, "must be host:port"},
		{[]string{"-registry", "r:5000", "-registry-mirror", "10.2.0.5"}, "must be host:port"},
		{[]string{"-registry", "r:5000", "-registry-mirror", "10.2.0.5:5000/x"}, "must be host:port"},
		{[]string{"-registry", "r:5000", "-registry-mirror", "r:5000"}, "the registry itself"},
	} {
		_, err := loadConfig("worker", bad.args)
		require.ErrorContains(t, err, bad.says, "%v", bad.args)
	}
}
