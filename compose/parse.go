package compose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/berth-dev/berth"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// MaxBodyBytes bounds the compose file before any parsing happens, so that a
// hostile upload cannot make the YAML parser allocate without limit.
const MaxBodyBytes = 256 << 10

// composeFilename is only a label for error messages: nothing is read from it.
const composeFilename = "compose.yaml"

// nameRE is the rule for project and service names: they end up in container,
// network and volume names, which Docker restricts, and lowercase keeps them
// unambiguous in DNS.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Options are the operator's policy for what a compose file may ask for.
type Options struct {
	// AllowedBindRoots are absolute host directories whose direct child
	// folders bind mounts may use. Empty means no bind mount is accepted.
	// The server gives each environment roots of its own (ScopedTo).
	AllowedBindRoots []string
	// AllowedCaps are the capabilities cap_add may name (with or without the
	// CAP_ prefix, any case). Empty means cap_add is refused entirely.
	AllowedCaps []string
	// MaxReplicas bounds the replicas of one service; <= 0 means the default.
	MaxReplicas int
	// MaxServices bounds the number of services; <= 0 means the default.
	MaxServices int
}

const (
	defaultMaxReplicas = 100
	defaultMaxServices = 50
)

// DefaultOptions is a conservative policy: a handful of capabilities that
// ordinary images need to drop privileges or bind low ports, and no bind
// mounts at all.
func DefaultOptions() Options {
	return Options{
		AllowedCaps: []string{"NET_BIND_SERVICE", "CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER"},
		MaxReplicas: defaultMaxReplicas,
		MaxServices: defaultMaxServices,
	}
}

// ValidationError lists everything wrong with a compose file at once, so a
// user fixes their file in one round trip rather than one error per deploy.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return strings.Join(e.Problems, "; ")
}

// Unwrap gives the problems their domain code: the API answers 400
// invalid_compose, and an activity fails without retrying.
func (e *ValidationError) Unwrap() error {
	return &berth.Error{Code: berth.EInvalid, Reason: "invalid_compose", Message: e.Error()}
}

func invalid(problems ...string) *ValidationError {
	return &ValidationError{Problems: problems}
}

// Parse validates body against opts and returns the platform's view of it.
// Every refusal is a *ValidationError; other errors only come from ctx.
func Parse(ctx context.Context, project string, body []byte, opts Options) (*Spec, error) {
	// The size check comes first: it is the only defence that does not
	// itself depend on parsing attacker-controlled bytes.
	if len(body) > MaxBodyBytes {
		return nil, invalid(fmt.Sprintf("compose file is %d bytes; the limit is %d bytes (256 KiB)", len(body), MaxBodyBytes))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("compose file is empty")
	}
	if !nameRE.MatchString(project) {
		return nil, invalid(fmt.Sprintf("project name %q must match %s", project, nameRE))
	}
	if opts.MaxReplicas <= 0 {
		opts.MaxReplicas = defaultMaxReplicas
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = defaultMaxServices
	}

	lookup := emptyEnv(project)
	// compose-go expands aliases and port ranges before we get to see the
	// model, so those expansions are bounded on the raw YAML first.
	if problems, err := prescan(body, lookup); err != nil {
		return nil, invalid("compose file is not valid: " + oneLine(err.Error()))
	} else if len(problems) > 0 {
		return nil, invalid(problems...)
	}

	p, err := load(ctx, project, body, lookup)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var verr *ValidationError
		if errors.As(err, &verr) {
			return nil, verr
		}
		return nil, invalid("compose file is not valid: " + oneLine(err.Error()))
	}

	return build(project, p, opts)
}

// emptyEnv is the whole environment interpolation may see. The server's own
// environment holds its secrets, so `${HOME}` and friends must resolve as if
// unset; only the project name is provided, as docker compose does.
func emptyEnv(project string) template.Mapping {
	return func(key string) (string, bool) {
		if key == consts.ComposeProjectName {
			return project, true
		}
		return "", false
	}
}

// denyFiles sits first among compose-go's resource loaders. The Skip* options
// below already keep compose-go away from include and extends; this makes any
// code path we missed fail instead of reading a server file.
type denyFiles struct{}

func (denyFiles) Accept(string) bool { return true }
func (denyFiles) Load(_ context.Context, p string) (string, error) {
	return "", fmt.Errorf("%q: referencing other files is not allowed", p)
}
func (denyFiles) Dir(string) string { return "" }

