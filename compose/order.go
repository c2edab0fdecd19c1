package compose

import "sort"

// dependencyOrder returns the services so that each comes after everything it
// depends on. Among services that are ready at the same time the smallest
// name goes first, which makes the order (and so the Spec hash) a function of
// the file alone. When the graph has a cycle, the second result names one.
func dependencyOrder(specs map[string]ServiceSpec) ([]ServiceSpec, []string) {
	pending := map[string]int{}         // unmet dependencies per service
	dependents := map[string][]string{} // reverse edges
	for name, s := range specs {
		for _, d := range s.DependsOn {
			if _, ok := specs[d]; !ok {
				continue // already reported as unknown
			}
			pending[name]++
			dependents[d] = append(dependents[d], name)
		}
	}

	var ready []string
	for name := range specs {
		if pending[name] == 0 {
			ready = append(ready, name)
		}
	}
	out := make([]ServiceSpec, 0, len(specs))
	for len(ready) > 0 {
		sort.Strings(ready)
		next := ready[0]
		ready = ready[1:]
		out = append(out, specs[next])
		for _, d := range dependents[next] {
			pending[d]--
			if pending[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(out) == len(specs) {
		return out, nil
	}
	return out, findCycle(specs, pending)
}

// findCycle walks from the smallest stuck service along its stuck
// dependencies; every stuck service has one, so the walk must revisit a
// service, and the revisited stretch is a cycle.
func findCycle(specs map[string]ServiceSpec, pending map[string]int) []string {
	var stuck []string
	for name := range specs {
		if pending[name] > 0 {
			stuck = append(stuck, name)
		}
	}
	sort.Strings(stuck)
	seen := map[string]int{}
	var path []string
	cur := stuck[0]
	for {
		if i, ok := seen[cur]; ok {
			return append(path[i:], cur)
		}
		seen[cur] = len(path)
		path = append(path, cur)
		next := ""
		for _, d := range specs[cur].DependsOn { // sorted
			if pending[d] > 0 {
				next = d
				break
			}
		}
		if next == "" {
			return path // cannot happen: a stuck service has a stuck dependency
		}
		cur = next
	}
}
