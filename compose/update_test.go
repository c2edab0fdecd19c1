package compose

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func parseFor(t *testing.T, text string) *Spec {
	t.Helper()
	spec, err := Parse(context.Background(), "shop", []byte(text), Options{})
	require.NoError(t, err)
	return spec
}

func TestDiffNamesEachServicesChange(t *testing.T) {
	running := parseFor(t, `
services:
  web:
    image: reg.local/acme/web:1
    environment: [MODE=a]
    deploy: {replicas: 4}
  api:
    image: reg.local/acme/api:1
  cache:
    image: reg.local/acme/cache:1
  db:
    image: reg.local/acme/db:1
    deploy: {replicas: 1}
`)
	next := parseFor(t, `
services:
  web:
    image: reg.local/acme/web:1
    environment: [MODE=b]
    deploy: {replicas: 4}
  api:
    image: reg.local/acme/api:2
  db:
    image: reg.local/acme/db:1
    deploy: {replicas: 2}
  worker:
    image: reg.local/acme/worker:1
    depends_on: [web]
`)
	byName := map[string]ServiceChange{}
	var order []string
	for _, c := range Diff(running, next) {
		byName[c.Service] = c
		order = append(order, c.Service)
	}
	require.Equal(t, ChangeSpec, byName["web"].Kind)
	require.Equal(t, []string{"env"}, byName["web"].Fields)
	require.Equal(t, 4, byName["web"].ToReplicas)
	require.Equal(t, ChangeImage, byName["api"].Kind)
	require.Equal(t, "reg.local/acme/api:2", byName["api"].ToImage)
	require.Equal(t, ChangeScale, byName["db"].Kind)
	require.Equal(t, [2]int{1, 2}, [2]int{byName["db"].FromReplicas, byName["db"].ToReplicas})
	require.Equal(t, ChangeAdd, byName["worker"].Kind)
	require.Equal(t, ChangeRemove, byName["cache"].Kind)
	// Added after what it depends on; removed last.
	require.Less(t, indexOf(order, "web"), indexOf(order, "worker"))
	require.Equal(t, "cache", order[len(order)-1])

	require.False(t, Diff(running, running)[0].Changed(), "the same file changes nothing")
}

func TestKeepLiveLeavesReleasesAndScalesAlone(t *testing.T) {
	file := parseFor(t, "services:\n  web:\n    image: reg.local/acme/web:1\n    deploy: {replicas: 2}\n")
	live := parseFor(t, "services:\n  web:\n    image: reg.local/acme/web:7\n    deploy: {replicas: 5}\n")
	// Only the environment changes in the new file: the released image and
	// the scaled count stay, and the plan is a spec change alone.
	next := parseFor(t, "services:\n  web:\n    image: reg.local/acme/web:1\n    environment: [A=1]\n    deploy: {replicas: 2}\n")
	KeepLive(file, live, next)
	require.Equal(t, "reg.local/acme/web:7", next.Services[0].Image)
	require.Equal(t, 5, next.Services[0].Replicas)
	d := Diff(live, next)
	require.Equal(t, ChangeSpec, d[0].Kind)
	require.Equal(t, []string{"env"}, d[0].Fields)

	// A new image or count in the file wins.
	next = parseFor(t, "services:\n  web:\n    image: reg.local/acme/web:8\n    deploy: {replicas: 3}\n")
	KeepLive(file, live, next)
	require.Equal(t, "reg.local/acme/web:8", next.Services[0].Image)
	require.Equal(t, 3, next.Services[0].Replicas)
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}