func load(ctx context.Context, project string, body []byte, lookup template.Mapping) (p *types.Project, err error) {
	// compose-go is large and fed hostile input; a panic in it must come back
	// as a refusal, not take the worker down.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("compose parser failed: %v", r)
		}
	}()

	details := types.ConfigDetails{
		// A working dir that cannot exist: if a relative path were ever
		// resolved despite ResolvePaths=false it must not land in the
		// worker's current directory.
		WorkingDir:  "/nonexistent-berth-compose",
		ConfigFiles: []types.ConfigFile{{Filename: composeFilename, Content: body}},
		Environment: types.Mapping{},
	}
	optFns := []func(*loader.Options){
		func(o *loader.Options) {
			o.SetProjectName(project, true)
			// Paths stay as written so relative binds can be refused rather
			// than silently resolved against a directory of the server.
			o.ResolvePaths = false
			// include and extends are refused from the model afterwards;
			// processing them would read other files.
			o.SkipInclude = true
			o.SkipExtends = true
			// Resolving env_file and label_file reads files: they are
			// refused from the model instead.
			o.SkipResolveEnvironment = true
			o.SkipResolveLabels = true
			// compose-go stops at the first inconsistency; we check the same
			// things ourselves so that every problem is reported.
			o.SkipConsistencyCheck = true
			o.ResourceLoaders = []loader.ResourceLoader{denyFiles{}}
			// LookupValue defaults to the ConfigDetails environment, which is
			// already empty; setting it explicitly keeps it so if compose-go
			// ever changes that default. Logging is off because an unset
			// variable is normal here and the warning would go to the
			// server's log, not to the user.
			o.Interpolate.LookupValue = func(k string) (string, bool) { return lookup(k) }
			o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
				return template.SubstituteWithOptions(s, m, template.WithoutLogging)
			}
		},
	}

	// LoadModelWithContext + ModelToProject is what LoadWithContext does; it
	// is split so that `include`, which SkipInclude leaves in the model and
	// the typed project silently drops, can be refused.
	opts := loader.ToOptions(&details, optFns)
	model, err := loader.LoadModelWithContext(ctx, details, optFns...)
	if err != nil {
		return nil, err
	}
	if _, ok := model["include"]; ok {
		return nil, invalid("include is not allowed: it reads other files on the server; put all services in one file")
	}
	return loader.ModelToProject(model, opts, details)
}

func build(project string, p *types.Project, opts Options) (*Spec, error) {
	var probs problems

	if len(p.Services) == 0 {
		if len(p.DisabledServices) > 0 {
			return nil, invalid("compose file has no services to deploy: every service is behind a profile")
		}
		return nil, invalid("compose file defines no services")
	}
	if len(p.Services) > opts.MaxServices {
		return nil, invalid(fmt.Sprintf("compose file has %d services; the limit is %d", len(p.Services), opts.MaxServices))
	}

	checkProject(project, p, &probs)

	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)

	roots := cleanRoots(opts.AllowedBindRoots)
	caps := map[string]bool{}
	for _, c := range opts.AllowedCaps {
		caps[normalizeCap(c)] = true
	}

	specs := make(map[string]ServiceSpec, len(names))
	for _, name := range names {
		specs[name] = convertService(p, p.Services[name], opts, roots, caps, &probs)
	}

	ordered, cycle := dependencyOrder(specs)
	if cycle != nil {
		probs.add("dependency cycle: %s", strings.Join(cycle, " -> "))
	}
	if len(probs) > 0 {
		return nil, invalid(probs...)
	}

	hash, err := hashServices(ordered)
	if err != nil {
		return nil, err
	}
	return &Spec{Project: project, Services: ordered, Hash: hash}, nil
}

