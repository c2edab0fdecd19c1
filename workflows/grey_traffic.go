package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

// GreyRoute is a route as the state shows it.
type GreyRoute struct {
	Kind  string `json:"kind"` // header or cookie
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GreyWeights are the per-server weights that send pct percent of a pool's
// traffic to its nCanary canary servers and the rest to its nStable stable
// ones, scaled so the larger weight is HAProxy's maximum (256) for the
// finest split.
func GreyWeights(pct, nStable, nCanary int) (stable, canary int) {
	switch {
	case nCanary == 0 || pct <= 0:
		return 256, 0
	case nStable == 0 || pct >= 100:
		return 0, 256
	}
	s, c := (100-pct)*nCanary, pct*nStable
	top := max(s, c)
	stable, canary = (s*256+top/2)/top, (c*256+top/2)/top
	return max(stable, 1), max(canary, 1)
}

// apply runs a step that changes the load balancer or the canary.
func (g *grey) apply(ctx workflow.Context, s berth.GreyStep) error {
	switch {
	case s.SetWeight != nil:
		return g.setWeight(ctx, *s.SetWeight)
	case s.SetHeaderRoute != nil:
		return g.setRoute(ctx, GreyRoute{Kind: "header", Name: s.SetHeaderRoute.Name, Value: s.SetHeaderRoute.Value})
	case s.SetCookieRoute != nil:
		return g.setRoute(ctx, GreyRoute{Kind: "cookie", Name: s.SetCookieRoute.Name, Value: s.SetCookieRoute.Value})
	case s.Scale != nil:
		return g.scale(ctx, *s.Scale)
	}
	return nil
}

// poolPlan reads which pools hold the release's instances, and which of
// them are canaries.
func (g *grey) poolPlan(ctx workflow.Context) (activities.UnexposePlan, map[string]bool, error) {
	all := append(slices.Clone(g.stable), g.canaries...)
	plan, err := g.rin.pools().plan(ctx, all)
	canary := map[string]bool{}
	for _, c := range g.canaries {
		canary[c.Name] = true
	}
	return plan, canary, err
}

// putWeights sets every server's weight as weightOf says for its pool's
// counts, reads the weights back from the load balancer and records them.
// bestEffort goes on past a pool that failed (an abort must reach them all).
func (g *grey) putWeights(ctx workflow.Context, weightOf func(canary bool, nStable, nCanary int) int, bestEffort bool) error {
	var lbA *activities.LB
	plan, canary, err := g.poolPlan(ctx)
	if err != nil {
		return err
	}
	weights := map[string]int{}
	var firstErr error
	for _, p := range plan.Pools {
		nc := 0
		for _, n := range p.Names {
			if canary[n] {
				nc++
			}
		}
		in := activities.ServersInput{Backend: p.Backend}
		for _, n := range p.Names {
			w := weightOf(canary[n], len(p.Names)-nc, nc)
			in.Servers = append(in.Servers, lb.Server{Name: n, Weight: w})
			weights[n] = w
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
		if err := onRegion(actx, lbA.SetWeights, in).Get(ctx, nil); err != nil && firstErr == nil {
			firstErr = err
			if !bestEffort {
				return err
			}
		}
	}
	g.recordWeights(ctx, weights)
	return firstErr
}

// applyWeights gives the canary pct percent of each pool's traffic.
func (g *grey) applyWeights(ctx workflow.Context, pct int) error {
	return g.putWeights(ctx, func(canary bool, ns, nc int) int {
		ws, wc := GreyWeights(pct, ns, nc)
		if canary {
			return wc
		}
		return ws
	}, false)
}

// restoreWeights puts every stable server back at the release's normal
// weight and the canaries at 0: all traffic to stable at once.
func (g *grey) restoreWeights(ctx workflow.Context) error {
	return g.putWeights(ctx, func(canary bool, _, _ int) int {
		if canary {
			return 0
		}
		return g.rin.LB.Weight
	}, true)
}

func (g *grey) recordWeights(ctx workflow.Context, weights map[string]int) {
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, g.r.st.RecordWeights, activities.WeightsInput{Weights: weights}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("weights not recorded", "error", err)
	}
}

func (g *grey) setWeight(ctx workflow.Context, pct int) error {
	if err := g.applyWeights(ctx, pct); err != nil {
		return err
	}
	g.state.Weight = pct
	return nil
}

func (g *grey) setRoute(ctx workflow.Context, rt GreyRoute) error {
	prev := g.routes
	g.routes = slices.DeleteFunc(slices.Clone(g.routes), func(o GreyRoute) bool { return o.Kind == rt.Kind && o.Name == rt.Name })
	g.routes = append(g.routes, rt)
	if err := g.applyRoutes(ctx); err != nil {
		g.routes = prev
		return err
	}
	return nil
}

// applyRoutes sets each pool's routes to its canary servers (none when the
// pool has no canary or there are no routes), and records them.
func (g *grey) applyRoutes(ctx workflow.Context) error {
	var lbA *activities.LB
	plan, canary, err := g.poolPlan(ctx)
	if err != nil {
		return err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	for _, p := range plan.Pools {
		var servers []string
		for _, n := range p.Names {
			if canary[n] {
				servers = append(servers, n)
			}
		}
		in := activities.RoutesInput{Backend: p.Backend}
		if len(servers) > 0 {
			for _, rt := range g.routes {
				route := lb.Route{Value: rt.Value, Servers: servers}
				if rt.Kind == "header" {
					route.Header = rt.Name
				} else {
					route.Cookie = rt.Name
				}
				in.Routes = append(in.Routes, route)
			}
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
		if err := onRegion(actx, lbA.SetRoutes, in).Get(ctx, nil); err != nil {
			return err
		}
		if err := workflow.ExecuteLocalActivity(lctx, g.r.st.RecordRoutes, in).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("routes not recorded", "backend", p.Backend, "error", err)
		}
	}
	g.state.Routes = slices.Clone(g.routes)
	return nil
}

// evenWeights gives every instance, canary or stable, the normal weight.
func (g *grey) evenWeights(ctx workflow.Context) error {
	return g.putWeights(ctx, func(bool, int, int) int { return g.rin.LB.Weight }, false)
}
