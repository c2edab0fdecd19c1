package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth/compose"
)

func TestDependencyLevels(t *testing.T) {
	svc := func(name string, deps ...string) compose.ServiceSpec {
		return compose.ServiceSpec{Name: name, Image: name + ":1", Replicas: 1, DependsOn: deps}
	}
	// Services are given in the order compose.Parse produces: dependencies
	// first, ties broken by name.
	cases := []struct {
		name     string
		services []compose.ServiceSpec
		want     [][]string
	}{
		{"single", []compose.ServiceSpec{svc("app")}, [][]string{{"app"}}},
		{"chain", []compose.ServiceSpec{svc("db"), svc("api", "db"), svc("web", "api")},
			[][]string{{"db"}, {"api"}, {"web"}}},
		{"diamond", []compose.ServiceSpec{svc("db"), svc("api", "db"), svc("worker", "db"), svc("web", "api", "worker")},
			[][]string{{"db"}, {"api", "worker"}, {"web"}}},
		{"independent", []compose.ServiceSpec{svc("cache"), svc("db"), svc("queue")},
			[][]string{{"cache", "db", "queue"}}},
		// y comes before b in dependency order, yet a level is sorted by name.
		{"two chains", []compose.ServiceSpec{svc("a"), svc("y", "a"), svc("z"), svc("b", "z")},
			[][]string{{"a", "z"}, {"b", "y"}}},
		// A service waits for its deepest dependency, not its first.
		{"uneven depths", []compose.ServiceSpec{svc("cache"), svc("db"), svc("api", "db"), svc("web", "api", "cache")},
			[][]string{{"cache", "db"}, {"api"}, {"web"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, dependencyLevels(compose.Spec{Services: c.services}))
		})
	}
}
