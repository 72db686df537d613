/* mlyard web UI: loading feedback, links to log lines, collapsible logs and the live run page.
   No framework, no build; every text from the server goes in with textContent (never as HTML). */
(function () {
  "use strict";
  var ICONS = {notStarted: "○", queued: "◌", waiting: "‖", running: "◐", succeeded: "✓",
               succeededWithIssues: "!", failed: "✕", canceled: "⊘", skipped: "»"};
  var LABELS = {notStarted: "not started", succeededWithIssues: "succeeded with issues"};

  function busy() {
    var bar = document.getElementById("loading");
    if (bar) { bar.hidden = false; }
    document.body.setAttribute("aria-busy", "true");
  }
  window.addEventListener("pageshow", function () {
    var bar = document.getElementById("loading");
    if (bar) { bar.hidden = true; }
    document.body.removeAttribute("aria-busy");
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent) { event.preventDefault(); return; }  // no double run on a double click
    if ((form.getAttribute("method") || "get").toLowerCase() === "post") { form.dataset.sent = "1"; }
    busy();
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || link.hasAttribute("download") || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    var href = link.getAttribute("href");
    if (href.charAt(0) === "/" && href.indexOf("#") !== 0 && link.pathname !== location.pathname) { busy(); }
  });

  // A link to a log line (#sid-L12) opens its step and shows the line.
  function reveal() {
    if (!location.hash) { return; }
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!target) { return; }
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
    }
    target.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", reveal);
  document.addEventListener("DOMContentLoaded", function () {
    reveal();
    document.querySelectorAll("button[data-expand]").forEach(function (button) {
      button.addEventListener("click", function () {
        var open = button.dataset.expand === "true";
        document.querySelectorAll("details.step").forEach(function (d) { d.open = open; });
      });
    });
    follow();
  });

  function setState(holder, state, duration) {
    var badge = holder.querySelector(".state");
    if (badge && badge.dataset.state !== state) {
      badge.className = "state state-" + state;
      badge.dataset.state = state;
      badge.querySelector(".icon").textContent = ICONS[state] || "?";
      badge.querySelector(".label").textContent = LABELS[state] || state;
    }
    var dur = holder.querySelector(".dur");
    if (dur && duration !== undefined) { dur.textContent = duration; }
  }

  function appendLines(sid, lines) {
    var box = document.querySelector('.log[data-section="' + sid + '"]');
    if (!box) { return; }
    var empty = box.querySelector(".empty");
    if (empty) { empty.remove(); }
    var rows = box.querySelectorAll(".ln");
    var last = rows.length ? rows[rows.length - 1].id : "";
    var number = last ? parseInt(last.slice(last.lastIndexOf("-L") + 2), 10) : 0;
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 60;
    var fragment = document.createDocumentFragment();
    lines.forEach(function (line) {
      number += 1;
      var row = document.createElement("div");
      row.className = "ln" + (line[2] ? " k-" + line[2] : "");
      row.id = sid + "-L" + number;
      var link = document.createElement("a");
      link.className = "n";
      link.href = "#" + row.id;
      link.tabIndex = -1;
      link.title = line[0];
      link.textContent = String(number);
      var text = document.createElement("span");
      text.className = "t";
      text.textContent = line[1];
      row.appendChild(link);
      row.appendChild(text);
      fragment.appendChild(row);
    });
    box.appendChild(fragment);
    var details = box.closest("details");
    var head = details ? details.querySelector("summary .state") : null;
    if (details && !details.dataset.touched && head && head.dataset.state === "running") { details.open = true; }
    if (atBottom && details && details.open) { window.scrollTo(0, document.body.scrollHeight); }
  }

  // The live run page: new log lines and states from /runs/ID/live (server-sent events) until the run ends.
  function follow() {
    var run = document.getElementById("run");
    if (!run || !run.dataset.live) { return; }
    var status = document.getElementById("live-status");
    document.querySelectorAll("details.step").forEach(function (d) {
      d.querySelector("summary").addEventListener("click", function () { d.dataset.touched = "1"; });
    });
    if (!window.EventSource) {
      setTimeout(function () { location.reload(); }, 5000);
      return;
    }
    var cursors = [];
    document.querySelectorAll("details.step[data-cursor]").forEach(function (d) {
      cursors.push(d.id + "." + d.dataset.cursor);
    });
    var source = new EventSource(run.dataset.live + "?b=" + encodeURIComponent(run.dataset.banner || "") +
                                 "&at=" + encodeURIComponent(cursors.join(",")));
    function reload(message, delay) {
      source.close();
      // Never a reload loop: past 8 reloads of this run's page in a minute, stop and say so.
      var key = "mlyard-reloads-" + run.dataset.run, now = Date.now(), recent = [];
      try { recent = JSON.parse(sessionStorage.getItem(key) || "[]"); } catch (e) { recent = []; }
      recent = recent.filter(function (t) { return now - t < 60000; });
      if (recent.length >= 8) {
        if (status) { status.textContent = "live updates paused: reload the page to see the run's progress"; }
        return;
      }
      recent.push(now);
      try { sessionStorage.setItem(key, JSON.stringify(recent)); } catch (e) { /* private mode: no guard */ }
      if (status) { status.textContent = message; }
      busy();
      setTimeout(function () { location.reload(); }, Math.max(delay, 200));
    }
    source.addEventListener("open", function () { if (status) { status.textContent = "● live"; } });
    source.addEventListener("lines", function (event) {
      var data = JSON.parse(event.data);
      appendLines(data.s, data.l);
    });
    source.addEventListener("state", function (event) {
      var data = JSON.parse(event.data);
      Object.keys(data.nodes).forEach(function (id) {
        var value = data.nodes[id];
        document.querySelectorAll('[data-node="' + id + '"]').forEach(function (holder) {
          var before = holder.querySelector(".state") ? holder.querySelector(".state").dataset.state : "";
          setState(holder, value[0], value[1]);
          var details = holder.closest("details.step");
          if (!details || details.dataset.touched) { return; }
          if (value[0] === "running" || value[0] === "failed") { details.open = true; }
          // a step that was followed open closes when it succeeds, as the next one opens
          if (before === "running" && /^(succeeded|skipped)$/.test(value[0])) { details.open = false; }
        });
      });
      document.querySelectorAll('[data-node="run"]').forEach(function (h) { setState(h, data.run); });
      var took = document.querySelector('[data-node="run-duration"]');
      if (took && data.duration) { took.textContent = data.duration; }
    });
    source.addEventListener("end", function () { reload("run finished: loading its results…", 100); });
    source.addEventListener("reload", function () { reload("updating the page…", 300); });
    source.addEventListener("busy", function () { reload("server busy: reloading in 5 s", 5000); });
    source.addEventListener("error", function () { reload("live updates interrupted: reloading in 5 s", 5000); });
  }
}());
