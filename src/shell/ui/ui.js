// The live part of the overview: the server sends it again, rendered, whenever
// the daemon's status changes; a lost connection is said at the top.
(function () {
  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!live || !window.EventSource) return;
  var events = new EventSource("/ui/events");
  events.addEventListener("overview", function (e) {
    live.innerHTML = e.data;
  });
  events.onopen = function () {
    state.textContent = "live";
    state.classList.remove("lost");
  };
  events.onerror = function () {
    state.textContent = "live connection lost: retrying";
    state.classList.add("lost");
  };
})();
