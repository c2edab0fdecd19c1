package worker

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
)

// heartbeatEvery is how often a running activity tells Temporal it is
// alive. With the activity options' short heartbeat timeouts, a worker
// that is SIGKILLed has its activities retried within seconds of its
// death, instead of after their start-to-close timeouts.
const heartbeatEvery = time.Second

// workerOptions are the options of every berth worker.
func workerOptions() sdkworker.Options {
	return sdkworker.Options{
		Interceptors: []interceptor.WorkerInterceptor{&keepAlive{}},
		// The SDK batches heartbeats up to 80% of the heartbeat timeout;
		// sending every 3 s keeps three inside the 10 s timeouts
		// (workflows/options.go), while a loaded server gets a third of the
		// heartbeats it got at one a second.
		MaxHeartbeatThrottleInterval: 3 * time.Second,
		// A workflow's next task waits this long for a dead worker's sticky
		// queue before any worker may take it (the SDK's default is 5 s);
		// a live worker takes it in milliseconds.
		StickyScheduleToStartTimeout: time.Second,
	}
}

// keepAlive heartbeats for every activity that has a heartbeat timeout,
// for as long as it runs. An engine call that blocks (a create on a busy
// host, a slow HAProxy reload) then neither looks dead to Temporal nor
// needs a long timeout to cover it.
type keepAlive struct {
	interceptor.WorkerInterceptorBase
}

func (*keepAlive) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &keepAliveActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type keepAliveActivity struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *keepAliveActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	if info.IsLocalActivity || info.HeartbeatTimeout <= 0 {
		return a.Next.ExecuteActivity(ctx, in)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(heartbeatEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return a.Next.ExecuteActivity(ctx, in)
}
