// runstore ui: follows live logs and draws the compare plot. Loaded as a file (the CSP
// forbids inline scripts); everything it shows arrives as text or JSON, never as HTML.
"use strict";
(function () {
  function followLog(pre) {
    var url = pre.getAttribute("data-live");
    var offset = parseInt(pre.getAttribute("data-offset") || "0", 10);
    function poll() {
      fetch(url + "&offset=" + offset, { headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (d.reset) { pre.textContent = ""; }
          if (d.text) { pre.appendChild(document.createTextNode(d.text)); pre.scrollTop = pre.scrollHeight; }
          offset = d.offset;
          pre.setAttribute("data-offset", String(offset));
          if (d.done) {
            pre.setAttribute("data-done", "1");
            var badge = document.getElementById("live-badge");
            if (badge) { badge.textContent = "finished (" + (d.status || "done") + ")"; }
          } else {
            setTimeout(poll, 500);
          }
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    poll();
  }
  document.querySelectorAll("pre[data-live]").forEach(followLog);

  // Cards of a running task: reload a card's frame when the store holds a new version of
  // it, and the page when a card appears. Card HTML itself only ever goes into sandboxed frames.
  function followCards(slot) {
    var url = slot.getAttribute("data-live");
    function poll() {
      fetch(url, { headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var shown = document.querySelectorAll("div.card").length;
          if (d.cards.length !== shown) { window.location.reload(); return; }
          d.cards.forEach(function (c) {
            var box = document.getElementById("card-" + c.seq);
            if (!box || box.getAttribute("data-hash") === (c.hash || "")) { return; }
            box.setAttribute("data-hash", c.hash || "");
            box.setAttribute("data-status", c.status);
            var frame = box.querySelector("iframe");
            if (frame) { frame.src = frame.src.split("?")[0] + "?v=" + encodeURIComponent(c.hash || ""); }
          });
          if (!d.done) { setTimeout(poll, 1000); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    poll();
  }
  document.querySelectorAll("[data-live][id='cards-slot']").forEach(followCards);

  function drawPlot() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("plot-data");
    if (!holder || !source || typeof vegaEmbed === "undefined") { return; }
    var rows = JSON.parse(source.textContent);
    var ySel = document.getElementById("plot-y"), xSel = document.getElementById("plot-x");
    function render() {
      var y = ySel.value, x = xSel.value;
      var values = rows.map(function (r) {
        return { run: r.run, x: x === "started" ? r.started : r[x], y: r[y] };
      }).filter(function (r) { return r.y !== undefined && r.y !== null && r.x !== undefined; });
      var numericX = values.every(function (r) { return typeof r.x === "number"; });
      var xType = x === "started" ? "temporal" : (numericX ? "quantitative" : "nominal");
      var spec = {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        width: 520, height: 260,
        data: { values: values },
        mark: { type: "line", point: { size: 70 } },
        encoding: {
          x: { field: "x", type: xType, title: xSel.options[xSel.selectedIndex].text, sort: "ascending" },
          y: { field: "y", type: "quantitative", title: ySel.options[ySel.selectedIndex].text },
          tooltip: [{ field: "run", type: "nominal" }, { field: "y", type: "quantitative" }]
        }
      };
      // ast + the interpreter: Vega evaluates expressions without eval/new Function (CSP).
      vegaEmbed(holder, spec, { actions: false, renderer: "svg", ast: true,
                                expr: vega.expressionInterpreter, defaultStyle: false, tooltip: false })
        .then(function () { holder.setAttribute("data-rendered", String(values.length)); })
        .catch(function (err) { holder.textContent = "cannot draw the plot: " + err; });
    }
    ySel.addEventListener("change", render);
    xSel.addEventListener("change", render);
    render();
  }
  drawPlot();
})();
