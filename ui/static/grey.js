// berth UI: the service page's grey release panel. It reads the release's
// state and the load balancer's canary-vs-stable figures every two seconds
// while the tab is visible, and sends promote / pause / resume / abort and
// new grey releases (YAML) to the API with the session's CSRF token. All
// text is set with textContent: nothing from the server is parsed as HTML.
(function () {
  "use strict";
  var box = document.getElementById("grey");
  if (!box) { return; }
  var id = box.dataset.service;
  var live = document.getElementById("grey-live");
  var actions = box.querySelector(".grey-actions");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";
  var base = "/api/v1/services/" + id + "/grey";

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  function post(url, type, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": type, "X-CSRF-Token": csrf, "Accept": "application/json" }, body: body })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
      });
  }

  function render(v) {
    live.textContent = "";
    var s = v.state;
    if (!s) {
      live.appendChild(el("p", v.liveNote || "The grey release's state could not be read.", "muted"));
      actions.hidden = true;
      return;
    }
    var head = el("p", "", "meta");
    head.appendChild(el("b", s.phase));
    head.appendChild(document.createTextNode(" · " + s.stableImage + " → " + s.image + " · run "));
    var a = el("a", "#" + v.runId); a.href = "/runs/" + v.runId; head.appendChild(a);
    live.appendChild(head);
    if (s.outcome) { live.appendChild(el("p", "Ended: " + s.outcome + (s.reason ? " — " + s.reason : ""))); }
    var dl = el("dl", undefined, "grey-facts");
    function fact(k, val) { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", val)); }
    var total = (s.steps || []).length;
    fact("Step", s.phase === "done" ? "finished" : Math.min(s.step + 1, total) + " of " + total + (s.current ? ": " + s.current : ""));
    fact("Canary weight", s.weight + "%");
    fact("Routes", (s.routes || []).length ? s.routes.map(function (r) { return r.kind + " " + r.name + "=" + r.value; }).join(", ") : "none");
    fact("Canary", (s.canaries || []).join(", ") || "none");
    fact("Stable", (s.stable || []).length + " instance(s)");
    if (s.awaitingApproval) {
      dl.appendChild(el("dt", "Approval"));
      var dd = el("dd", "waiting; it is decided in the ");
      var inbox = el("a", "inbox"); inbox.href = "/inbox"; dd.appendChild(inbox);
      dd.appendChild(document.createTextNode(" (promote cannot skip it; abort can)"));
      dl.appendChild(dd);
    } else if (s.paused) { fact("Paused", "yes: resume, promote or abort"); }
    if (s.deadlineAt && v.active) { fact("Progress deadline", new Date(s.deadlineAt).toISOString().slice(11, 19) + " UTC (aborts then unless a step finishes or someone acts)"); }
    live.appendChild(dl);
    if (v.active) {
      var t = el("table", undefined, "runs");
      var hr = el("tr");
      ["", "Servers", "Weight (sum)", "Requests", "5xx", "5xx share", "Avg ms"].forEach(function (h) { var th = el("th", h); th.scope = "col"; hr.appendChild(th); });
      var th = el("thead"); th.appendChild(hr); t.appendChild(th);
      var tb = el("tbody");
      [["Canary", v.canary], ["Stable", v.stable]].forEach(function (row) {
        var f = row[1] || {}, tr = el("tr");
        [row[0], f.servers, f.weight, f.requests, f.errors5xx, pct(f.errorRate || 0), f.avgMs].forEach(function (c) { tr.appendChild(el("td", String(c === undefined ? 0 : c))); });
        tb.appendChild(tr);
      });
      t.appendChild(tb);
      live.appendChild(el("h3", "Canary vs stable (HAProxy counters since its last reload)"));
      live.appendChild(t);
      var w = windowed(v);
      if (w) { live.appendChild(el("p", w, "grey-window")); }
      if (v.liveNote) { live.appendChild(el("p", v.liveNote, "muted")); }
    }
    (s.analyses || []).forEach(function (r) {
      live.appendChild(el("p", "Analysis at step " + (r.step + 1) + ": " + r.verdict + " — " + r.reason +
        " (canary " + r.canaryRequests + " requests, " + pct(r.canaryErrorRate) + " 5xx; stable " + pct(r.stableErrorRate) + ")"));
    });
    actions.hidden = !v.active;
    actions.querySelector('[data-grey="promote"]').hidden = !!s.awaitingApproval;
    actions.querySelector('[data-grey="resume"]').hidden = !s.paused || !!s.awaitingApproval;
    actions.querySelector('[data-grey="pause"]').hidden = s.paused;
  }

  // The counters run since HAProxy's last reload; the difference between
  // two reads is what the canary and stable served just now.
  var prev = null;
  function windowed(v) {
    var now = Date.now(), cur = { t: now, canary: v.canary || {}, stable: v.stable || {} };
    var last = prev; prev = cur;
    if (!last) { return ""; }
    var secs = (now - last.t) / 1000, parts = [];
    var reset = false;
    ["canary", "stable"].forEach(function (k) {
      var dr = (cur[k].requests || 0) - (last[k].requests || 0), de = (cur[k].errors5xx || 0) - (last[k].errors5xx || 0);
      if (dr < 0 || de < 0) { reset = true; return; }
      parts.push(k + " " + (dr / secs).toFixed(1) + " req/s" + (dr > 0 ? ", " + pct(de / dr) + " 5xx" : ""));
    });
    if (reset || secs <= 0) { return ""; }
    return "Over the last " + secs.toFixed(0) + " s: " + parts.join("; ") + ".";
  }

  var timer = null;
  function load() {
    fetch(base + "?live=1", { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    }).then(function (r) {
      if (r.status === 404) {
        live.textContent = "";
        live.appendChild(el("p", "No grey release yet. Start one below: the canary runs beside the stable instances and takes the traffic the steps give it.", "muted"));
        actions.hidden = true;
        return;
      }
      if (r.status !== 200) {
        live.textContent = (r.body.error && r.body.error.message) || "The grey release could not be read (" + r.status + ").";
        return;
      }
      render(r.body);
    }).catch(function () { live.textContent = "berth did not answer; retrying."; });
  }
  function start() { if (!timer) { load(); timer = setInterval(load, 2000); } }
  function stop() { if (timer) { clearInterval(timer); timer = null; } }
  document.addEventListener("visibilitychange", function () { if (document.hidden) { stop(); } else { start(); } });
  start();

  actions.querySelectorAll("button[data-grey]").forEach(function (b) {
    b.addEventListener("click", function () {
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) { return; }
      var out = actions.querySelector(".result");
      post(base + "/" + b.dataset.grey, "application/json", "{}").then(function (r) {
        out.textContent = r.status < 300 ? "Sent: " + b.dataset.grey + "." : (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
        load();
      });
    });
  });

  var form = box.querySelector("form.grey-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = form.querySelector(".result");
      post(form.action, "application/yaml", form.querySelector("textarea").value).then(function (r) {
        if (r.status === 202) {
          out.textContent = "Started: run #" + r.body.runId + ".";
          load();
          return;
        }
        out.textContent = (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
      });
    });
  }
})();

// Clone form: posts the fields as JSON and links the deploy run it started.
(function () {
  "use strict";
  var form = document.querySelector("form.clone-form");
  if (!form) { return; }
  var meta = document.querySelector('meta[name="csrf-token"]');
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var out = form.querySelector(".result");
    var body = { name: form.elements.name.value.trim(), image: form.elements.image.value.trim(),
      replicas: Number(form.elements.replicas.value) || 0 };
    fetch(form.action, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta ? meta.content : "", "Accept": "application/json" },
      body: JSON.stringify(body) }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        out.textContent = "";
        if (r.status === 202 || r.status === 200) {
          var a = document.createElement("a");
          a.href = "/runs/" + j.runId; a.textContent = "deploy run #" + j.runId;
          out.appendChild(document.createTextNode("Cloning: ")); out.appendChild(a);
          return;
        }
        out.textContent = (j.error && j.error.message) || ("Request failed (" + r.status + ")");
      });
    }).catch(function () { out.textContent = "berth did not answer; check your connection and try again."; });
  });
})();
