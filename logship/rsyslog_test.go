package logship

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The collector configurations of deploy/rsyslog, rendered as an operator
// would, are accepted by the real rsyslogd (-N1 checks a configuration
// without starting): the tests' archive-only collector, the production
// one that forwards to Elasticsearch, and a host's shipper.
func TestRsyslogConfigsValidate(t *testing.T) {
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		if os.Getenv("BERTH_REQUIRE_E2E") != "" {
			t.Fatal("rsyslogd is missing: run deploy/local/deps.sh test")
		}
		t.Skip("rsyslogd is not installed")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "deploy", "rsyslog")
	dir := t.TempDir()
	repl := strings.NewReplacer("@ARCHIVE@", filepath.Join(dir, "archive"), "@WORKDIR@", dir, "@ES_SERVER@", "127.0.0.1:9200",
		"@PORT@", "5514", "@COLLECTOR@", "127.0.0.1")
	render := func(name string) string {
		b, err := os.ReadFile(filepath.Join(src, name))
		require.NoError(t, err)
		out := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(out, []byte(repl.Replace(string(b))), 0o600))
		return out
	}
	head := "global(workDirectory=\"" + dir + "\" maxMessageSize=\"64k\")\nmodule(load=\"imtcp\")\n"
	collector := "include(file=\"" + render("berth-rules.conf") + "\")\ninput(type=\"imtcp\" port=\"15514\" ruleset=\"berth\")\n"
	shipper := "include(file=\"" + render("berth-host-shipper.conf") + "\")\n" +
		"input(type=\"imfile\" File=\"" + dir + "/containers/*/*-json.log\" Tag=\"berth-json\" ruleset=\"berth_ship\" freshStartTail=\"on\")\n" +
		"input(type=\"imfile\" File=\"" + dir + "/volumes/*.logs/_data/*.log\" Tag=\"berth-file\" ruleset=\"berth_ship_file\" addMetadata=\"on\")\n"
	for name, body := range map[string]string{
		"collector-archive.conf":    head + "include(file=\"" + render("berth-forward-none.conf") + "\")\n" + collector,
		"collector-production.conf": head + "include(file=\"" + render("berth-forward-elasticsearch.conf") + "\")\n" + collector,
		"host-shipper.conf":         "global(workDirectory=\"" + dir + "\")\n" + shipper,
	} {
		conf := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(conf, []byte(body), 0o600))
		out, err := exec.Command("rsyslogd", "-N1", "-f", conf).CombinedOutput()
		require.NoError(t, err, "%s:\n%s", name, out)
		require.NotContains(t, string(out), "error", "%s:\n%s", name, out)
	}
}
