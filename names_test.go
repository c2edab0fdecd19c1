package berth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckInstanceNames(t *testing.T) {
	require.NoError(t, CheckInstanceNames("acme", "prod", "shop", []string{"web", "api"}))
	long := strings.Repeat("s", 63)
	err := CheckInstanceNames("acme", "prod", strings.Repeat("a", 40), []string{"web", long})
	require.Error(t, err)
	require.Equal(t, EInvalid, ErrorCode(err))
	require.Contains(t, err.Error(), `service "`+long+`"`)
	require.Contains(t, err.Error(), "shorten the application or service name by")
	// The longest name allowed still fits a HAProxy server name and an
	// nftables opening id (name/65535-tcp in 120 bytes).
	svc := strings.Repeat("s", MaxInstanceName-len("acme-prod-shop--")-maxOrdinalDigits)
	require.NoError(t, CheckInstanceNames("acme", "prod", "shop", []string{svc}))
	require.Error(t, CheckInstanceNames("acme", "prod", "shop", []string{svc + "s"}))
	require.LessOrEqual(t, len("acme-prod-shop-"+svc+"-999999/65535-tcp"), 120)
}

func TestCheckHealthPath(t *testing.T) {
	for _, ok := range []string{"", "/", "/healthz", "/status?full=1&x=%20", "/a.b_c~d-e+f"} {
		require.NoError(t, CheckHealthPath(ok), ok)
	}
	for _, bad := range []string{"healthz", "/health#x", "/a b", "/a\"b", "/a\nb", "/" + strings.Repeat("x", MaxHealthPath)} {
		require.Error(t, CheckHealthPath(bad), bad)
	}
}

func TestCheckImageNamespace(t *testing.T) {
	const reg = "registry.local:5000"
	for _, ok := range []string{"registry.local:5000/acme/web:1", "registry.local:5000/acme/team/web:1", "registry.local:5000/public/nginx:1.27",
		"berth-sample:v1", "docker.io/library/nginx:1", "other.registry/other/web:1"} {
		require.NoError(t, CheckImageNamespace(reg, "acme", ok), ok)
	}
	for _, bad := range []string{"registry.local:5000/globex/web:1", "registry.local:5000/web:1", "REGISTRY.local:5000/globex/web:1",
		"registry.local:5000/acme-x/web:1"} {
		err := CheckImageNamespace(reg, "acme", bad)
		require.Error(t, err, bad)
		require.Equal(t, EForbidden, ErrorCode(err))
	}
	require.NoError(t, CheckImageNamespace("", "acme", "registry.local:5000/globex/web:1"), "no platform registry, no rule")
}
