package workflows

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

func TestProvisionHostMarksReachableHostReady(t *testing.T) {
	env, rec := newEnv(t)
	facts := berth.HostFacts{EngineVersion: "27.3.1", APIVersion: "1.47", CPUs: 8, MemoryBytes: 16 << 30, NetworkID: "n1"}
	env.OnActivity(dk.ProbeHost, mock.Anything, hostUS).Return(&facts, nil)

	env.ExecuteWorkflow(ProvisionHost, ProvisionHostInput{RunID: 5, Host: hostUS})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ProvisionHostResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, facts, res.Facts)

	probes := rec.of("ProbeHost")
	require.Len(t, probes, 1)
	require.Equal(t, "berth-us", probes[0].Queue, "the probe runs in the host's own region")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Equal(t, uint(5), fin.RunID)
	require.Equal(t, hostUS.ID, fin.HostID)
	require.Zero(t, fin.ApplicationID)
	require.Equal(t, &berth.HostFacts{State: berth.HostReady, EngineVersion: "27.3.1", APIVersion: "1.47",
		CPUs: 8, MemoryBytes: 16 << 30}, fin.Host)
	require.Equal(t, []string{"probe running", "probe done"}, rec.stepLog())
}

func TestProvisionHostMarksRefusingHostDown(t *testing.T) {
	env, rec := newEnv(t)
	const msg = "host h2 speaks Docker API 1.40; berth needs 1.41 or newer"
	env.OnActivity(dk.ProbeHost, mock.Anything, mock.Anything).
		Return(nil, temporal.NewNonRetryableApplicationError(msg, string(berth.EHostRefused), nil))

	env.ExecuteWorkflow(ProvisionHost, ProvisionHostInput{RunID: 5, Host: hostUS})

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, msg)
	require.Equal(t, string(berth.EHostRefused), appError(t, err).Type())
	require.Len(t, rec.of("ProbeHost"), 1, "a refusal is not retried")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, hostUS.ID, fin.HostID)
	require.Equal(t, &berth.HostFacts{State: berth.HostDown, Reason: msg}, fin.Host)
	require.Equal(t, []string{"probe running", "probe failed"}, rec.stepLog())
}

func TestProvisionHostGivesUpOnSilentHost(t *testing.T) {
	env, rec := newEnv(t)
	const msg = "host h2 (tcp://10.0.0.2:2376) does not answer: connection refused"
	env.OnActivity(dk.ProbeHost, mock.Anything, mock.Anything).Return(nil, errors.New(msg))

	env.ExecuteWorkflow(ProvisionHost, ProvisionHostInput{RunID: 5, Host: hostUS})

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Len(t, rec.of("ProbeHost"), int(probeOptions.RetryPolicy.MaximumAttempts))
	fin := rec.onlyFinish(t)
	require.Equal(t, &berth.HostFacts{State: berth.HostDown, Reason: msg}, fin.Host)
}
