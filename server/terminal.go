package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// terminalPickup bounds the wait for the region's worker to dial back.
const terminalPickup = 30 * time.Second

// terminalRecheck is how often an open terminal checks that its session or
// token, and the role it was opened with, still hold.
const terminalRecheck = 2 * time.Second

// terminalHub pairs a browser's terminal with the worker that dials back to
// relay it: a session waits here, by id, for its worker's socket.
type terminalHub struct {
	mu      sync.Mutex
	waiting map[string]chan relayConn
}

// relayConn is a worker's socket; done is closed once the session no
// longer uses it, so its handler may return.
type relayConn struct {
	ws   *websocket.Conn
	done chan struct{}
}

func (h *terminalHub) expect(id string) chan relayConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting == nil {
		h.waiting = map[string]chan relayConn{}
	}
	ch := make(chan relayConn, 1)
	h.waiting[id] = ch
	return ch
}

// claim hands the session's waiting channel to the one worker that dials
// for it; a second dial for the same id finds nothing.
func (h *terminalHub) claim(id string) (chan relayConn, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waiting[id]
	delete(h.waiting, id)
	return ch, ok
}

func (h *terminalHub) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiting, id)
}

// terminalRoles are who may open a terminal: a developer (or release
// manager) outside production; in production, a release manager only.
func terminalRoles(env *store.Environment) []berth.Role {
	if env.Production() {
		return []berth.Role{berth.RoleReleaseManager}
	}
	return []berth.Role{berth.RoleDeveloper, berth.RoleReleaseManager}
}

// openTerminal: GET /api/v1/instances/:name/terminal, a WebSocket. It runs
// cmd (argv separated by spaces, /bin/sh by default; no shell parses it)
// with a TTY in the instance through a TerminalSession on the region's
// worker, which dials back to relayTerminal; this handler pipes the two
// sockets. Binary frames carry the bytes, text frames a resize
// ({"cols","rows"}) and, last, how it ended ({"exit"} or {"reason"}).
// What is typed is kept (up to berth.TranscriptMax) with who, where, when
// and the exit code. A session idle for the idle limit, or whose sign-in
// or role is revoked, is closed.
func (s *Server) openTerminal(c *gin.Context) {
	ctx := c.Request.Context()
	p := principalOf(c)
	if p.Session != nil && !s.sameOrigin(c.Request) {
		s.fail(c, &berth.Error{Code: berth.EForbidden, Message: "cross-origin terminal refused: Origin must be this site"})
		return
	}
	if len(s.cfg.TerminalKey) == 0 || s.cfg.RelayURL == "" {
		s.fail(c, &berth.Error{Code: berth.EConflict, Reason: "no_terminal", Message: "terminals are not set up on this server (no relay URL or key)"})
		return
	}
	inst, sc, h, err := s.instanceContext(ctx, c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	roles := terminalRoles(&sc.Environment)
	subject := serviceSubject(sc)
	access := func(p *principal) (bool, error) {
		if p.has(sc.Tenant.ID, roles...) {
			return true, nil
		}
		until, err := s.store.TerminalGrant(ctx, p.User.Name, subject)
		return until != nil, err
	}
	if ok, err := access(p); err != nil || !ok {
		if err == nil {
			err = &berth.Error{Code: berth.EForbidden, Message: fmt.Sprintf(
				"a terminal in %s/%s needs role %s, or an approved access request (POST /api/v1/instances/%s/terminal/access)",
				sc.Tenant.Name, sc.Environment.Name, joinRoles(roles), inst.Name)}
		}
		s.fail(c, err)
		return
	}
	cmd := strings.Fields(c.DefaultQuery("cmd", "/bin/sh"))
	if len(cmd) == 0 || len(cmd) > 32 || len(c.Query("cmd")) > 1024 {
		s.fail(c, badRequest("cmd must be 1 to 32 words, at most 1024 characters"))
		return
	}
	cols, cerr := strconv.Atoi(c.DefaultQuery("cols", "100"))
	rows, rerr := strconv.Atoi(c.DefaultQuery("rows", "30"))
	if cerr != nil || rerr != nil || cols < 1 || cols > 1000 || rows < 1 || rows > 500 {
		s.fail(c, badRequest("cols must be 1 to 1000 and rows 1 to 500"))
		return
	}
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	ts := &store.TerminalSession{ID: hex.EncodeToString(idb[:]), User: p.User.Name, TenantID: sc.Tenant.ID,
		Subject: subject + "/" + inst.Name, Instance: inst.Name, Host: h.Name, Command: strings.Join(cmd, " ")}
	if err := s.store.CreateTerminalSession(ctx, ts); err != nil {
		s.fail(c, err)
		return
	}
	// The origin was checked above for sessions; tokens come from tools.
	browser, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.endTerminal(ts.ID, nil, false, nil, "the socket did not open: "+err.Error())
		return
	}
	defer browser.CloseNow()
	browser.SetReadLimit(64 << 10)
	rc, err := s.startTerminal(ctx, ts.ID, berth.InstanceRef{Host: h.Ref(), Instance: inst.Name}, cmd, uint(cols), uint(rows))
	if err != nil {
		s.closeTerminal(browser, ts.ID, nil, false, nil, err.Error())
		return
	}
	defer close(rc.done)
	defer rc.ws.CloseNow()
	s.relayTerminal(c, access, ts.ID, browser, rc.ws)
}

