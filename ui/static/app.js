// berth UI: progressive enhancement only. Pages work as plain HTML; this
// adds in-place decisions and live run updates. No build step, no libraries.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";

  // send posts JSON, or a FormData as multipart (the browser then sets the
  // content type with its boundary).
  function send(url, body, method) {
    var form = body instanceof FormData;
    var headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
    if (!form) { headers["Content-Type"] = "application/json"; }
    return fetch(url, {
      method: method || "POST", credentials: "same-origin", headers: headers,
      body: form ? body : JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  function word(state) { return state === "approved" ? "Approved" : state === "rejected" ? "Rejected" : state; }

  // Approve / reject in place, with the comment rule checked before sending.
  document.querySelectorAll("form.decide").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var btn = ev.submitter;
      var decision = btn && btn.value === "reject" ? "reject" : "approve";
      var ta = form.querySelector("textarea");
      var err = form.querySelector(".field-error");
      var out = form.querySelector(".result");
      var comment = ta.value.trim();
      function fieldError(msg) {
        err.textContent = msg; err.hidden = false;
        ta.setAttribute("aria-invalid", "true"); ta.focus();
      }
      err.hidden = true; ta.removeAttribute("aria-invalid"); out.textContent = "";
      if (ta.dataset.required && !comment) { fieldError("A comment is required here: say why you " + decision + "."); return; }
      if (btn && btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) { return; }
      var buttons = form.querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      send(form.action, { decision: decision, comment: comment }).then(function (r) {
        if (r.status === 200) {
          var a = r.body.approval;
          var mine = a.decisions[a.decisions.length - 1];
          out.textContent = r.body.closed
            ? word(a.state) + " by " + mine.approver + ". The run resumes now."
            : "Your approval is recorded: " + a.quorumText + ".";
          ta.disabled = true;
          return;
        }
        buttons.forEach(function (b) { b.disabled = false; });
        var msg = (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
        if (r.body.error && r.body.error.code === "comment_required") { fieldError(msg); return; }
        out.textContent = msg;
        if (r.status === 409) { buttons.forEach(function (b) { b.disabled = true; }); }
      }).catch(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        out.textContent = "berth did not answer; check your connection and try again.";
      });
    });
  });

  // Other actions (cancel, retry) post to the API in place.
  function bindApiForms(root) {
    root.querySelectorAll("form.api-form").forEach(bindApiForm);
  }
  function bindApiForm(form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
      var out = form.querySelector(".result");
      send(form.action, {}).then(function (r) {
        // A retry answers with the new run: go there.
        if (r.status < 300 && form.dataset.follow && r.body.runId) {
          out.textContent = "Run " + r.body.runId + " started; opening it…";
          window.location.assign("/runs/" + encodeURIComponent(r.body.runId));
          return;
        }
        out.textContent = r.status < 300 ? "Requested: the run is being " + (r.body.status || "changed") + "."
          : (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
      });
    });
  }
  bindApiForms(document);

  // Change the application (service page): Preview asks for the plan alone
  // (dryRun) and shows it; Update starts the run and opens its page. The
  // answer is set as text, never parsed as markup.
  // Run forms (scale, release, roll back): the fields go to the API as JSON
  // (numbers as numbers, empty fields left out); a started run opens its
  // page, and a refusal shows the API's message beside the form.
  document.querySelectorAll("form.run-form").forEach(function (form) {
    var err = form.querySelector("[role=alert]");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
      // A form that serves several targets (the deploy form's environments)
      // names its URL in a select marked data-action, which is not sent.
      var target = form.querySelector("select[data-action]");
      var action = target ? target.value : form.action;
      var body;
      if (form.enctype === "multipart/form-data") {
        // A package upload: the fields as they are, the file part last, as
        // the API wants it; the browser sets the boundary.
        var file = form.querySelector("input[type=file]");
        if (!file.files.length) {
          err.textContent = "Choose a package file (.tar.gz, .zip, .war or .jar).";
          err.hidden = false; file.focus();
          return;
        }
        body = new FormData();
        Array.prototype.forEach.call(form.elements, function (f) {
          if (!f.name || f.type === "file" || (f.type === "checkbox" && !f.checked) || f.value.trim() === "") { return; }
          body.append(f.name, f.value.trim());
        });
        body.append(file.name, file.files[0]);
      } else {
        body = {};
        Array.prototype.forEach.call(form.elements, function (f) {
          if (!f.name || f.value.trim() === "") { return; }
          body[f.name] = f.type === "number" || f.hasAttribute("data-number") ? Number(f.value) : f.value.trim();
        });
      }
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      err.hidden = true; err.textContent = "";
      send(action, body, form.dataset.method).then(function (r) {
        button.disabled = false;
        if ((r.status === 202 || r.status === 200) && r.body.runId) {
          window.location.assign("/runs/" + r.body.runId);
          return;
        }
        // An action that starts no run (deleting an image) shows its result
        // by reloading the page.
        if (r.status < 300 && form.dataset.reload) {
          window.location.reload();
          return;
        }
        err.textContent = (r.body.error && r.body.error.message) || r.body.message || ("Request failed (" + r.status + ")");
        err.hidden = false;
      }).catch(function () {
        button.disabled = false;
        err.textContent = "berth did not answer; check your connection and try again.";
        err.hidden = false;
      });
    });
  });

  // Image fields offer the tenant's catalogue, read once when first used.
  document.querySelectorAll("datalist[data-src]").forEach(function (list) {
    var input = document.querySelector('input[list="' + list.id + '"]');
    if (!input) { return; }
    input.addEventListener("focus", function () {
      if (list.dataset.loaded) { return; }
      list.dataset.loaded = "1";
      fetch(list.dataset.src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { versions: [] }; })
        .then(function (cat) {
          (cat.versions || []).forEach(function (v) {
            var o = document.createElement("option");
            o.value = v.image;
            list.appendChild(o);
          });
        }).catch(function () { /* the field still takes any image */ });
    });
  });

  var upd = document.querySelector("form.update-form");
  if (upd) { bindUpdateForm(upd); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  // changeText words one service's change as the approval summary does.
  function changeText(c) {
    var t = c.kind;
    if (c.kind === "spec") { t += " (" + (c.fields || []).join(", ") + "), " + Math.min(c.fromReplicas, c.toReplicas) + " instance(s) replaced"; }
    if (c.kind === "image") { t += " " + c.fromImage + " → " + c.toImage; }
    if (c.kind === "added") { t += ": " + c.toReplicas + " × " + c.toImage; }
    if (c.kind === "removed") { t += ": " + c.fromReplicas + " instance(s) stop"; }
    if (c.kind !== "added" && c.kind !== "removed" && c.fromReplicas !== c.toReplicas) { t += ", replicas " + c.fromReplicas + " → " + c.toReplicas; }
    return t;
  }
  function bindUpdateForm(form) {
    var ta = form.elements.compose, err = form.querySelector(".field-error"), out = form.querySelector(".result"), plan = form.querySelector(".update-plan");
    function clear() { err.hidden = true; err.textContent = ""; ta.removeAttribute("aria-invalid"); out.textContent = ""; }
    function render(p) {
      plan.textContent = "";
      plan.appendChild(el("h3", "Plan: version " + p.fromVersion + " → a new version, " + p.batchSize + " instance(s) at a time"));
      if (p.message) { plan.appendChild(el("p", p.message, "notice")); }
      var ul = el("ul", undefined, "changes");
      (p.changes || []).forEach(function (c) {
        var li = el("li", undefined, "change");
        li.dataset.service = c.service; li.dataset.kind = c.kind;
        li.appendChild(el("b", c.service));
        li.appendChild(document.createTextNode(": " + changeText(c)));
        ul.appendChild(li);
      });
      plan.appendChild(ul);
      if (!p.diff) { plan.appendChild(el("p", "The file is the same as version " + p.fromVersion + ".", "muted")); return; }
      // Classed as the versions' diffs are on the server, so both read alike.
      var pre = el("pre", undefined, "diff");
      pre.setAttribute("aria-label", "Changes to the compose file");
      pre.tabIndex = 0;
      p.diff.replace(/\n$/, "").split("\n").forEach(function (l) {
        var cls = /^(@@|---|\+\+\+)/.test(l) ? "hunk" : l[0] === "+" ? "add" : l[0] === "-" ? "del" : "ctx";
        pre.appendChild(el("span", l, cls));
        pre.appendChild(document.createTextNode("\n"));
      });
      plan.appendChild(pre);
    }
    // A plan shown for another text would mislead.
    ta.addEventListener("input", function () { plan.textContent = ""; clear(); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var dry = !(ev.submitter && ev.submitter.dataset.update);
      var buttons = form.querySelectorAll("button");
      clear();
      buttons.forEach(function (b) { b.disabled = true; });
      out.textContent = dry ? "Planning…" : "Starting the update…";
      send(form.getAttribute("action") + (dry ? "?dryRun=true" : ""),
        { compose: ta.value, batchSize: Number(form.elements.batchSize.value) || 0 }, "PUT").then(function (r) {
        if (r.status === 202 && r.body.runId) {
          out.textContent = "Run " + r.body.runId + " started; opening it…";
          window.location.assign("/runs/" + encodeURIComponent(r.body.runId));
          return;
        }
        buttons.forEach(function (b) { b.disabled = false; });
        out.textContent = "";
        if (r.status === 200) { render(r.body); return; }
        err.textContent = (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
        err.hidden = false;
        if (r.status === 400) { ta.setAttribute("aria-invalid", "true"); ta.focus(); }
      }).catch(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        out.textContent = "";
        err.textContent = "berth did not answer; check your connection and try again."; err.hidden = false;
      });
    });
  }

  // When an open run ends, the actions that now apply (retry, for one that
  // failed) come from the server, which knows the viewer's roles.
  function refreshActions() {
    var cur = document.querySelector("section.actions");
    if (!cur) { return; }
    fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("section.actions");
        if (!fresh) { return; }
        cur.replaceWith(fresh);
        bindApiForms(fresh);
      }).catch(function () { /* the page still works after a reload */ });
  }

  // Live run page: server-sent events, resumed with the last event id, and
  // closed while the tab is hidden so a background tab costs nothing.
  var state = document.getElementById("live-state");
  var live = document.getElementById("live");
  if (!state || !live || state.dataset.terminal === "true") { return; }
  var url = state.dataset.stream, es = null, lastId = "";
  function show(s, text) { state.dataset.state = s; state.textContent = text; }
  function connect() {
    if (es) { return; }
    es = new EventSource(url + (lastId ? "?last=" + encodeURIComponent(lastId) : ""));
    es.onopen = function () { show("live", "Live"); };
    es.onerror = function () { show("reconnecting", "Reconnecting…"); };
    es.addEventListener("run", function (e) {
      lastId = e.lastEventId || lastId;
      var d = JSON.parse(e.data);
      live.innerHTML = d.html; // rendered and escaped by the server's html/template
      document.body.dataset.runStatus = d.status;
      show("live", "Live");
    });
    es.addEventListener("end", function () {
      stop(); show("finished", "Finished");
      document.querySelectorAll(".actions .danger").forEach(function (b) { b.disabled = true; });
      refreshActions();
    });
  }
  function stop() { if (es) { es.close(); es = null; } }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); show("paused", "Paused while this tab is hidden"); }
    else if (state.dataset.state !== "finished") { connect(); }
  });
  if (!document.hidden) { connect(); } else { show("paused", "Paused while this tab is hidden"); }
})();

