package server

import (
	"testing"

	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
)

func TestCloneComposeKeepsOneServiceAlone(t *testing.T) {
	raw := []byte(`services:
  web:
    image: web:1
    depends_on: [api]
    deploy: {replicas: 3, resources: {limits: {memory: 64M}}}
    ports: ["8080"]
    volumes: [data:/data]
  api:
    image: api:1
volumes:
  data: {}
`)
	out, err := cloneCompose(raw, "web", "web:2", 1)
	require.NoError(t, err)
	var doc map[string]map[string]any
	require.NoError(t, yaml.Unmarshal(out, &doc))
	require.Len(t, doc["services"], 1)
	web := doc["services"]["web"].(map[string]any)
	require.Equal(t, "web:2", web["image"])
	require.NotContains(t, web, "depends_on")
	dep := web["deploy"].(map[string]any)
	require.Equal(t, 1, dep["replicas"])
	require.Contains(t, dep, "resources", "the rest of the spec is kept")
	require.Contains(t, doc["volumes"], "data")

	_, err = cloneCompose(raw, "db", "db:1", 1)
	require.ErrorContains(t, err, "service db is not in")
	_, err = cloneCompose([]byte("services: ["), "web", "web:1", 1)
	require.ErrorContains(t, err, "no longer parses")
}