func hashServices(services []ServiceSpec) (string, error) {
	// encoding/json sorts map keys, and every slice is already in a
	// deterministic order, so equal specs marshal to equal bytes.
	b, err := json.Marshal(services)
	if err != nil {
		return "", fmt.Errorf("hashing services: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// checkProject covers the top-level sections: they are shared by services, so
// their problems are reported once rather than per service.
func checkProject(project string, p *types.Project, probs *problems) {
	if len(p.Jobs) > 0 {
		probs.add("jobs are not supported")
	}
	for _, name := range sortedKeys(p.Volumes) {
		v := p.Volumes[name]
		switch {
		case bool(v.External):
			probs.add("volume %q: external volumes are not allowed; volumes are created and scoped per app", name)
		case v.Driver != "" && v.Driver != "local":
			probs.add("volume %q: driver %q is not allowed", name, v.Driver)
		case len(v.DriverOpts) > 0 && (len(v.DriverOpts) > 1 || v.DriverOpts["size"] == ""):
			// Other driver_opts on the local driver can bind any host path
			// (type: none, o: bind, device: /etc), bypassing the bind checks.
			probs.add("volume %q: driver_opts other than size are not allowed", name)
		case v.DriverOpts["size"] != "":
			if _, err := VolumeSize(v); err != nil {
				probs.add("volume %q: %v", name, err)
			}
		case v.Name != "" && v.Name != project+"_"+name:
			// A custom name could address another app's volume.
			probs.add("volume %q: a custom name (%q) is not allowed; volumes are named per app", name, v.Name)
		}
	}
	for _, name := range sortedKeys(p.Volumes) {
		if !nameRE.MatchString(name) {
			probs.add("volume %q: the name must match %s", name, nameRE)
		}
	}
	for _, name := range sortedKeys(p.Networks) {
		n := p.Networks[name]
		switch {
		case !nameRE.MatchString(name):
			probs.add("network %q: the name must match %s", name, nameRE)
		case bool(n.External):
			probs.add("network %q: external networks are not allowed; each application gets its own networks, and other applications are reached through the load balancer", name)
		case n.Driver != "" && n.Driver != "bridge":
			probs.add("network %q: driver %q is not allowed; the platform makes bridge networks per host and connects hosts itself", name, n.Driver)
		case len(n.DriverOpts) > 0:
			probs.add("network %q: driver_opts are not allowed", name)
		case n.Ipam.Driver != "" || len(n.Ipam.Config) > 0:
			probs.add("network %q: ipam is not allowed; the platform assigns subnets so that applications never overlap", name)
		case n.EnableIPv6 != nil && *n.EnableIPv6:
			probs.add("network %q: enable_ipv6 is not supported", name)
		case n.Name != "" && n.Name != project+"_"+name:
			probs.add("network %q: a custom name (%q) is not allowed; networks are named per application", name, n.Name)
		}
	}
	for _, name := range sortedKeys(p.Secrets) {
		sec := p.Secrets[name]
		if sec.File != "" || sec.Environment != "" || sec.Content != "" {
			probs.add("secret %q: file, environment and content sources are not allowed (they would read the server's disk or put the value in the compose file); "+
				"store the value once with POST /api/v1/tenants/{tenant}/secrets {\"name\": %q, \"value\": \"...\"} and declare the secret here as `external: true`", name, name)
		}
	}
	for _, name := range sortedKeys(p.Configs) {
		checkFileObject("config", name, types.FileObjectConfig(p.Configs[name]), probs)
	}
}

func checkFileObject(kind, name string, o types.FileObjectConfig, probs *problems) {
	if o.File != "" {
		probs.add("%s %q: file sources are not allowed (they read files on the server)", kind, name)
	}
	if o.Environment != "" {
		probs.add("%s %q: environment sources are not allowed (they read the server's environment)", kind, name)
	}
}

// problems collects refusals so that all of them are reported together.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// svc prefixes a problem with the service it belongs to, so that a user with
// many services knows where to look.
func (p *problems) svc(name, format string, args ...any) {
	p.add("service %q: %s", name, fmt.Sprintf(format, args...))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ScopedTo gives the options of one tenant's environment: each bind root
// becomes its own folder in it, <root>/<tenant>/<environment>, so that no
// two environments, and no two tenants, ever mount the same host folder.
func (o Options) ScopedTo(tenant, env string) Options {
	roots := make([]string, 0, len(o.AllowedBindRoots))
	for _, r := range cleanRoots(o.AllowedBindRoots) {
		roots = append(roots, filepath.Join(r, tenant, env))
	}
	o.AllowedBindRoots = roots
	return o
}

func cleanRoots(roots []string) []string {
	var out []string
	for _, r := range roots {
		// A relative root would depend on the worker's current directory,
		// so it cannot be meant; it is dropped rather than trusted.
		if r == "" || !filepath.IsAbs(r) {
			continue
		}
		out = append(out, filepath.Clean(r))
	}
	return out
}

func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// Service returns the named service, or nil. It points into s.Services.
func (s *Spec) Service(name string) *ServiceSpec {
	if s == nil {
		return nil
	}
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}
