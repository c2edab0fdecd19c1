package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// tinyShell is the sample image's shell (it has no /bin/sh).
const tinyShell = "/sampleapp -sh"

// dialTerminal opens a terminal on an instance as a person's browser would
// (their session cookie, this site's origin).
func (hs *harness) dialTerminal(t testing.TB, p *person, instance, cmd string) (*websocket.Conn, int, error) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(hs.apiURL, "http") + "/api/v1/instances/" + instance + "/terminal?cmd=" + url.QueryEscape(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: p.client, HTTPHeader: http.Header{"Origin": {hs.apiURL}}})
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	return ws, code, err
}

// terminalEnd reads a session until it ends, and returns its output and
// how it ended.
func terminalEnd(t testing.TB, ws *websocket.Conn, within time.Duration) (string, berth.TerminalEnd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var out strings.Builder
	for {
		typ, data, err := ws.Read(ctx)
		require.NoError(t, err, "the session ends with its end message; output so far: %q", out.String())
		if typ == websocket.MessageBinary {
			out.Write(data)
			continue
		}
		var e berth.TerminalEnd
		require.NoError(t, json.Unmarshal(data, &e))
		return out.String(), e
	}
}

// typeKeys presses keys as a keyboard does: each a keyDown that carries its
// text, then a keyUp (chromedp's SendKeys adds a separate char event, which
// xterm.js takes as a second keystroke).
func typeKeys(keys string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range keys {
			evs := kb.Encode(r)
			var down, up *input.DispatchKeyEventParams
			for _, e := range evs {
				switch e.Type {
				case kb.KeyDown:
					down = e
				case kb.KeyUp:
					up = e
				case kb.KeyChar:
					if down != nil {
						down.Text, down.UnmodifiedText = e.Text, e.UnmodifiedText
					}
				}
			}
			for _, e := range []*input.DispatchKeyEventParams{down, up} {
				if e == nil {
					continue
				}
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *e); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func typeInto(t testing.TB, ws *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, []byte(s)))
}

