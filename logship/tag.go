package logship

import (
	"strings"
)

// Fields are the tags of one source of lines.
type Fields struct {
	Tenant, Env, App, Service, Instance, Host, Release string
	// Component names one of berth's own processes (server, worker).
	Component string
}

// tagValue keeps a value to the characters a syslog tag and rsyslog's
// rules can carry: no spaces, colons, brackets, commas or equals signs.
func tagValue(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '/', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() > 128 {
		return b.String()[:128]
	}
	return b.String()
}

// Tag is the syslog tag of the fields, in a fixed order, leaving out the
// empty ones.
func (f Fields) Tag() string {
	parts := []string{"berth"}
	for _, kv := range [][2]string{{"tenant", f.Tenant}, {"env", f.Env}, {"app", f.App}, {"service", f.Service},
		{"instance", f.Instance}, {"host", f.Host}, {"release", f.Release}, {"component", f.Component}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+tagValue(kv[1]))
		}
	}
	return strings.Join(parts, ",")
}

// ParseTag reads the fields back from a tag (with or without the engine's
// "[pid]" suffix); ok is false for a tag that is not berth's.
func ParseTag(tag string) (map[string]string, bool) {
	if i := strings.IndexByte(tag, '['); i >= 0 {
		tag = tag[:i]
	}
	parts := strings.Split(tag, ",")
	if len(parts) == 0 || parts[0] != "berth" {
		return nil, false
	}
	out := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		if k, v, ok := strings.Cut(p, "="); ok {
			out[k] = v
		}
	}
	return out, true
}

// Release is the release an image reference stands for in a tag: its tag
// (or digest), since the repository is the service's anyway.
func Release(image string) string {
	ref := image
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		d := ref[i+1:]
		if j := strings.IndexByte(d, ':'); j >= 0 && len(d) > j+13 {
			return d[:j+13]
		}
		return d
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[i+1:]
	}
	return "latest"
}
