package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth"
	"github.com/gin-gonic/gin"
)

// How a run page stays live. Steps are written by the worker, which may be
// another process, so each open stream reads the store a few times a second
// (a step's change reaches the page well within 500 ms) and sends the live
// part of the page only when it changed. Each event carries the whole
// current state, so a client that reconnects with Last-Event-ID misses
// nothing: it gets the current state unless it already has it.
const (
	ssePoll      = 200 * time.Millisecond
	sseHeartbeat = 15 * time.Second
	// sseMaxAge ends a stream now and then; the browser reconnects with
	// Last-Event-ID, so nothing is lost and no connection lives forever.
	sseMaxAge = 10 * time.Minute
	// sseRecheck: a stream whose session ends or whose token is revoked
	// stops within this long, not at sseMaxAge.
	sseRecheck = 5 * time.Second
	// maxStreamsPerUser bounds what one person or token can hold open: a
	// few tabs each, not a flood of connections.
	maxStreamsPerUser = 16
)

// streamCounter counts open event streams per user.
type streamCounter struct {
	mu   sync.Mutex
	open map[uint]int
}

// take opens a stream for the user unless they hold the most already.
func (sc *streamCounter) take(user uint) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.open[user] >= maxStreamsPerUser {
		return false
	}
	sc.open[user]++
	return true
}

func (sc *streamCounter) give(user uint) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.open[user]--; sc.open[user] <= 0 {
		delete(sc.open, user)
	}
}

// Close ends the open event streams; call it before shutting the server down.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

type runEvent struct {
	Status berth.RunStatus `json:"status"`
	HTML   string          `json:"html"`
}

// runEvents streams a run page's live part as server-sent events: "run"
// with the state, "end" once the run has finished, and heartbeats so that
// proxies keep the connection and the client notices a dead one.
func (s *Server) runEvents(c *gin.Context) {
	ctx := c.Request.Context()
	run, err := s.runParam(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	user := principalOf(c).User.ID
	if !s.streams.take(user) {
		s.fail(c, &berth.Error{Code: berth.ERateLimited, Message: fmt.Sprintf(
			"you have %d live pages open already; close some (each run page holds one)", maxStreamsPerUser)})
		return
	}
	defer s.streams.give(user)
	s.metrics.SSEClient(1)
	defer s.metrics.SSEClient(-1)
	last := c.GetHeader("Last-Event-ID")
	if last == "" {
		last = c.Query("last")
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Status(http.StatusOK)
	fmt.Fprint(c.Writer, "retry: 1000\n\n")
	c.Writer.Flush()

	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	maxAge := time.NewTimer(sseMaxAge)
	defer maxAge.Stop()
	recheck := time.NewTicker(s.sseRecheck)
	defer recheck.Stop()
	for {
		run, err = s.store.Run(ctx, run.ID)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event stream stopped", "run", c.Param("id"), "error", err)
			}
			return
		}
		live, err := s.liveData(c, run)
		if err != nil {
			return
		}
		html, err := s.renderLive(live)
		if err != nil {
			s.log.Error("live run not rendered", "run", run.ID, "error", err)
			return
		}
		sum := sha256.Sum256([]byte(string(run.Status) + "\x00" + html))
		id := hex.EncodeToString(sum[:8])
		if id != last {
			data, _ := json.Marshal(runEvent{Status: run.Status, HTML: html})
			fmt.Fprintf(c.Writer, "id: %s\nevent: run\ndata: %s\n\n", id, data)
			c.Writer.Flush()
			last = id
		}
		if terminal(run.Status) {
			fmt.Fprint(c.Writer, "event: end\ndata: {}\n\n")
			c.Writer.Flush()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case <-maxAge.C:
			return
		case <-beat.C:
			fmt.Fprint(c.Writer, ": heartbeat\n\n")
			c.Writer.Flush()
		case <-recheck.C:
			// A revoked token or an ended session ends the stream: the
			// browser's reconnect then meets the sign-in like any request.
			if _, err := s.identify(c); err != nil {
				fmt.Fprint(c.Writer, "event: unauthorized\ndata: {}\n\n")
				c.Writer.Flush()
				return
			}
		case <-poll.C:
		}
	}
}
