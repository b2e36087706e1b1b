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
