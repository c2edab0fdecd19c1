package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Client talks to one registry. Zero values of HTTP use a client with a
// 30-second timeout.
type Client struct {
	base           string
	user, password string
	http           *http.Client
}

// New returns a client for the registry at addr (host:port, or a URL with
// its scheme). Without a scheme, a loopback registry is spoken to over plain
// HTTP, as Docker engines do, and any other over HTTPS.
func New(addr, user, password string) *Client {
	base := strings.TrimSuffix(addr, "/")
	if !strings.Contains(base, "://") {
		scheme := "https"
		host := base
		if h, _, err := net.SplitHostPort(base); err == nil {
			host = h
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			scheme = "http"
		}
		base = scheme + "://" + base
	}
	return &Client{base: base, user: user, password: password, http: &http.Client{Timeout: 30 * time.Second}}
}

// ErrNotFound: the repository or manifest does not exist.
var ErrNotFound = errors.New("not found in the registry")

// Manifest is what the registry holds for one reference.
type Manifest struct {
	Digest    string
	MediaType string
	// SizeBytes is the compressed size of the image: its config and layers
	// (for a multi-platform index, the sum over its manifests' entries).
	SizeBytes int64
}

var (
	repoRE   = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// CheckRepository says whether name is a repository name (namespace/name…).
func CheckRepository(name string) error {
	if len(name) > 255 || !repoRE.MatchString(name) {
		return fmt.Errorf("repository %q is not a valid name (lower-case path components of letters, digits and separators)", name)
	}
	return nil
}

// CheckTag says whether tag is a valid tag.
func CheckTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("tag %q is not valid (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')", tag)
	}
	return nil
}

// maxRepositories bounds one catalogue read, so that a registry with a
// runaway number of repositories cannot make it endless.
const maxRepositories = 10000

// Repositories lists the repositories under the given namespaces
// ("acme" lists acme/…), sorted as the registry returns them.
func (c *Client) Repositories(ctx context.Context, namespaces []string) ([]string, error) {
	var out []string
	last := ""
	for seen := 0; seen < maxRepositories; {
		q := url.Values{"n": {"1000"}}
		if last != "" {
			q.Set("last", last)
		}
		var page struct {
			Repositories []string `json:"repositories"`
		}
		if _, err := c.getJSON(ctx, "/v2/_catalog?"+q.Encode(), "", &page); err != nil {
			return nil, err
		}
		for _, r := range page.Repositories {
			ns, _, nested := strings.Cut(r, "/")
			for _, want := range namespaces {
				if nested && ns == want {
					out = append(out, r)
					break
				}
			}
		}
		seen += len(page.Repositories)
		if len(page.Repositories) < 1000 {
			return out, nil
		}
		last = page.Repositories[len(page.Repositories)-1]
	}
	return out, nil
}

// Tags lists a repository's tags; a repository the registry does not know
// has none.
func (c *Client) Tags(ctx context.Context, repo string) ([]string, error) {
	if err := CheckRepository(repo); err != nil {
		return nil, err
	}
	var body struct {
		Tags []string `json:"tags"`
	}
	if _, err := c.getJSON(ctx, "/v2/"+repo+"/tags/list", "", &body); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return body.Tags, nil
}

// manifestTypes are the manifest kinds the catalogue reads.
var manifestTypes = strings.Join([]string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.index.v1+json",
}, ", ")

// Manifest reads the manifest a tag or digest names: its digest, kind and size.
func (c *Client) Manifest(ctx context.Context, repo, ref string) (*Manifest, error) {
	if err := CheckRepository(repo); err != nil {
		return nil, err
	}
	if CheckTag(ref) != nil && !digestRE.MatchString(ref) {
		return nil, fmt.Errorf("%q is neither a tag nor a sha256 digest", ref)
	}
	var body struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			Size int64 `json:"size"`
		} `json:"config"`
		Layers []struct {
			Size int64 `json:"size"`
		} `json:"layers"`
		Manifests []struct {
			Size int64 `json:"size"`
		} `json:"manifests"`
	}
	h, err := c.getJSON(ctx, "/v2/"+repo+"/manifests/"+ref, manifestTypes, &body)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Digest: h.Get("Docker-Content-Digest"), MediaType: body.MediaType, SizeBytes: body.Config.Size}
	if m.MediaType == "" {
		m.MediaType = h.Get("Content-Type")
	}
	for _, l := range body.Layers {
		m.SizeBytes += l.Size
	}
	for _, e := range body.Manifests {
		m.SizeBytes += e.Size
	}
	if !digestRE.MatchString(m.Digest) {
		return nil, fmt.Errorf("the registry gave no digest for %s:%s", repo, ref)
	}
	return m, nil
}

// Delete removes a manifest by digest, and with it every tag of the
// repository that points to it. A manifest already gone is no error.
func (c *Client) Delete(ctx context.Context, repo, digest string) error {
	if err := CheckRepository(repo); err != nil {
		return err
	}
	if !digestRE.MatchString(digest) {
		return fmt.Errorf("%q is not a sha256 digest", digest)
	}
	resp, err := c.do(ctx, http.MethodDelete, "/v2/"+repo+"/manifests/"+digest, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound:
		return nil
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return errors.New("the registry does not allow deletes (storage.delete.enabled is off)")
	default:
		return statusError(resp)
	}
}

// maxBody bounds what the catalogue reads of one answer.
const maxBody = 8 << 20

func (c *Client) getJSON(ctx context.Context, path, accept string, out any) (http.Header, error) {
	resp, err := c.do(ctx, http.MethodGet, path, accept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return nil, fmt.Errorf("registry answer to %s: %w", path, err)
	}
	return resp.Header, nil
}

func (c *Client) do(ctx context.Context, method, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	return c.http.Do(req)
}

// StatusError is an answer the registry gave that the client does not expect.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	if e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden {
		return fmt.Sprintf("the registry refused berth's credentials (HTTP %d)", e.Code)
	}
	return fmt.Sprintf("registry: HTTP %d: %s", e.Code, e.Message)
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(b))}
}
