// berth terminal: xterm.js (vendored) over a WebSocket to the API, which
// relays to the worker holding the Docker exec. Binary frames carry bytes;
// text frames a resize (to the API) or how the session ended (from it).
(function () {
  "use strict";
  var el = document.getElementById("term");
  var form = document.getElementById("term-form");
  if (!el || !form || !window.Terminal) { return; }
  var status = document.getElementById("term-status");
  var term = null, ws = null;
  var enc = new TextEncoder();
  function say(text, state) { status.textContent = text; el.dataset.state = state; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (ws) { ws.close(); ws = null; }
    if (!term) {
      term = new window.Terminal({ cols: 100, rows: 30, scrollback: 2000 });
      term.open(el);
      // Fit the terminal to its box (and the window), where the addon is loaded.
      if (window.FitAddon) {
        var fit = new window.FitAddon.FitAddon();
        term.loadAddon(fit);
        fit.fit();
        window.addEventListener("resize", function () { fit.fit(); });
      }
      term.onData(function (d) { if (ws && ws.readyState === 1) { ws.send(enc.encode(d)); } });
      term.onResize(function (s) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify({ cols: s.cols, rows: s.rows })); } });
    }
    term.reset();
    delete el.dataset.exit;
    var cmd = form.elements.cmd.value.trim() || "/bin/sh";
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var url = proto + "//" + location.host + el.dataset.ws + "?cmd=" + encodeURIComponent(cmd) +
      "&cols=" + term.cols + "&rows=" + term.rows;
    var sock = new WebSocket(url);
    ws = sock;
    sock.binaryType = "arraybuffer";
    say("Connecting…", "connecting");
    sock.onopen = function () { say("Connected: " + cmd, "open"); term.focus(); };
    sock.onmessage = function (m) {
      if (typeof m.data !== "string") { term.write(new Uint8Array(m.data)); return; }
      var e = {};
      try { e = JSON.parse(m.data); } catch (x) { return; }
      if (e.exit !== undefined && e.exit !== null) {
        el.dataset.exit = String(e.exit);
        say("Exited with code " + e.exit + ".", "ended");
      } else if (e.reason) {
        say("Closed: " + e.reason + ".", "ended");
      }
    };
    sock.onclose = function (ev) {
      if (el.dataset.state !== "ended") { say("Closed" + (ev.reason ? ": " + ev.reason : "") + ".", "ended"); }
      if (ws === sock) { ws = null; }
    };
  });
  // The button stays disabled until here: a click before this script ran
  // would submit the form as a plain GET and reload the page.
  var open = form.querySelector("button[type=submit]");
  open.disabled = false;
  open.removeAttribute("title");
})();
