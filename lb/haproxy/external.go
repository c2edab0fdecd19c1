package haproxy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// External is an HAProxy of the operator's own fleet: started, stopped and
// configured by them, its global section and its other frontends theirs.
// berth owns one file of it, drives its servers through the runtime API and
// asks for a reload with the operator's command:
//
//   - ConfigPath is the file berth writes its frontends and backends to
//     (with a defaults section of its own); the operator's HAProxy must load
//     it, as one more "-f" or as a file of its configuration folder.
//   - AdminSocket is that HAProxy's runtime API socket, at "level admin".
//   - Reload is the command that makes it load its files again without
//     dropping connections (e.g. systemctl reload haproxy), as argv: it is
//     run directly, never through a shell.
//
// A reload shows as a new worker pid on the runtime API; berth then applies
// and verifies every server's weight and state, as after its own reloads.
type External struct {
	ConfigPath  string
	AdminSocket string
	Reload      []string
}

func (e *External) check() error {
	if e == nil {
		return nil
	}
	if !filepath.IsAbs(e.ConfigPath) || !filepath.IsAbs(e.AdminSocket) {
		return invalid("an existing HAProxy needs absolute paths of berth's configuration file and of its admin socket")
	}
	if len(e.Reload) == 0 || e.Reload[0] == "" {
		return invalid("an existing HAProxy needs its reload command")
	}
	return nil
}

// externalHealthy says the operator's HAProxy answers with the worker that
// berth last brought to its state: a worker berth has not seen came from a
// reload or restart by someone else, which may have lost runtime state.
func (m *Manager) externalHealthy(ctx context.Context) bool {
	out, err := m.runtime(ctx, "show info")
	return err == nil && m.extPid != 0 && parseInfoPid(out) == m.extPid
}

// adoptLocked brings the operator's HAProxy to the desired state: it writes
// and checks berth's file, runs the reload command, waits for the new
// worker, then applies and verifies every server. loaded reports whether
// the new worker runs (the file is then the one it loaded).
func (m *Manager) adoptLocked(ctx context.Context) (loaded bool, err error) {
	out, err := m.runtime(ctx, "show info")
	if err != nil {
		return false, fmt.Errorf("haproxy: the existing HAProxy does not answer on %s: %w", m.cfg.adminSock(), err)
	}
	before := parseInfoPid(out)
	if err := m.writeConfig(ctx, true); err != nil {
		return false, err
	}
	e := m.cfg.External
	cmd := exec.CommandContext(ctx, e.Reload[0], e.Reload[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return false, fmt.Errorf("%w: reload command %q: %v\n%s", ErrRejected, strings.Join(e.Reload, " "), err, out)
	}
	var now int
	err = poll(ctx, reloadTimeout, func(ctx context.Context) error {
		out, err := m.runtime(ctx, "show info")
		if err != nil {
			return err // the socket is briefly gone while the new worker binds it
		}
		if now = parseInfoPid(out); now == before || now == 0 {
			return fmt.Errorf("still served by worker %d", before)
		}
		return nil
	})
	if err != nil {
		// Its old worker keeps serving: the operator's files (berth's among
		// them) were refused, or the command did not reload it.
		return false, fmt.Errorf("%w: the existing HAProxy did not reload: %v", ErrRejected, err)
	}
	m.extPid = 0
	if err := m.applyAllLocked(ctx); err != nil {
		return true, errors.Join(err, fmt.Errorf("haproxy: is %s loaded by the existing HAProxy?", m.cfg.cfgPath()))
	}
	m.extPid = now
	return true, nil
}
