package logship

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// ParseAddress checks a collector address: tcp://host:port, the only
// transport the engines' syslog driver and Writer both speak reliably.
func ParseAddress(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return "", fmt.Errorf("log-ship address %q must be tcp://host:port", s)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return "", fmt.Errorf("log-ship address %q must be tcp://host:port", s)
	}
	return u.Host, nil
}

// Writer sends every line written to it to a collector over TCP, as
// RFC 3164 messages with the fields' tag. It never blocks nor fails its
// caller: lines wait in a bounded queue for the connection, and when the
// collector is down or slow, lines over the queue are dropped and counted.
type Writer struct {
	hostport string
	tag      string
	hostname string
	queue    chan []byte
	dropped  atomic.Int64
}

// writerQueue bounds the lines waiting for the collector.
const writerQueue = 4096

// NewWriter starts shipping to hostport until ctx ends.
func NewWriter(ctx context.Context, hostport string, f Fields) *Writer {
	host, _ := os.Hostname()
	w := &Writer{hostport: hostport, tag: f.Tag(), hostname: tagValue(host), queue: make(chan []byte, writerQueue)}
	go w.run(ctx)
	return w
}

// Dropped is how many lines were dropped because the collector lagged.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Write queues each line of p.
func (w *Writer) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		select {
		case w.queue <- bytes.Clone(line):
		default:
			w.dropped.Add(1)
		}
	}
	return len(p), nil
}

func (w *Writer) run(ctx context.Context) {
	var conn net.Conn
	backoff := time.Second
	pid := os.Getpid()
	for {
		var line []byte
		select {
		case <-ctx.Done():
			if conn != nil {
				_ = conn.Close()
			}
			return
		case line = <-w.queue:
		}
		for conn == nil {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", w.hostport)
			if err == nil {
				conn, backoff = c, time.Second
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
		// <daemon.info>timestamp hostname tag[pid]: text — newline framed;
		// RFC 3339 to the microsecond, which rsyslog reads in this header.
		msg := fmt.Sprintf("<30>%s %s %s[%d]: %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), w.hostname, w.tag, pid, line)
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			_ = conn.Close()
			conn = nil
			w.dropped.Add(1)
		}
	}
}