// A terminal runs a command with a TTY in an instance through the region's
// worker: in Chromium (xterm.js) a developer types into it and sees the
// output and the exit code. Outside production a developer may open one;
// in production only a release manager, or a developer with an approved,
// time-boxed access request until it runs out. A session whose sign-in
// ends, or that stays idle, is closed; each is recorded with what was
// typed, also when its server dies mid-session.
func TestTerminal(t *testing.T) {
	hs := needHarness(t)
	devApps := hs.newEnv(t, "term")
	tenant := hs.tenant + "-term"
	prodTenant := hs.tenant + "-termp"
	prodApps := hs.newEnvWith(t, prodTenant, map[string]any{"name": "prod", "approveReleases": false})
	hs.deployOK(t, devApps, "shop", webCompose("web", 1, ""))
	hs.deployOK(t, prodApps, "shop", webCompose("web", 1, ""))
	devInst := hs.app(t, devApps, "shop").Services[0].Instances[0].Name
	prodInst := hs.app(t, prodApps, "shop").Services[0].Instances[0].Name

	dev := hs.newPerson(t, tenant+"-dev", tenant, berth.RoleDeveloper)
	code := hs.apiJSON(t, "POST", "/api/v1/users/"+dev.name+"/roles", map[string]string{"tenant": prodTenant, "role": string(berth.RoleDeveloper)}, nil)
	require.Less(t, code, 300, "a developer of the production tenant too")
	rm := hs.newPerson(t, prodTenant+"-rm", prodTenant, berth.RoleReleaseManager)

	// In Chromium, through xterm.js.
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, "/instances/"+devInst+"/terminal")
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#term-form")))
	// Its script enables the button once it handles the form.
	waitJS(t, ctx, `!document.querySelector('#term-form button[type=submit]').disabled`, 10*time.Second)
	eval[bool](t, ctx, `(function(){document.getElementById('term-cmd').value = "`+tinyShell+`"; return true})()`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#term-form button[type=submit]`)))
	waitJS(t, ctx, `document.getElementById('term').dataset.state === "open" && document.querySelector('.xterm-rows') && document.querySelector('.xterm-rows').textContent.includes("$")`, 30*time.Second)
	do(t, ctx, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")), typeKeys("echo hi; exit 3"+kb.Enter))
	// xterm.js draws on the next animation frames: wait for them too.
	waitJS(t, ctx, `document.getElementById('term').dataset.exit === "3" && (function(){var r = document.querySelector('.xterm-rows').textContent;
		return r.includes("echo hi; exit 3") && r.replace("echo hi", "").includes("hi")})()`, 30*time.Second)
	rows := eval[string](t, ctx, `document.querySelector('.xterm-rows').textContent`)
	require.Contains(t, rows, "echo hi; exit 3", "the TTY echoes what was typed")
	require.Contains(t, strings.ReplaceAll(rows, "echo hi", ""), "hi", "and the command's output shows")
	require.Contains(t, eval[string](t, ctx, `document.getElementById('term-status').textContent`), "Exited with code 3")
	hs.screenshot(t, ctx, "terminal")
	// The terminal fits its box: on a phone too, without sideways scrolling.
	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#term-form")))
	noSideScroll(t, ctx, "terminal page")

	// A bad size is refused before anything starts or is recorded.
	var before struct{ Sessions []store.TerminalSession }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/terminals?instance="+devInst, nil, &before))
	for _, q := range []string{"cols=-5", "rows=0", "cols=x", "rows=9999"} {
		require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "GET", "/api/v1/instances/"+devInst+"/terminal?"+q, nil, nil), q)
	}
	var after struct{ Sessions []store.TerminalSession }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/terminals?instance="+devInst, nil, &after))
	require.Len(t, after.Sessions, len(before.Sessions), "a refused terminal leaves no record")

	// Production: a developer is refused, a release manager is not.
	_, code, err := hs.dialTerminal(t, dev, prodInst, tinyShell)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, code, "a developer gets no terminal in production")
	ws, _, err := hs.dialTerminal(t, rm, prodInst, tinyShell)
	require.NoError(t, err)
	typeInto(t, ws, "echo from prod; exit 0\r")
	out, end := terminalEnd(t, ws, 30*time.Second)
	require.Contains(t, out, "from prod")
	require.NotNil(t, end.Exit)
	require.Zero(t, *end.Exit)

	// Idle: nothing typed for the harness's 10 s closes the session.
	ws, _, err = hs.dialTerminal(t, rm, prodInst, tinyShell)
	require.NoError(t, err)
	_, end = terminalEnd(t, ws, 30*time.Second)
	require.Contains(t, end.Reason, "idle")

	// In production a developer may ask for time-boxed access; a release
	// manager approves it, and until it runs out the developer gets a
	// terminal, which closes when it does.
	var asked runStartedBody
	code, msg := dev.post(t, "/api/v1/instances/"+prodInst+"/terminal/access", map[string]any{"minutes": 30, "reason": "look at a stuck job"}, &asked)
	require.Equal(t, http.StatusAccepted, code, msg)
	approval := hs.waitApproval(t, asked.RunID)
	require.Contains(t, approval.Summary, "terminal access to "+prodTenant+"/prod/shop/web for 30 min")
	code, msg = dev.post(t, decidePath(approval.ID), map[string]string{"decision": "approve", "comment": "mine"}, nil)
	require.Equal(t, http.StatusForbidden, code, "the asker does not approve their own access: %s", msg)
	code, msg = rm.post(t, decidePath(approval.ID), map[string]string{"decision": "approve", "comment": "ok for the job"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	require.Equal(t, berth.RunSucceeded, hs.waitRun(t, asked.RunID).Status)
	ws, _, err = hs.dialTerminal(t, dev, prodInst, tinyShell)
	require.NoError(t, err, "an approved request opens the terminal")
	typeInto(t, ws, "echo granted\r")
	// The grant runs out (its approval moved 31 minutes back).
	require.NoError(t, hs.store.DB().Model(&store.Run{}).Where("id = ?", asked.RunID).
		Update("finished_at", time.Now().Add(-31*time.Minute)).Error)
	out, end = terminalEnd(t, ws, 15*time.Second)
	require.Contains(t, out, "granted")
	require.Equal(t, "access revoked or expired", end.Reason)
	_, code, err = hs.dialTerminal(t, dev, prodInst, tinyShell)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, code, "an expired grant opens nothing")

	// Signing out closes the person's open terminal.
	ws, _, err = hs.dialTerminal(t, dev, devInst, tinyShell)
	require.NoError(t, err)
	typeInto(t, ws, "echo still here\r")
	code, _ = dev.post(t, "/logout", nil, nil)
	require.Less(t, code, 400)
	out, end = terminalEnd(t, ws, 15*time.Second)
	require.Equal(t, "access revoked", end.Reason, "end %+v, output %q", end, out)

	// Every session is in the record, with what was typed and how it ended.
	var recs struct{ Sessions []store.TerminalSession }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/terminals?instance="+devInst, nil, &recs))
	require.Len(t, recs.Sessions, 2)
	revoked, typed := recs.Sessions[0], recs.Sessions[1]
	require.Equal(t, dev.name, typed.User)
	require.Equal(t, tinyShell, typed.Command)
	require.Contains(t, typed.Transcript, "echo hi; exit 3")
	require.NotNil(t, typed.ExitCode)
	require.Equal(t, 3, *typed.ExitCode)
	require.Equal(t, "exited", typed.EndReason)
	require.NotNil(t, typed.EndedAt)
	require.Equal(t, "access revoked", revoked.EndReason)
	require.Contains(t, revoked.Transcript, "echo still here")
	var audit struct{ Events []store.AuditEvent }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?action=terminal&actor="+dev.name, nil, &audit))
	outcomes := map[string]bool{}
	for _, ev := range audit.Events {
		outcomes[ev.Outcome] = true
	}
	require.True(t, outcomes["exit 3"] && outcomes["access revoked"], "the audit log has each session's end: %v", outcomes)
	var rmView struct{ Sessions []store.TerminalSession }
	code, _ = rm.send(t, "GET", "/api/v1/terminals", nil, &rmView)
	require.Equal(t, http.StatusOK, code)
	for _, s := range rmView.Sessions {
		require.Equal(t, prodInst, s.Instance, "a tenant's release manager reads only its tenant's sessions")
	}
	require.Len(t, rmView.Sessions, 3, "the release manager's two and the developer's granted one")

	// A server SIGKILLed mid-session: the worker's relay breaks, and the
	// reconciler ends the session's record, with what was typed up to its
	// last save.
	ws, _, err = hs.dialTerminal(t, rm, prodInst, tinyShell)
	require.NoError(t, err)
	typeInto(t, ws, "echo lost soon\r")
	openSession := func() *store.TerminalSession {
		var v struct{ Sessions []store.TerminalSession }
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/terminals?instance="+prodInst, nil, &v))
		for i := range v.Sessions {
			if strings.Contains(v.Sessions[i].Transcript, "echo lost soon") {
				return &v.Sessions[i]
			}
		}
		return nil
	}
	require.Eventually(t, func() bool { return openSession() != nil }, 15*time.Second, 200*time.Millisecond, "the transcript is saved as it grows")
	hs.restartServerHard(t)
	require.Eventually(t, func() bool {
		hs.reconcile(t)
		s := openSession()
		return s != nil && s.EndedAt != nil
	}, 60*time.Second, time.Second, "the reconciler ends the record of a session whose server died")
	s := openSession()
	require.Equal(t, "the server relaying it stopped", s.EndReason)
	require.Nil(t, s.ExitCode)
}