// startTerminal starts the session's workflow and waits for its worker to dial back.
func (s *Server) startTerminal(ctx context.Context, id string, ref berth.InstanceRef, cmd []string, cols, rows uint) (relayConn, error) {
	waiting := s.terminals.expect(id)
	defer s.terminals.forget(id)
	in := workflows.TerminalSessionInput{SessionID: id, Instance: ref, Cmd: cmd, Cols: cols, Rows: rows,
		Relay: strings.TrimSuffix(s.cfg.RelayURL, "/") + "/internal/terminals/" + id}
	we, err := s.temporal.ExecuteWorkflow(ctx, terminalStartOptions(id), workflows.TerminalSessionName, in)
	if err != nil {
		return relayConn{}, fmt.Errorf("the session could not start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- we.Get(context.WithoutCancel(ctx), nil) }()
	select {
	case rc := <-waiting:
		return rc, nil
	case err := <-done:
		if err == nil {
			err = errors.New("it ended at once")
		}
		return relayConn{}, fmt.Errorf("the session ended before it opened: %s", errorText(err))
	case <-time.After(terminalPickup):
		return relayConn{}, fmt.Errorf("the worker of region %s did not open the session within %s: is one running?", ref.Host.Region, terminalPickup)
	case <-ctx.Done():
		return relayConn{}, ctx.Err()
	}
}

// terminalStartOptions start a session's workflow. Unlike a read's, its
// execution may last as long as the longest session: a timer must not cut
// a person's terminal (the activity's own bound, berth.TerminalMax, ends it).
func terminalStartOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: workflows.TerminalSessionID(id), TaskQueue: workflows.CentralTaskQueue,
		WorkflowExecutionTimeout: berth.TerminalMax + time.Hour}
}

