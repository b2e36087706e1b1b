// Renders every plotly figure on the page from its JSON data block (no inline scripts),
// and again after htmx swaps new content in.
(function () {
  function renderCharts(root) {
    if (!window.Plotly) return;
    root.querySelectorAll("[data-plotly]").forEach(function (el) {
      if (el.dataset.rendered) return;
      var source = document.getElementById(el.dataset.plotly);
      if (!source) return;
      var fig = JSON.parse(source.textContent);
      window.Plotly.newPlot(el, fig.data, fig.layout || {}, { responsive: true, displaylogo: false });
      el.dataset.rendered = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { renderCharts(document); });
  document.addEventListener("htmx:afterSettle", function (evt) { renderCharts(evt.target); });
})();

// A request htmx makes in the background (a polled job card, a live count) that fails shows
// one banner above the page instead of nothing: the server's own sentence for a 503 (the
// database restarting, SQLite busy), a plain one otherwise. The next answer that arrives
// removes it, so a page that recovers by itself says so.
(function () {
  var BANNER_ID = "connection-problem";

  function show(text) {
    var box = document.getElementById("messages");
    if (!box) return;
    var banner = document.getElementById(BANNER_ID);
    if (!banner) {
      banner = document.createElement("div");
      banner.id = BANNER_ID;
      banner.className = "message error";
      banner.setAttribute("role", "alert");
      box.prepend(banner);
    }
    banner.textContent = text;  // text, never HTML
  }

  function clear() {
    var banner = document.getElementById(BANNER_ID);
    if (banner) banner.remove();
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    if (xhr.status < 500) return;  // 4xx answers are the view's own (a form's errors, 403)
    var type = xhr.getResponseHeader("Content-Type") || "";
    var said = type.indexOf("text/plain") === 0 ? (xhr.responseText || "").trim() : "";
    show(said || "The server could not answer (error " + xhr.status + "). " +
      "This part of the page will update again once it can; reload if it does not.");
  });
  document.addEventListener("htmx:sendError", function () {
    show("The server cannot be reached. This part of the page will update again once it is back.");
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) clear();
  });
})();
