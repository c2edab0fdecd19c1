package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type openapiFile struct {
	OpenAPI    string                    `yaml:"openapi"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		SecuritySchemes map[string]any `yaml:"securitySchemes"`
		Schemas         map[string]any `yaml:"schemas"`
	} `yaml:"components"`
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIComplete walks the routes Gin has registered: every /api/v1
// route must be in openapi.yaml, and every documented operation must exist,
// so the document neither misses nor invents a route.
func TestOpenAPIComplete(t *testing.T) {
	var doc openapiFile
	require.NoError(t, yaml.Unmarshal(openapiDoc, &doc), "openapi.yaml is valid YAML")
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")
	require.Contains(t, doc.Components.SecuritySchemes, "bearer")
	require.Contains(t, doc.Components.SecuritySchemes, "session")
	require.Contains(t, doc.Components.Schemas, "Error")

	engine := New(Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler().(*gin.Engine)
	registered := map[string]bool{}
	for _, r := range engine.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		path := ginParam.ReplaceAllString(r.Path, "{$1}")
		op := strings.ToLower(r.Method) + " " + path
		registered[op] = true
		ops, ok := doc.Paths[path]
		require.True(t, ok, "route %s %s is not in server/openapi.yaml", r.Method, r.Path)
		_, ok = ops[strings.ToLower(r.Method)]
		require.True(t, ok, "route %s %s has no %s operation in server/openapi.yaml", r.Method, r.Path, r.Method)
	}
	require.Greater(t, len(registered), 40)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			require.True(t, registered[method+" "+path], "openapi.yaml documents %s %s, which is not a route", method, path)
			op, ok := op.(map[string]any)
			require.True(t, ok, "%s %s is an operation", method, path)
			require.Contains(t, op, "responses", "%s %s has responses", method, path)
			if method != "get" && method != "delete" {
				if _, hasBody := op["requestBody"]; !hasBody {
					// Only routes that take no body may leave it out.
					require.Contains(t, []string{"post /api/v1/hosts/{host}/check", "post /api/v1/cmdb/sync", "post /api/v1/runs/{id}/cancel", "post /api/v1/runs/{id}/retry"},
						method+" "+path, "%s %s documents its request body", method, path)
				}
			}
		}
	}
}

// TestOpenAPIServed: the document is served without signing in.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(New(Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "yaml")
	require.Equal(t, openapiDoc, body)
}
