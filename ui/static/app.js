// berth UI: progressive enhancement only. Pages work as plain HTML; this
// adds in-place decisions and live run updates. No build step, no libraries.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";

  function send(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(body || {})
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

  // Other actions (cancel) post to the API in place.
  document.querySelectorAll("form.api-form").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { return; }
      var out = form.querySelector(".result");
      send(form.action, {}).then(function (r) {
        out.textContent = r.status < 300 ? "Requested: the run is being " + (r.body.status || "changed") + "."
          : (r.body.error && r.body.error.message) || ("Request failed (" + r.status + ")");
      });
    });
  });

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
    });
  }
  function stop() { if (es) { es.close(); es = null; } }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); show("paused", "Paused while this tab is hidden"); }
    else if (state.dataset.state !== "finished") { connect(); }
  });
  if (!document.hidden) { connect(); } else { show("paused", "Paused while this tab is hidden"); }
})();
