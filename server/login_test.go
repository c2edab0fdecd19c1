package server

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// After sign-in the browser goes only to a path of this site.
func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/runs/12":              "/runs/12",
		"/services/3?tab=pool":  "/services/3?tab=pool",
		"":                      "/inbox",
		"https://evil.com":      "/inbox",
		"//evil.com":            "/inbox",
		"\t/evil.com":           "/inbox", // /login?next=%09/evil.com
		"/\t/evil.com":          "/inbox", // browsers drop the tab: //evil.com
		"/\n/evil.com":          "/inbox",
		"/\\evil.com":           "/inbox", // a backslash reads as a slash
		"/ /evil.com":           "/inbox",
		"/\u00a0/evil.com":      "/inbox",
		"/\x7f/evil.com":        "/inbox",
		"javascript:alert(1)":   "/inbox",
		"/%2F%2Fevil.com":       "/%2F%2Fevil.com", // a path on this site
		"/runs?next=//evil.com": "/runs?next=//evil.com",
	} {
		require.Equal(t, want, safeNext(next), "%q", next)
	}
}
