// The operators' live figures on the home page: Server-Sent Events from /console/live/stream
// (a "figures" event every few seconds) update the values and levels the server drew. Only text
// that changed is rewritten, so the aria-live region announces changes, not every refresh.
(function () {
  "use strict";
  var panel = document.querySelector("[data-live-url]");
  if (!panel || !window.EventSource) { return; }

  function text(name) { return panel.getAttribute("data-text-" + name) || ""; }
  function put(node, value) { if (node && node.textContent !== value) { node.textContent = value; } }
  function percent(rate) { return rate === null ? "—" : (rate * 100).toFixed(1) + " %"; }
  function clock(unix) {  // Vietnam time (UTC+7, no daylight saving), as the server writes it
    return new Date((unix + 7 * 3600) * 1000).toISOString().substring(11, 19);
  }
  function levelWord(level) { return level === "bad" ? text("bad") : level === "warn" ? text("warn") : ""; }

  function figure(name, value, level) {
    var box = panel.querySelector('[data-figure="' + name + '"]');
    if (!box) { return; }
    if (level && box.getAttribute("data-level") !== level) { box.setAttribute("data-level", level); }
    put(box.querySelector("[data-value]"), value);
    put(box.querySelector("[data-level-word]"), levelWord(level));
  }

  function breakers(lights, level) {
    var list = panel.querySelector("[data-breakers]");
    figure("breakers", null, level);
    var wanted = lights.length ? lights.map(function (light) {
      return {provider: light.provider, level: light.level,
              state: light.open ? text("open") : text("closed"), rate: percent(light.error_rate)};
    }) : [{provider: null, level: "", state: text("none"), rate: ""}];
    var items = list.querySelectorAll("li");
    wanted.forEach(function (light, index) {
      var item = items[index];
      if (!item) { item = document.createElement("li"); list.appendChild(item); }
      if (item.getAttribute("data-level") !== light.level) { item.setAttribute("data-level", light.level); }
      if (light.provider === null) { put(item, light.state); return; }
      item.setAttribute("data-provider", light.provider);
      var strong = item.querySelector("strong");
      if (!strong) {
        item.textContent = "";
        item.appendChild(document.createTextNode(""));
        strong = document.createElement("strong");
        item.appendChild(strong);
        item.appendChild(document.createTextNode(""));
      }
      put(item.firstChild, light.provider + ": ");
      put(strong, light.state);
      put(item.lastChild, " (" + light.rate + ")");
    });
    for (var extra = wanted.length; extra < items.length; extra++) { list.removeChild(items[extra]); }
  }

  function show(data) {
    put(panel.querySelector('[data-live="at"]'), clock(data.at));
    panel.querySelector('[data-live="stale"]').hidden = data.fresh;
    figure("delivery_rate", data.delivery_rate.toFixed(1), "ok");
    figure("backlog", data.backlog === null ? "—" : String(data.backlog), data.backlog_level);
    figure("oldest_due", data.oldest_due_seconds === null ? "—" : String(Math.floor(data.oldest_due_seconds)),
           data.oldest_due_level);
    figure("error_rate", percent(data.error_rate), data.error_rate_level);
    breakers(data.breakers, data.breaker_level);
  }

  var source = new EventSource(panel.getAttribute("data-live-url"));
  source.addEventListener("figures", function (event) { show(JSON.parse(event.data)); });
  function stop() {
    source.close();
    panel.querySelector('[data-live="ended"]').hidden = false;
  }
  // The session ended (the server says so, or refuses the reconnection): stop, say so.
  source.addEventListener("ended", stop);
  source.addEventListener("error", function () { if (source.readyState === EventSource.CLOSED) { stop(); } });
})();
