package berth

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxInstanceName is the longest instance name berth gives. The name is also
// a HAProxy server name (at most 100 characters) and the start of a
// firewall opening's id (name/port-proto, at most 120 bytes in nftables), so
// a longer one would fail a run half-way instead of the request up front.
const MaxInstanceName = 100

// maxOrdinalDigits is room for a service's instance numbers.
const maxOrdinalDigits = 6

// CheckInstanceNames refuses an application whose instance names
// (tenant-env-app-service-N) would be longer than MaxInstanceName, naming the
// first service at fault.
func CheckInstanceNames(tenant, env, app string, services []string) error {
	for _, svc := range services {
		pattern := fmt.Sprintf("%s-%s-%s-%s-N", tenant, env, app, svc)
		if n := len(pattern) - 1 + maxOrdinalDigits; n > MaxInstanceName {
			return Errorf(EInvalid, "service %q: its instance names (%s) would be up to %d characters, more than the %d that load balancers and firewalls take; shorten the application or service name by %d",
				svc, pattern, n, MaxInstanceName, n-MaxInstanceName)
		}
	}
	return nil
}

// MaxHealthPath is the longest HTTP health-check path.
const MaxHealthPath = 200

// CheckHealthPath is the one rule for HTTP health-check paths: the compose
// file, the health wait and the load balancer's check all take the same
// ones, so a path that passes validation never fails a run later. It allows
// only characters that need no quoting in HAProxy's configuration.
func CheckHealthPath(p string) error {
	if p == "" {
		return nil
	}
	if p[0] != '/' || len(p) > MaxHealthPath {
		return Errorf(EInvalid, "health path %q must start with / and be at most %d characters", p, MaxHealthPath)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._~%-?=&+", c) >= 0) {
			return Errorf(EInvalid, "health path %q may contain only [a-zA-Z0-9/._~%%?=&+-]", p)
		}
	}
	return nil
}

// PublicNamespace is the namespace of the platform registry whose images
// every tenant may run (curated base images).
const PublicNamespace = "public"

// CheckImageNamespace keeps a tenant to its own images of the platform
// registry: registry/<tenant>/… and registry/public/…. Images of other
// registries are outside this rule (no other registry is reachable from
// berth's hosts unless an operator makes it so).
func CheckImageNamespace(registry, tenant, image string) error {
	if registry == "" {
		return nil
	}
	rest, ok := strings.CutPrefix(strings.ToLower(image), strings.ToLower(registry)+"/")
	if !ok {
		return nil
	}
	ns, _, nested := strings.Cut(rest, "/")
	if nested && (ns == strings.ToLower(tenant) || ns == PublicNamespace) {
		return nil
	}
	return Errorf(EForbidden, "image %s is outside your namespaces of the platform registry: use %s/%s/… or %s/%s/…",
		image, registry, tenant, registry, PublicNamespace)
}

// AppScoped is the engine-side name of an application's network or volume:
// tenant.env.app.name. Tenant, environment and application names allow only
// [a-z0-9-] and compose network and volume keys only [a-z0-9_-], so the dot
// separates the parts unambiguously: no two applications share a name the
// way "a-b"+"c" and "a"+"b-c" did when "-" joined them.
func AppScoped(tenant, env, app, name string) string {
	return tenant + "." + env + "." + app + "." + name
}

// AppKey identifies an application on an engine (label berth.appkey): its
// networks and volumes carry it, so that they are found without parsing names.
func AppKey(tenant, env, app string) string {
	return tenant + "." + env + "." + app
}

// secretNameRE is what a stored secret may be called: it becomes a file name
// under /run/secrets and a path segment of the API.
var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckSecretName says whether a secret name is allowed.
func CheckSecretName(name string) error {
	if !secretNameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("secret name %q must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}