// errorText is the innermost message of a workflow's failure.
func errorText(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// relayTerminal pipes a browser's socket and its worker's until either
// ends, the person is idle too long, or their access goes.
func (s *Server) relayTerminal(c *gin.Context, access func(*principal) (bool, error), id string, browser, worker *websocket.Conn) {
	// A read whose context ends closes its socket: the reads run until the
	// end message is written, then the deferred closes stop them.
	rctx, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	defer cancel()
	idle := s.cfg.TerminalIdle
	var (
		mu         sync.Mutex
		transcript []byte
		truncated  bool
		lastInput  = time.Now()
		end        *berth.TerminalEnd
	)
	finished := make(chan string, 2)
	// The person's keys and resizes go to the worker.
	go func() {
		for {
			typ, data, err := browser.Read(rctx)
			if err != nil {
				finished <- "closed by the person"
				return
			}
			if typ == websocket.MessageText {
				var rs berth.TerminalResize
				if json.Unmarshal(data, &rs) != nil || rs.Cols == 0 || rs.Rows == 0 {
					continue
				}
				data, _ = json.Marshal(rs)
			} else {
				mu.Lock()
				lastInput = time.Now()
				room := max(berth.TranscriptMax-len(transcript), 0)
				if len(data) > room {
					truncated = true
				}
				transcript = append(transcript, data[:min(len(data), room)]...)
				mu.Unlock()
			}
			if err := worker.Write(rctx, typ, data); err != nil {
				finished <- "the worker's relay closed"
				return
			}
		}
	}()
	// The command's output goes to the person; its end message is kept.
	go func() {
		for {
			typ, data, err := worker.Read(rctx)
			if err != nil {
				finished <- "the session ended"
				return
			}
			if typ == websocket.MessageText {
				var e berth.TerminalEnd
				if json.Unmarshal(data, &e) == nil {
					mu.Lock()
					end = &e
					mu.Unlock()
				}
				continue
			}
			if err := browser.Write(rctx, typ, data); err != nil {
				finished <- "closed by the person"
				return
			}
		}
	}()
	tick := time.NewTicker(terminalRecheck)
	defer tick.Stop()
	reason := ""
	saved := 0
wait:
	for {
		select {
		case reason = <-finished:
			break wait
		case <-s.closing:
			reason = "the server is shutting down"
			break wait
		case <-tick.C:
			mu.Lock()
			quiet := time.Since(lastInput)
			typed, cut := append([]byte(nil), transcript...), truncated
			mu.Unlock()
			// Saved as it grows: a server that dies loses at most a tick of it.
			if len(typed) != saved {
				if err := s.store.SaveTranscript(rctx, id, typed, cut); err == nil {
					saved = len(typed)
				}
			}
			if quiet > idle {
				reason = fmt.Sprintf("idle for %s", idle.Round(time.Second))
				break wait
			}
			// A revoked token, an ended session, a removed role or a
			// grant that ran out ends it.
			p, err := s.identify(c)
			if err != nil {
				reason = "access revoked"
				break wait
			}
			if ok, err := access(p); err == nil && !ok {
				reason = "access revoked or expired"
				break wait
			}
		}
	}
	if reason != "the session ended" {
		// The command still runs: closing its relay ends it on the worker.
		_ = worker.Close(websocket.StatusNormalClosure, clip(reason, 120))
	}
	mu.Lock()
	defer mu.Unlock()
	var exit *int
	if end != nil && end.Exit != nil && reason == "the session ended" {
		exit, reason = end.Exit, "exited"
	}
	s.closeTerminal(browser, id, transcript, truncated, exit, reason)
}

// closeTerminal records the end, then tells the person why the session
// ended and closes their socket: what they see is already in the record.
func (s *Server) closeTerminal(browser *websocket.Conn, id string, transcript []byte, truncated bool, exit *int, reason string) {
	s.endTerminal(id, transcript, truncated, exit, reason)
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	msg, _ := json.Marshal(berth.TerminalEnd{Exit: exit, Reason: reason})
	_ = browser.Write(wctx, websocket.MessageText, msg)
	_ = browser.Close(websocket.StatusNormalClosure, clip(reason, 120))
}

func (s *Server) endTerminal(id string, transcript []byte, truncated bool, exit *int, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.EndTerminalSession(ctx, id, transcript, truncated, exit, reason); err != nil {
		s.log.Error("terminal session end not recorded", "session", id, "error", err)
		return
	}
	// The audit log says it too; the session's record keeps what was typed.
	ts, err := s.store.TerminalSession(ctx, id)
	if err != nil {
		s.log.Error("terminal session not read back", "session", id, "error", err)
		return
	}
	outcome := reason
	if exit != nil {
		outcome = "exit " + strconv.Itoa(*exit)
	}
	ev := store.AuditEvent{Actor: ts.User, Action: "terminal", Target: clip(ts.Subject, 191), Outcome: clip(outcome, 32),
		Detail: fmt.Sprintf("session %s on host %s: %s (%d bytes typed; GET /api/v1/terminals?instance=%s has them)", id, ts.Host,
			ts.Command, len(transcript), ts.Instance)}
	if err := s.store.Audit(ctx, ev); err != nil {
		s.log.Error("audit not recorded", "error", err, "action", "terminal")
	}
}

// workerTerminal: GET /internal/terminals/:id, where the worker running a
// session dials back. It proves itself with berth.TerminalRelayToken under
// the key every server and worker derives from the payload key file; the
// session must be waiting for it here.
func (s *Server) workerTerminal(c *gin.Context) {
	id := c.Param("id")
	tok, _ := strings.CutPrefix(c.GetHeader("Authorization"), "BerthTerminal ")
	want := berth.TerminalRelayToken(s.cfg.TerminalKey, id)
	if len(s.cfg.TerminalKey) == 0 || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) != 1 {
		s.fail(c, &berth.Error{Code: berth.EUnauthorized, Message: "not a worker of this deployment"})
		return
	}
	ch, ok := s.terminals.claim(id)
	if !ok {
		s.fail(c, &berth.Error{Code: berth.ENotFound, Message: "no terminal session waits for " + id + " on this server"})
		return
	}
	ws, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	rc := relayConn{ws: ws, done: make(chan struct{})}
	ch <- rc
	// The handler must not return while the session uses the socket.
	<-rc.done
}

// listTerminals: GET /api/v1/terminals?instance=, the recorded sessions
// (with what was typed) of the tenants the caller audits.
func (s *Server) listTerminals(c *gin.Context) {
	p := principalOf(c)
	var ids []uint // nil: every tenant's
	if !p.has(0, berth.RoleReleaseManager) {
		ids = []uint{}
		for _, b := range p.Bindings {
			if b.TenantID != 0 && (b.Role == berth.RoleReleaseManager || b.Role == berth.RoleAdmin) {
				ids = append(ids, b.TenantID)
			}
		}
	}
	sessions, err := s.store.TerminalSessions(c.Request.Context(), ids, c.Query("instance"), 200)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"sessions": sessions})
}

