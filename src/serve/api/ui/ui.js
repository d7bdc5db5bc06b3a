// The dashboard's script: optional (every view reads without it). It keeps
// the overview's live part current over server-sent events, filters its rows,
// asks before an action, and tails a version's logs.
(function () {
  var state = document.getElementById("live-state");
  function connected(ok) {
    if (!state) return;
    state.textContent = ok ? "live" : "live connection lost: retrying";
    state.classList.toggle("lost", !ok);
  }

  // Actions ask first, then show that they are under way (the live part's
  // forms come and go, so one listener on the document serves them all).
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (!f.matches || !f.matches("form[data-confirm]")) return;
    if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); return; }
    var b = f.querySelector("button");
    b.disabled = true;
    b.textContent = b.textContent + ": working…";
    if (state) state.textContent = "working…";
  });

  // The overview: filters over the rows, kept across live updates.
  var live = document.getElementById("live");
  var text = document.getElementById("filter-text");
  var health = document.getElementById("filter-health");
  var scope = document.getElementById("filter-scope");
  function filter() {
    if (!live) return;
    var t = text ? text.value.toLowerCase() : "";
    var h = health ? health.value : "";
    var s = scope ? scope.value.toLowerCase() : "";
    live.querySelectorAll("tbody tr[data-service]").forEach(function (row) {
      var show = (!t || row.textContent.toLowerCase().indexOf(t) >= 0) &&
        (!h || row.dataset.health === h) &&
        (!s || row.dataset.scope.toLowerCase().indexOf(s) >= 0);
      row.hidden = !show;
    });
  }
  [text, health, scope].forEach(function (el) {
    if (el) el.addEventListener("input", filter);
  });
  if (live && window.EventSource) {
    var url = "events?seen=" + encodeURIComponent(live.dataset.seen || "");
    if (live.dataset.service) url += "&service=" + encodeURIComponent(live.dataset.service);
    var events = new EventSource(url);
    events.addEventListener("overview", function (e) {
      live.innerHTML = e.data;
      filter();
    });
    events.onopen = function () { connected(true); };
    events.onerror = function () { connected(false); };
  }

  // The logs view: new lines appended (unless paused), search over what is
  // loaded, wrap or not.
  var log = document.getElementById("log");
  if (log && window.EventSource) {
    var search = document.getElementById("log-search");
    var pause = document.getElementById("log-pause");
    var wrap = document.getElementById("log-wrap");
    var held = [];
    function show(line) {
      var q = search.value.toLowerCase();
      line.hidden = q !== "" && line.textContent.toLowerCase().indexOf(q) < 0;
    }
    function add(text) {
      text.split("\n").forEach(function (l) {
        var span = document.createElement("span");
        span.className = "line";
        span.textContent = l + "\n";
        show(span);
        log.appendChild(span);
      });
      window.scrollTo(0, document.body.scrollHeight);
    }
    var tail = new EventSource("logs/events?target=" + encodeURIComponent(log.dataset.target));
    // The stream starts with the last lines again: they replace the page's.
    tail.addEventListener("reset", function () {
      log.textContent = "";
      held = [];
    });
    tail.addEventListener("lines", function (e) {
      if (pause.checked) held.push(e.data);
      else add(e.data);
    });
    tail.onopen = function () { connected(true); };
    tail.onerror = function () { connected(false); };
    pause.addEventListener("change", function () {
      if (!pause.checked) { held.forEach(add); held = []; }
    });
    search.addEventListener("input", function () {
      log.querySelectorAll(".line").forEach(show);
    });
    wrap.addEventListener("change", function () {
      log.classList.toggle("wrap", wrap.checked);
    });
  }
})();
