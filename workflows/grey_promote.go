package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
)

// promote replaces the stable instances with the new image in batches and
// then removes the canary; a failing batch rolls the replaced ones back to
// the last-good image and aborts.
func (g *grey) promote(ctx workflow.Context) (*GreyReleaseResult, error) {
	r := g.r
	g.state.Phase = GreyPhasePromoting
	g.state.Current = "promote"
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	by := "the steps' end"
	if g.action.Action == GreyPromote {
		by = g.action.By
	}
	err := r.step(dctx, "promote: routes off, weights even ("+by+")", func() error {
		g.routes = nil
		if err := g.applyRoutes(dctx); err != nil {
			return err
		}
		g.state.Weight = 100 * len(g.canaries) / max(len(g.canaries)+len(g.stable), 1)
		return g.evenWeights(dctx)
	})
	batch := max(g.rin.BatchSize, 1)
	if err == nil && g.rin.Kind == berth.ReleaseFile {
		return g.promoteFile(ctx, dctx, by, batch)
	}
	total := (len(g.stable) + batch - 1) / batch
	var released []berth.PlannedInstance
	old := slices.Clone(g.stable)
	for b := 0; err == nil && b*batch < len(old); b++ {
		group := old[b*batch : min((b+1)*batch, len(old))]
		var fresh []berth.PlannedInstance
		err = r.step(dctx, fmt.Sprintf("promote: batch %d/%d", b+1, total), func() error {
			var err error
			fresh, err = replaceBatch(dctx, r, g.rin, g.rin.Service, group, fmt.Sprintf("%d/promote-%d", g.rin.RunID, b+1))
			return err
		})
		if fresh != nil {
			released = append(released, fresh...)
			g.stable = append(g.stable[len(group):], fresh...)
			g.syncNames()
		}
	}
	if err == nil {
		return g.promoted(dctx, by)
	}
	reason := "promotion failed: " + errorMessage(err)
	if len(released) > 0 && g.rin.LastGoodImage != "" {
		good := g.rin.Service
		good.Image = g.rin.LastGoodImage
		rbErr := r.step(dctx, "rollback", func() error {
			back, err := replaceBatch(dctx, r, g.rin, good, released, fmt.Sprintf("%d/rollback", g.rin.RunID))
			if back != nil {
				g.stable = append(slices.DeleteFunc(g.stable, func(pi berth.PlannedInstance) bool {
					return slices.ContainsFunc(released, func(x berth.PlannedInstance) bool { return x.Name == pi.Name })
				}), back...)
			}
			return err
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			reason += "; rolled back to " + g.rin.LastGoodImage
		}
	}
	return g.abort(ctx, abortFor(reason, berth.RunFailed))
}

// promoteFile installs the package into the stable instances in place,
// batch by batch (drain, install, health, back in rotation), then removes
// the canary. A failing batch puts the last-good package back on the
// instances touched so far and aborts.
func (g *grey) promoteFile(ctx, dctx workflow.Context, by string, batch int) (*GreyReleaseResult, error) {
	r, rin := g.r, g.rin
	total := (len(g.stable) + batch - 1) / batch
	var touched []berth.PlannedInstance
	var err error
	for b := 0; err == nil && b*batch < len(g.stable); b++ {
		group := g.stable[b*batch : min((b+1)*batch, len(g.stable))]
		touched = append(touched, group...)
		err = r.step(dctx, fmt.Sprintf("promote: batch %d/%d", b+1, total), func() error {
			return installBatch(dctx, r, rin, group, rin.PackageSHA256, rin.Command)
		})
	}
	if err == nil {
		return g.promoted(dctx, by)
	}
	reason := "promotion failed: " + errorMessage(err)
	if rin.LastGoodPackage != "" {
		rbErr := r.step(dctx, "rollback", func() error {
			return installInBatches(dctx, r, rin, touched, rin.LastGoodPackage, batch)
		})
		if rbErr != nil {
			reason += "; rollback failed: " + errorMessage(rbErr)
		} else {
			reason += "; rolled back to the last-good package"
		}
	} else {
		reason += "; no earlier package to restore: instances that failed stay out of rotation"
	}
	return g.abort(ctx, abortFor(reason, berth.RunFailed))
}

// promoted removes the canary once every stable instance runs the new
// version, and records the release as the service's last-good one.
func (g *grey) promoted(dctx workflow.Context, by string) (*GreyReleaseResult, error) {
	err := g.r.step(dctx, "promote: remove canary", func() error {
		gone := g.canaries
		g.canaries = nil
		g.syncNames()
		return g.removeCanaries(dctx, gone)
	})
	if err != nil {
		// The service runs the new version everywhere; a canary left
		// behind is reported, not rolled back.
		return g.end(dctx, berth.ReleaseSucceeded, "promoted; removing the canary failed: "+errorMessage(err), berth.RunFailed)
	}
	g.state.Weight = 100
	return g.end(dctx, berth.ReleaseSucceeded, "promoted by "+by, berth.RunSucceeded)
}