// Service page: live figures (inline SVG sparklines) and a log tail for each
// instance, polled from the JSON API every few seconds while the tab is
// visible. Log lines are added as text nodes, never as markup.
(function () {
  "use strict";
  var boxes = document.querySelectorAll(".live-inst[data-instance]");
  if (!boxes.length) { return; }
  var EVERY = 3000, KEEP = 40, MAX_LINES = 500;

  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }
  function errorText(r) {
    return (r.body && r.body.error && r.body.error.message) || ("berth answered " + r.status + "; reload the page to try again.");
  }
  // points draws series (numbers) into a polyline scaled to max.
  // One sample is drawn as a short level line, so a new chart is not blank.
  function points(series, max) {
    if (!series.length) { return ""; }
    if (series.length === 1) { series = [series[0], series[0]]; }
    var step = 120 / Math.max(KEEP - 1, 1), x0 = 120 - (series.length - 1) * step;
    return series.map(function (v, i) {
      var y = 31 - (max > 0 ? (v / max) * 29 : 0);
      return (x0 + i * step).toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
  }
  function draw(fig, a, b, text, fixedMax) {
    var max = fixedMax || Math.max.apply(null, a.concat(b || [], [1]));
    fig.querySelector("polyline.a").setAttribute("points", points(a, max));
    if (b) { fig.querySelector("polyline.b").setAttribute("points", points(b, max)); }
    fig.querySelector(".value").textContent = text;
  }

  boxes.forEach(function (box) {
    var name = box.dataset.instance, base = "/api/v1/instances/" + encodeURIComponent(name);
    var status = box.querySelector(".live-status"), log = box.querySelector(".log"), logStatus = box.querySelector(".log-status");
    var figs = {};
    box.querySelectorAll(".chart").forEach(function (f) { figs[f.dataset.metric] = f; });
    var h = { cpu: [], mem: [], rx: [], tx: [], rd: [], wr: [] }, prev = null, since = "", statsTimer = null, logTimer = null;

    function push(k, v) { h[k].push(v); if (h[k].length > KEEP) { h[k].shift(); } }
    function rate(cur, old, dt) { return dt > 0 && cur >= old ? (cur - old) / dt : 0; }

    function stats() {
      statsTimer = null;
      getJSON(base + "/stats").then(function (r) {
        if (r.status !== 200) {
          status.textContent = errorText(r); box.dataset.liveState = "error";
          return schedule("stats", EVERY * 3);
        }
        var s = r.body, at = Date.parse(s.at) / 1000;
        box.dataset.liveState = s.running ? "live" : "stopped";
        status.textContent = s.running ? "Live · sampled " + new Date(s.at).toISOString().slice(11, 19) + " UTC"
          : "The container is not running: no figures. The instance's state above says why.";
        push("cpu", s.cpuPercent || 0);
        push("mem", s.memoryBytes || 0);
        figs.mem.dataset.last = String(s.memoryBytes || 0);
        figs.cpu.dataset.last = String(s.cpuPercent || 0);
        if (prev) {
          var dt = at - prev.at;
          push("rx", rate(s.netRxBytes, prev.netRxBytes, dt)); push("tx", rate(s.netTxBytes, prev.netTxBytes, dt));
          push("rd", rate(s.blockReadBytes, prev.blockReadBytes, dt)); push("wr", rate(s.blockWriteBytes, prev.blockWriteBytes, dt));
        }
        prev = { at: at, netRxBytes: s.netRxBytes, netTxBytes: s.netTxBytes, blockReadBytes: s.blockReadBytes, blockWriteBytes: s.blockWriteBytes };
        draw(figs.cpu, h.cpu, null, (s.cpuPercent || 0).toFixed(1) + " %", Math.max(1, Math.max.apply(null, h.cpu) * 1.25));
        draw(figs.mem, h.mem, null, bytes(s.memoryBytes || 0) + (s.memoryLimit ? " of " + bytes(s.memoryLimit) : ""),
          Math.max.apply(null, h.mem.concat([1])) * 1.2);
        var last = function (k) { return h[k].length ? h[k][h[k].length - 1] : 0; };
        draw(figs.net, h.rx, h.tx, "in " + bytes(last("rx")) + "/s · out " + bytes(last("tx")) + "/s");
        draw(figs.blk, h.rd, h.wr, "read " + bytes(last("rd")) + "/s · write " + bytes(last("wr")) + "/s");
        schedule("stats", EVERY);
      }).catch(function () {
        status.textContent = "berth did not answer; check your connection. Trying again…";
        schedule("stats", EVERY * 3);
      });
    }

    function logs() {
      logTimer = null;
      getJSON(base + "/logs?tail=100" + (since ? "&since=" + encodeURIComponent(since) : "")).then(function (r) {
        if (r.status !== 200) {
          logStatus.textContent = errorText(r);
          return schedule("logs", EVERY * 3);
        }
        var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        (r.body.lines || []).forEach(function (l) {
          var line = document.createElement("span");
          line.className = "line " + (l.stream === "stderr" ? "stderr" : "stdout");
          var t = l.at ? new Date(l.at).toISOString().slice(11, 23) + " " : "";
          line.textContent = t + (l.stream === "stderr" ? "[err] " : "") + l.text + "\n";
          log.appendChild(line);
        });
        while (log.childNodes.length > MAX_LINES) { log.removeChild(log.firstChild); }
        if (stick) { log.scrollTop = log.scrollHeight; }
        if (r.body.next) { since = r.body.next; }
        logStatus.textContent = log.childNodes.length ? (r.body.truncated ? "Some lines were too long or too many and were cut. " : "") + "Following the log."
          : "The instance has written nothing yet; new lines appear here.";
        schedule("logs", EVERY);
      }).catch(function () {
        logStatus.textContent = "berth did not answer; check your connection. Trying again…";
        schedule("logs", EVERY * 3);
      });
    }

    function schedule(which, ms) {
      if (document.hidden) { return; }
      if (which === "stats" && !statsTimer) { statsTimer = setTimeout(stats, ms); }
      if (which === "logs" && !logTimer) { logTimer = setTimeout(logs, ms); }
    }
    function stop() {
      if (statsTimer) { clearTimeout(statsTimer); statsTimer = null; }
      if (logTimer) { clearTimeout(logTimer); logTimer = null; }
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { stop(); status.textContent = "Paused while this tab is hidden"; }
      else { schedule("stats", 0); schedule("logs", 0); }
    });
    schedule("stats", 0); schedule("logs", 0);
  });
})();

