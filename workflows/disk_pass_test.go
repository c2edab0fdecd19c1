package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// A pass measures each host on its region's queue, keeps the figures, and
// reports the volumes the store says went over their size; a host that
// does not answer is skipped, not the whole pass.
func TestDiskPassMeasuresAndReportsVolumesOverSize(t *testing.T) {
	env := newTestEnv()
	var rc *activities.Reconcile
	var d *activities.Docker
	down := berth.HostRef{ID: 9, Name: "down", Region: "eu", IP: "10.0.0.9"}
	env.OnActivity(rc.ReconcileHosts, mock.Anything).Return([]berth.HostRef{hostEU, down}, nil)
	data := berth.VolumeUse{Name: "acme.dev.shop.data", Tenant: "acme", Env: "dev", App: "shop", SizeBytes: 10 << 20, UsedBytes: 15 << 20}
	env.OnActivity(d.MeasureVolumes, mock.Anything, hostEU).Return([]berth.VolumeUse{data}, nil)
	env.OnActivity(d.MeasureVolumes, mock.Anything, down).Return(nil, errors.New("engine does not answer"))
	var recorded []activities.VolumeUseInput
	env.OnActivity(rc.RecordVolumeUse, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.VolumeUseInput) ([]berth.VolumeUse, error) {
		recorded = append(recorded, in)
		return in.Uses, nil
	})
	var findings []berth.Finding
	env.OnActivity(rc.RecordFindings, mock.Anything, mock.Anything).Return(func(_ context.Context, fs []berth.Finding) error {
		findings = append(findings, fs...)
		return nil
	})

	env.ExecuteWorkflow(DiskPass, DiskPassInput{})
	require.NoError(t, env.GetWorkflowError())
	var res DiskPassResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 2, res.Hosts)
	require.Equal(t, 1, res.Volumes)
	require.Len(t, recorded, 1, "the host that did not answer keeps its last figures")
	require.Equal(t, hostEU.ID, recorded[0].HostID)
	require.Len(t, findings, 1)
	require.Equal(t, berth.FindingVolumeOverSize, findings[0].Kind)
	require.Equal(t, hostEU.Name, findings[0].Host)
	require.Equal(t, data.Name, findings[0].Target)
	require.Contains(t, findings[0].Detail, "holds 15MiB, over the 10MiB it was declared with")
}
