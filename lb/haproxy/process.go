package haproxy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procState returns the one-letter state of /proc/<pid>/stat ("" if the
// process does not exist). The command name may contain spaces and
// parentheses, so the state is the field after the last ')'.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// procAlive is false for zombies: a killed HAProxy whose parent does not
// reap it (PID 1 in some containers does not) keeps its pid but nothing else.
func procAlive(pid int) bool {
	switch procState(pid) {
	case "", "Z", "X", "x":
		return false
	}
	return true
}

// isOurHAProxy tells whether pid is a live HAProxy master or worker started
// on cfgPath. A pid from a pidfile alone proves nothing: after a reboot or a
// long stop it may belong to anything, and kill -0 also succeeds on zombies.
// Workers share the master's command line, "-f <cfg>" included.
func isOurHAProxy(pid int, cfgPath string) bool {
	if pid <= 1 || pid == os.Getpid() || !procAlive(pid) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return false
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if !strings.Contains(filepath.Base(argv[0]), "haproxy") {
		return false
	}
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] == "-f" && argv[i+1] == cfgPath {
			return true
		}
	}
	return false
}

// findOurHAProxies lists live HAProxy processes on cfgPath: the pidfile's
// pid plus a scan of /proc, because workers of a master killed with SIGKILL
// are orphans that no pidfile names.
func findOurHAProxies(cfgPath, pidFile string) []int {
	seen := map[int]bool{}
	var pids []int
	add := func(pid int) {
		if !seen[pid] && isOurHAProxy(pid, cfgPath) {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			add(pid)
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			add(pid)
		}
	}
	return pids
}

// killStale ends HAProxy processes left on cfgPath by an earlier run:
// SIGTERM first so a healthy old master can stop its workers, SIGKILL for
// whatever is still there after grace. Each pid is re-identified before
// every signal, as it may have exited and been reused meanwhile.
func killStale(ctx context.Context, cfgPath, pidFile string, grace time.Duration) error {
	pids := findOurHAProxies(cfgPath, pidFile)
	if len(pids) == 0 {
		return nil
	}
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			if isOurHAProxy(pid, cfgPath) {
				_ = syscall.Kill(pid, sig)
			}
		}
	}
	gone := func(context.Context) error {
		for _, pid := range pids {
			if isOurHAProxy(pid, cfgPath) {
				return fmt.Errorf("pid %d still running", pid)
			}
		}
		return nil
	}
	signal(syscall.SIGTERM)
	if poll(ctx, grace, gone) == nil {
		return nil
	}
	signal(syscall.SIGKILL)
	return poll(ctx, grace, gone)
}