// Service page: search the shipped logs of one instance. Lines are added
// as text nodes, never as markup.
(function () {
  "use strict";
  var form = document.getElementById("log-search");
  if (!form) { return; }
  var status = document.getElementById("log-search-status");
  var out = document.getElementById("log-search-results");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var inst = form.elements.instance.value, minutes = form.elements.minutes.value, q = form.elements.q.value;
    status.textContent = "Searching…";
    var url = "/api/v1/instances/" + encodeURIComponent(inst) + "/logs/search?minutes=" + encodeURIComponent(minutes) +
      (q ? "&q=" + encodeURIComponent(q) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    }).then(function (r) {
      out.textContent = "";
      if (r.status !== 200) {
        out.hidden = true;
        status.textContent = (r.body && r.body.error && r.body.error.message) || ("berth answered " + r.status + ".");
        return;
      }
      var lines = r.body.lines || [];
      lines.forEach(function (l) {
        var line = document.createElement("span");
        line.className = "line " + (l.stream === "stderr" ? "stderr" : "stdout");
        var rel = l.tags && l.tags.release ? " (" + l.tags.release + ")" : "";
        line.textContent = new Date(l.at).toISOString().replace("T", " ").slice(0, 23) + rel + " " + (l.stream === "stderr" ? "[err] " : "") + l.text + "\n";
        out.appendChild(line);
      });
      out.hidden = lines.length === 0;
      status.textContent = lines.length + (lines.length === 1 ? " line" : " lines") + " found in the last " + minutes + " minutes" +
        (r.body.truncated ? " (only the newest are shown)" : "") + ".";
    }).catch(function () {
      status.textContent = "berth did not answer; check your connection and search again.";
    });
  });
})();
