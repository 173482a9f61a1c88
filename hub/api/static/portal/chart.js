/* The chart of an aggregate release: uPlot (vendored, loaded only here) draws the totals table that the
   server rendered (the table stays: it is the chart's text alternative). Redrawn after each preview reload. */
(function () {
  "use strict";
  var script = document.currentScript;
  var lib = script.getAttribute("data-lib");
  var css = script.getAttribute("data-css");
  var loading = null;

  function load() {
    if (window.uPlot) return Promise.resolve();
    if (loading) return loading;
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = css;
    document.head.appendChild(link);
    loading = new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = lib;
      s.onload = resolve;
      s.onerror = reject;
      document.head.appendChild(s);
    });
    return loading;
  }

  function series(box) {
    var rows = box.parentNode.querySelectorAll("table.totals tbody tr");
    var labels = [], values = [];
    rows.forEach(function (row) {
      labels.push(row.querySelector("th").textContent.trim());
      values.push(parseFloat(row.querySelector("td[data-value]").getAttribute("data-value")) || 0);
    });
    return { labels: labels, values: values };
  }

  function draw(box) {
    var data = series(box);
    if (!data.labels.length) return;
    box.textContent = "";
    var xs = data.labels.map(function (_, i) { return i; });
    var bar = box.getAttribute("data-kind") !== "line";
    var width = Math.max(260, Math.min(box.clientWidth || 600, 900));
    var opts = {
      width: width,
      height: 280,
      legend: { show: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: { x: { time: false, range: function () { return [-0.6, xs.length - 0.4]; } } },
      axes: [
        { stroke: "#1f1f1f", grid: { show: false },
          values: function (u, splits) { return splits.map(function (v) { return data.labels[v] !== undefined && v === Math.round(v) ? data.labels[v] : ""; }); } },
        { stroke: "#1f1f1f", grid: { stroke: "#e0e0e0" }, size: 60 }
      ],
      series: [
        {},
        { label: box.getAttribute("data-measure"), stroke: "#0b57a4", width: 2,
          fill: bar ? "rgba(11, 87, 164, 0.75)" : "rgba(11, 87, 164, 0.12)",
          paths: bar ? uPlot.paths.bars({ size: [0.7, 60] }) : undefined,
          points: { show: !bar } }
      ]
    };
    new uPlot(opts, [xs, data.values], box);
    box.setAttribute("data-drawn", "true");
  }

  function drawAll() {
    var boxes = document.querySelectorAll("#chart .chart");
    if (!boxes.length) return;
    load().then(function () { boxes.forEach(draw); });
  }

  document.addEventListener("portal:preview", drawAll);
  drawAll();
})();