func joinRoles(rs []berth.Role) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return strings.Join(out, " or ")
}

// terminalData is the terminal page.
type terminalData struct {
	Instance, Host, Subject, Idle string
	ServiceID                     uint
}

// terminalPage: GET /instances/:name/terminal, xterm.js wired to
// openTerminal. xterm.js writes its own style element, so this page's
// policy allows inline styles; scripts stay this site's only.
func (s *Server) terminalPage(c *gin.Context) {
	inst, sc, h, err := s.instanceContext(c.Request.Context(), c.Param("name"))
	if err != nil {
		s.renderError(c, err)
		return
	}
	c.Writer.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	s.render(c, http.StatusOK, "terminal", "Terminal "+inst.Name, "grid", terminalData{Instance: inst.Name, Host: h.Name,
		Subject: serviceSubject(sc), Idle: s.cfg.TerminalIdle.String(), ServiceID: sc.Service.ID})
}

// instanceContext reads a live instance with its service's context and its host.
func (s *Server) instanceContext(ctx context.Context, name string) (*store.Instance, *store.ServiceContext, *store.Host, error) {
	inst, err := s.store.LiveInstanceByName(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	sc, err := s.store.ServiceContextByID(ctx, inst.ServiceID)
	if err != nil {
		return nil, nil, nil, err
	}
	h, err := s.store.Host(ctx, inst.HostID)
	if err != nil {
		return nil, nil, nil, err
	}
	return inst, sc, h, nil
}

// serviceSubject is tenant/env/app/service.
func serviceSubject(sc *store.ServiceContext) string {
	return sc.Tenant.Name + "/" + sc.Environment.Name + "/" + sc.Application.Name + "/" + sc.Service.Name
}

type terminalAccessRequest struct {
	Minutes int    `json:"minutes"`
	Reason  string `json:"reason"`
}

// maxAccessMinutes bounds a terminal access grant: a working day.
const maxAccessMinutes = 8 * 60

// requestTerminalAccess: POST /api/v1/instances/:name/terminal/access with
// {minutes, reason}. In production a developer asks for a time-boxed
// terminal into the instance's service; it is an approval like a release's
// (release managers or approvers decide, not the asker; an hour to decide),
// and the grant runs for its minutes from the approval. One request per
// person and service at a time.
func (s *Server) requestTerminalAccess(c *gin.Context) {
	ctx := c.Request.Context()
	var req terminalAccessRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Minutes < 1 || req.Minutes > maxAccessMinutes || len(req.Reason) > 1000 {
		s.fail(c, badRequest(fmt.Sprintf("minutes must be between 1 and %d, and the reason at most 1000 characters", maxAccessMinutes)))
		return
	}
	inst, sc, _, err := s.instanceContext(ctx, c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !sc.Environment.Production() {
		s.fail(c, &berth.Error{Code: berth.EConflict, Message: fmt.Sprintf("%s/%s is not production: a developer opens terminals there without asking",
			sc.Tenant.Name, sc.Environment.Name)})
		return
	}
	subject, who := serviceSubject(sc), actor(c)
	input, _ := json.Marshal(store.TerminalAccessInput{Minutes: req.Minutes, Reason: req.Reason})
	wfID := "terminal-access/" + subject + "/" + who
	run := &store.Run{Kind: berth.KindTerminalAccess, WorkflowID: wfID, TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID,
		Subject: subject, StartedBy: who, Input: string(input)}
	if err := s.store.CreateRun(ctx, run, wfID); err != nil {
		s.fail(c, err)
		return
	}
	summary := fmt.Sprintf("terminal access to %s for %d min for %s (from instance %s)", subject, req.Minutes, who, inst.Name)
	if req.Reason != "" {
		summary += ": " + req.Reason
	}
	in := workflows.ApprovalGateInput{RunID: run.ID, Approval: berth.ApprovalRequest{Step: "approval",
		Roles: []berth.Role{berth.RoleReleaseManager, berth.RoleApprover}, Quorum: 1, SeparateDuties: true,
		RequireComment: sc.Environment.RequireComment, StartedBy: who, TenantID: sc.Tenant.ID, EnvironmentID: sc.Environment.ID,
		Timeout: time.Hour, OnTimeout: berth.OnTimeoutFail, Summary: summary}}
	if err := s.startRun(ctx, run, workflows.ApprovalGateName, in); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, runStarted{RunID: run.ID, URL: runURL(run.ID), WorkflowID: wfID})
}
