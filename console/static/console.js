// Live delivery progress: the server's Server-Sent Events (the stream behind
// GET /v1/notifications/{id}/progress) update the counters in place and draw sent / failed /
// received / opened over time. No inline script: the page names the stream in
// data-progress-url and this file does the rest.
(function () {
  "use strict";
  var root = document.querySelector("[data-progress-url]");
  if (!root || !window.EventSource) { return; }
  var SERIES = ["sent", "failed", "invalid", "received", "opened"];
  var SVG = "http://www.w3.org/2000/svg";
  var chart = root.querySelector("[data-chart]");
  var samples = [];
  var started = Date.now();
  // The stored history the server drew (data-history): the live samples continue it, on the same
  // time axis (seconds since the notification was created).
  if (chart && chart.getAttribute("data-history")) {
    try {
      var history = JSON.parse(chart.getAttribute("data-history"));
      samples = [{t: 0, targeted: 0, sent: 0, failed: 0, invalid: 0, received: 0, opened: 0}].concat(history.samples);
      started = Date.now() - history.elapsed * 1000;
    } catch (e) { samples = []; }
  }

  function draw() {
    if (!chart || samples.length < 2) { return; }
    var width = 600, height = 160;
    var top = Math.max(1, samples[samples.length - 1].targeted);
    var span = Math.max(1, samples[samples.length - 1].t);
    SERIES.forEach(function (name) {
      var line = chart.querySelector("polyline." + name);
      if (!line) {
        line = document.createElementNS(SVG, "polyline");
        line.setAttribute("class", name);
        chart.appendChild(line);
      }
      line.setAttribute("points", samples.map(function (s) {
        var x = (s.t / span) * width, y = height - (s[name] / top) * height;
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" "));
    });
  }

  function show(data) {
    Object.keys(data).forEach(function (key) {
      var cell = root.querySelector('[data-field="' + key + '"]');
      if (cell) { cell.textContent = data[key] === null ? "—" : String(data[key]); }
    });
    var bar = root.querySelector("[data-bar]");
    if (bar && data.targeted) { bar.max = data.targeted; bar.value = data.sent; }
    samples.push({
      t: (Date.now() - started) / 1000, targeted: data.targeted || 0, sent: data.sent || 0,
      failed: data.failed || 0, invalid: data.invalid || 0, received: data.received || 0,
      opened: data.opened || 0
    });
    draw();
  }

  var source = new EventSource(root.getAttribute("data-progress-url"));
  source.addEventListener("progress", function (event) { show(JSON.parse(event.data)); });
  source.addEventListener("final", function () {
    source.close();
    window.location.reload();  // the full per-language and per-platform tables
  });
})();
