package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

// TestOpenAPIShape: the document is OpenAPI 3 with its security schemes,
// and every operation says what it answers and, when it takes one, its
// body. Which routes it holds is TestRouteTable's.
func TestOpenAPIShape(t *testing.T) {
	var doc openapiFile
	require.NoError(t, yaml.Unmarshal(openapiDoc, &doc), "openapi.yaml is valid YAML")
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")
	require.Contains(t, doc.Components.SecuritySchemes, "bearer")
	require.Contains(t, doc.Components.SecuritySchemes, "session")
	require.Contains(t, doc.Components.Schemas, "Error")
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			op, ok := op.(map[string]any)
			require.True(t, ok, "%s %s is an operation", method, path)
			require.Contains(t, op, "responses", "%s %s has responses", method, path)
			if method != "get" && method != "delete" {
				if _, hasBody := op["requestBody"]; !hasBody {
					// Only routes that take no body may leave it out.
					require.Contains(t, []string{"post /api/v1/hosts/{host}/check", "post /api/v1/cmdb/sync", "post /api/v1/cmdb/resync", "post /api/v1/runs/{id}/cancel", "post /api/v1/runs/{id}/retry",
						"post /api/v1/users/{name}/disable", "post /api/v1/users/{name}/enable", "post /api/v1/reconcile",
						"post /api/v1/hosts/{host}/drain", "post /api/v1/hosts/{host}/undrain"},
						method+" "+path, "%s %s documents its request body", method, path)
				}
			}
		}
	}
}

// TestOpenAPIServed: the document is served without signing in.
func TestOpenAPIServed(t *testing.T) {
	srv := httptest.NewServer(testServer().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/openapi.yaml")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "yaml")
	require.Equal(t, openapiDoc, body)
}
