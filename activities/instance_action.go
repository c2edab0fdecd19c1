package activities

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// InstanceActionInput is a person's action on one live instance.
type InstanceActionInput struct {
	Instance berth.PlannedInstance `json:"instance"`
	Service  compose.ServiceSpec   `json:"service"`
	// Action is berth.KindRestart, KindStop or KindStart.
	Action berth.RunKind `json:"action"`
	// Since is when the run asked for the action: a container started after
	// it was already restarted by an earlier attempt, so a retry only waits.
	Since         time.Time `json:"since"`
	HealthTimeout int64     `json:"healthTimeoutMs"`
}

// stopGrace is how long a stopping instance gets after SIGTERM; the load
// balancer has drained it first, so it only finishes what it holds.
const stopGrace = 10

// ActOnInstance restarts, stops or starts an instance's container and, for
// restart and start, waits until it is healthy. Each action checks the
// container first, so a retry after a worker died mid-way does not act twice.
func (d *Docker) ActOnInstance(ctx context.Context, in InstanceActionInput) error {
	eng, id, err := d.ownContainer(ctx, in.Instance)
	if err != nil {
		return err
	}
	insp, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect %s on %s: %w", in.Instance.Name, in.Instance.Host.Name, err)
	}
	st := insp.Container.State
	running := st != nil && st.Running
	name, host := in.Instance.Name, in.Instance.Host.Name
	activity.RecordHeartbeat(ctx, string(in.Action))
	timeout := stopGrace
	switch in.Action {
	case berth.KindStop:
		if !running {
			return nil
		}
		if _, err := eng.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("stop %s on %s: %w", name, host, err)
		}
		return nil
	case berth.KindRestart:
		if !running || !startedSince(st.StartedAt, in.Since) {
			if _, err := eng.ContainerRestart(ctx, id, client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
				return fmt.Errorf("restart %s on %s: %w", name, host, err)
			}
		}
	case berth.KindStart:
		if !running {
			if _, err := eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
				return fmt.Errorf("start %s on %s: %w", name, host, err)
			}
		}
	default:
		return fail(berth.EInvalid, "instance action %q is not restart, stop or start", in.Action)
	}
	_, err = d.waitHealthy(ctx, eng, id, StartInstanceInput{Instance: in.Instance, Service: in.Service,
		HealthTimeout: msDuration(in.HealthTimeout)})
	return err
}

// startedSince says whether an engine's StartedAt (RFC 3339) is at or after t.
func startedSince(startedAt string, t time.Time) bool {
	at, err := time.Parse(time.RFC3339Nano, startedAt)
	return err == nil && !at.Before(t)
}
