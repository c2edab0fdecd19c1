package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
)

// TerminalInput is one interactive session in an instance: the command
// runs with a TTY, and its bytes go through the API's relay at Relay,
// which this worker dials (the API never reaches a host).
type TerminalInput struct {
	SessionID string            `json:"sessionId"`
	Instance  berth.InstanceRef `json:"instance"`
	Cmd       []string          `json:"cmd"`
	Relay     string            `json:"relay"`
	Cols      uint              `json:"cols"`
	Rows      uint              `json:"rows"`
}

// TerminalResult is how the session ended.
type TerminalResult struct {
	ExitCode *int   `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// terminalBeat is how often a session heartbeats while it runs.
const terminalBeat = 2 * time.Second

// Terminal runs the session: exec with a TTY in the instance's container,
// then pump bytes both ways between it and the relay until the command
// exits or the relay closes (the person left, went idle, or lost access),
// and report the exit code. It is never retried: a second exec would run
// the command again.
func (d *Docker) Terminal(ctx context.Context, in TerminalInput) (*TerminalResult, error) {
	if len(d.TerminalKey) == 0 {
		return nil, fail(berth.EInvalid, "this worker has no terminal key (it derives it from the payload key file)")
	}
	if len(in.Cmd) == 0 {
		return nil, fail(berth.EInvalid, "no command")
	}
	eng, err := d.engine(ctx, in.Instance.Host)
	if err != nil {
		return nil, err
	}
	size := client.ConsoleSize{Height: max(in.Rows, 10), Width: max(in.Cols, 40)}
	ex, err := eng.ExecCreate(ctx, in.Instance.Instance, client.ExecCreateOptions{Cmd: in.Cmd, TTY: true, ConsoleSize: size,
		AttachStdin: true, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, fail(berth.EConflict, "cannot run %v in %s: %v", in.Cmd, in.Instance.Instance, err)
	}
	att, err := eng.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: size})
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", in.Instance.Instance, err)
	}
	defer att.Close()

	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, _, err := websocket.Dial(dctx, in.Relay, &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"BerthTerminal " + berth.TerminalRelayToken(d.TerminalKey, in.SessionID)}}})
	cancel()
	if err != nil {
		return nil, fail(berth.EUnavailable, "the API's terminal relay did not answer: %v", err)
	}
	ws.SetReadLimit(1 << 20)
	defer ws.CloseNow()

	// A read whose context ends closes the socket, so the reads run on a
	// context that outlives the end message.
	rctx, stopReads := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReads()
	finished := make(chan string, 2)
	// Output: the TTY's bytes to the relay.
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := att.Reader.Read(buf)
			if n > 0 {
				if werr := ws.Write(rctx, websocket.MessageBinary, buf[:n]); werr != nil {
					finished <- "relay closed"
					return
				}
			}
			if err != nil {
				finished <- ""
				return
			}
		}
	}()
	// Input and resizes: the relay's frames to the TTY.
	go func() {
		for {
			typ, data, err := ws.Read(rctx)
			if err != nil {
				finished <- "closed by the API"
				return
			}
			if typ == websocket.MessageText {
				var rs berth.TerminalResize
				if json.Unmarshal(data, &rs) == nil && rs.Cols > 0 && rs.Rows > 0 {
					_, _ = eng.ExecResize(rctx, ex.ID, client.ExecResizeOptions{Height: min(rs.Rows, 500), Width: min(rs.Cols, 1000)})
				}
				continue
			}
			if _, err := att.Conn.Write(data); err != nil {
				finished <- ""
				return
			}
		}
	}()
	t := time.NewTicker(terminalBeat)
	defer t.Stop()
	reason := ""
wait:
	for {
		select {
		case reason = <-finished:
			break wait
		case <-ctx.Done():
			reason = "cancelled"
			break wait
		case <-t.C:
			activity.RecordHeartbeat(ctx, in.SessionID)
		}
	}
	att.Close()
	res := &TerminalResult{Reason: reason}
	// The exit code, once the engine has seen the process end.
	ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer icancel()
	for {
		insp, err := eng.ExecInspect(ictx, ex.ID, client.ExecInspectOptions{})
		if err == nil && !insp.Running {
			code := insp.ExitCode
			res.ExitCode = &code
			break
		}
		if err != nil || errors.Is(ictx.Err(), context.DeadlineExceeded) {
			break
		}
		select {
		case <-ictx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	endMsg, _ := json.Marshal(berth.TerminalEnd{Exit: res.ExitCode, Reason: res.Reason})
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer wcancel()
	_ = ws.Write(wctx, websocket.MessageText, endMsg)
	_ = ws.Close(websocket.StatusNormalClosure, "session ended")
	return res, nil
}
