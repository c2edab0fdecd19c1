package haproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// cmdTimeout bounds one runtime command even when the caller's context has
// no deadline: a wedged HAProxy must not hang a Temporal activity forever.
const cmdTimeout = 5 * time.Second

// CommandError carries HAProxy's own reply to a refused runtime command; the
// reply is the only explanation HAProxy gives.
type CommandError struct {
	Command string
	Reply   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: %q: %s", e.Command, strings.TrimSpace(e.Reply))
}

// checkCommand is the last line of defence behind the validators: the CLI
// treats ';' as a command separator and a newline as the end of a command.
func checkCommand(cmd string) error {
	for i := 0; i < len(cmd); i++ {
		if c := cmd[i]; c < 0x20 || c == 0x7f || c == ';' {
			return invalid("refusing runtime command with byte %#x: %q", c, cmd)
		}
	}
	return nil
}

// sockCommand sends one command on a fresh connection and returns the whole
// reply. One command per connection keeps HAProxy in non-interactive mode,
// where it closes the connection after answering, so EOF delimits the reply
// and no prompt or pipelining has to be parsed.
func sockCommand(ctx context.Context, path, cmd string) (string, error) {
	if err := checkCommand(cmd); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", cmd, err)
	}
	defer conn.Close()
	// Deadlines alone would not notice a cancelled context.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: %q: %w", cmd, err)
	}
	// The master CLI only answers and closes once the client has shut its
	// write side (as socat does at the end of its input).
	if uc, ok := conn.(*net.UnixConn); ok {
		if err := uc.CloseWrite(); err != nil {
			return "", fmt.Errorf("haproxy: %q: %w", cmd, err)
		}
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return string(out), fmt.Errorf("haproxy: %q: %w", cmd, err)
	}
	return string(out), nil
}

// Reply checks. HAProxy answers most admin commands with nothing on success
// and with a sentence on failure, but a few answer success with a sentence.

func replyEmpty(r string) bool { return strings.TrimSpace(r) == "" }

func replyAdded(r string) bool { return strings.TrimSpace(r) == "New server registered." }

func replyDeleted(r string) bool { return strings.TrimSpace(r) == "Server deleted." }

// replyAddrSet accepts the two success sentences of "set server addr", e.g.
// "IP changed from '127.0.0.1' to '127.0.0.2' by 'stats socket command'" and
// "no need to change the addr, port changed from '1' to '2' by ...".
func replyAddrSet(r string) bool {
	r = strings.TrimSpace(r)
	return strings.Contains(r, " changed from ") || strings.HasPrefix(r, "no need to change the addr")
}

func replyNoSuchServer(r string) bool { return strings.TrimSpace(r) == "No such server." }

// replyInUse is "del server" refusing while connections remain.
func replyInUse(r string) bool { return strings.Contains(r, "still has connections") }
