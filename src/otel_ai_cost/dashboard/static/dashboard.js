/* otel-ai-cost dashboard: draws the document of /api/data (or, in an exported page, the inlined one).
   Every number is computed on the server (the functions of `otel-ai-cost report` and `recommend`);
   this script only shows them. A filter change asks the server for a new document. */
(function () {
  "use strict";
  var FILTERS = ["model", "provider", "tenant", "service", "user", "operation"];
  var COLORS = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
                "#f97316", "#64748b"];
  var embedded = document.getElementById("dashboard-data");
  var charts = [];
  var current = null;
  var renders = 0;

  function $(id) { return document.getElementById(id); }

  // Amounts arrive as exact decimal strings: shown as they are (sums), or rounded (ratios).
  function money(value) { return value === null || value === undefined ? "-" : "$" + value; }
  function approx(value) {
    if (value === null || value === undefined) { return "-"; }
    var n = Number(value);
    if (n === 0 || Math.abs(n) >= 0.01) { return "$" + n.toFixed(4); }
    // 4 significant digits, without an exponent: 0.0000008400
    return "$" + n.toFixed(Math.min(20, 3 - Math.floor(Math.log10(Math.abs(n)))));
  }
  function percent(value) {
    if (value === null || value === undefined) { return "-"; }
    var n = Number(value) * 100;
    return (n > 0 ? "+" : "") + n.toFixed(1) + "%";
  }
  function when(value) { return value ? String(value).slice(0, 19).replace("T", " ") : "-"; }
  function text(value) { return value === null || value === undefined || value === "" ? "-" : String(value); }

  function element(tag, attrs, content) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (content instanceof Node) { el.appendChild(content); } else if (content !== undefined) {
      el.textContent = content;
    }
    return el;
  }

  function traceLink(id) {
    if (!id) { return document.createTextNode("-"); }
    return element("a", {href: current.jaeger + id, target: "_blank", rel: "noopener", title: id},
                   id.slice(0, 16) + "\u2026");
  }

  // columns: [label, key or function(row) -> string | Node, "num"?]
  function table(id, columns, rows, empty) {
    var el = $(id);
    el.textContent = "";
    var head = element("tr");
    columns.forEach(function (c) { head.appendChild(element("th", c[2] ? {"class": c[2]} : {}, c[0])); });
    el.appendChild(element("thead", {}, head));
    var body = element("tbody");
    rows.forEach(function (row) {
      var tr = element("tr");
      columns.forEach(function (c) {
        var value = typeof c[1] === "function" ? c[1](row) : text(row[c[1]]);
        tr.appendChild(element("td", c[2] ? {"class": c[2]} : {}, value));
      });
      body.appendChild(tr);
    });
    if (!rows.length) {
      body.appendChild(element("tr", {}, element("td", {colspan: String(columns.length), "class": "muted"},
                                                  empty || "nothing in this period")));
    }
    el.appendChild(body);
  }

  function fillSelect(name, values, chosen, labels) {
    var el = $("f-" + name);
    el.textContent = "";
    if (name !== "period") { el.appendChild(element("option", {value: ""}, "all")); }
    values.forEach(function (v) { el.appendChild(element("option", {value: v}, labels ? labels[v] || v : v)); });
    if (chosen && values.indexOf(chosen) < 0) { el.appendChild(element("option", {value: chosen}, chosen)); }
    el.value = chosen || "";
    el.disabled = Boolean(embedded);
  }

  function chart(canvas, config) {
    config.options = Object.assign({animation: false, responsive: true, maintainAspectRatio: false}, config.options);
    charts.push(new Chart(canvas, config));
  }

  function drawOverTime() {
    var over = current.over_time;
    var by = $("over-time-by").value;
    var series = over.series[by] || {};
    var datasets = Object.keys(series).map(function (value, i) {
      return {label: value, data: series[value].map(Number), backgroundColor: COLORS[i % COLORS.length],
              stack: "cost", maxBarThickness: 48};
    });
    chart($("chart-over-time"), {
      type: "bar", data: {labels: over.labels, datasets: datasets},
      options: {scales: {x: {stacked: true, title: {display: true, text: over.bucket}},
                         y: {stacked: true, title: {display: true, text: current.currency}}}},
    });
  }

  function spendTable(dim) {
    table("by-" + dim, [[dim, dim], ["calls", "calls", "num"], ["cost", function (r) { return money(r.cost); }, "num"],
                        ["per success", function (r) { return approx(r.cost_per_success); }, "num"]],
          current.by[dim]);
  }

  function budgetPanel(panel, index) {
    var box = element("div", {"class": "budget", "data-budget": panel.budget, "data-key": panel.key});
    var title = panel.budget + (panel.per ? " \u00b7 " + panel.per + "=" + panel.key : "");
    box.appendChild(element("h3", {}, title));
    var fc = panel.burn.forecast;
    var line = panel.limit === null ? "spent this month " + money(fc.spent) + " (no limit: not in the configuration)"
      : "spent " + money(panel.spent) + " + held " + money(panel.reserved) + " of " + money(panel.limit) +
        " (" + text(panel.used) + "), " + text(panel.window) + (panel.status ? ", " + panel.status : "");
    box.appendChild(element("div", {"class": "usage"}, line));
    if (panel.limit !== null) {
      var meter = element("div", {"class": "meter"});
      var used = Number(panel.spent) + Number(panel.reserved);
      var fill = element("div", {"class": "fill"});
      fill.style.width = Math.min(100, 100 * used / Number(panel.limit)) + "%";
      meter.appendChild(fill);
      panel.thresholds.forEach(function (t) {
        var mark = element("div", {"class": "mark", title: t.action + " at " + Math.round(Number(t.at) * 100) + "%"});
        mark.style.left = Math.min(100, Number(t.at) * 100) + "%";
        meter.appendChild(mark);
      });
      box.appendChild(meter);
      box.appendChild(element("div", {"class": "muted"}, "thresholds: " + panel.thresholds.map(function (t) {
        return Math.round(Number(t.at) * 100) + "% " + t.action + (t.model ? " to " + t.model : "") + " (" +
          approx(t.amount) + ")";
      }).join(", ")));
    }
    box.appendChild(element("div", {"class": "forecast"}, "month-end forecast " + approx(fc.forecast) + " (range " +
      approx(fc.low) + " to " + approx(fc.high) + ")"));
    var canvas = element("canvas", {id: "chart-budget-" + index});
    box.appendChild(element("div", {"class": "chart"}, canvas));
    $("budgets").appendChild(box);

    var labels = panel.burn.labels;
    var today = labels.indexOf(panel.burn.today);
    function towards(target) {
      return labels.map(function (_, i) {
        if (i < today) { return null; }
        var spent = Number(fc.spent);
        return spent + (Number(target) - spent) * (i - today) / Math.max(1, labels.length - 1 - today);
      });
    }
    var datasets = [
      {label: "spent (cumulative)", data: panel.burn.cumulative.map(function (v) { return v === null ? null : Number(v); }),
       borderColor: COLORS[0], backgroundColor: COLORS[0], pointRadius: 2},
      {label: "forecast", data: towards(fc.forecast), borderColor: COLORS[1], borderDash: [6, 4], pointRadius: 0},
      {label: "forecast range", data: towards(fc.high), borderColor: "#fcd34d", borderDash: [2, 3], pointRadius: 0},
      {label: "", data: towards(fc.low), borderColor: "#fcd34d", borderDash: [2, 3], pointRadius: 0},
    ];
    if (panel.monthly && panel.limit !== null) {
      panel.thresholds.forEach(function (t, i) {
        datasets.push({label: Math.round(Number(t.at) * 100) + "% " + t.action,
                       data: labels.map(function () { return Number(t.amount); }),
                       borderColor: t.action === "block" ? "#b91c1c" : COLORS[(i + 3) % COLORS.length],
                       borderWidth: 1, pointRadius: 0});
      });
    }
    chart(canvas, {type: "line", data: {labels: labels, datasets: datasets},
                   options: {plugins: {legend: {labels: {filter: function (item) { return item.text !== ""; }}}},
                             scales: {y: {beginAtZero: true}}}});
  }

  function render() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    var d = current;
    $("source").textContent = "ledger " + d.ledger + " \u00b7 " + (d.period.since || "the beginning") + " to " +
      d.period.until + " (" + d.tz + ") \u00b7 generated " + d.generated;
    fillSelect("period", d.period.names, d.period.name,
               {day: "today", week: "this week", month: "last 30 days", mtd: "month to date",
                qtd: "quarter to date", all: "all"});
    FILTERS.forEach(function (f) { fillSelect(f, d.options[f], d.filters[f]); });
    $("f-clear").disabled = Boolean(embedded);
    var t = d.total;
    $("total-cost").textContent = money(t.cost);
    $("total-calls").textContent = t.calls + " calls" + (t.unpriced ? ", " + t.unpriced + " not priced" : "");
    $("forecast-point").textContent = approx(d.forecast.forecast);
    $("forecast-range").textContent = "range " + approx(d.forecast.low) + " to " + approx(d.forecast.high) +
      " \u00b7 " + d.forecast.month + " so far " + money(d.forecast.spent);
    $("cost-per-success").textContent = approx(t.cost_per_success);
    $("failed").textContent = t.failed + " failed";
    $("cache-savings").textContent = money(t.cache_savings);
    $("estimate-error").textContent = "estimate error " + percent(t.estimate_error) + " (estimate - actual) / actual";
    drawOverTime();
    ["model", "provider", "tenant"].forEach(spendTable);

    $("budgets").textContent = "";
    $("budget-source").textContent = d.budgets.store
      ? "store " + d.budgets.store + " (the store's numbers: the filters do not apply)" : (d.budgets.note || "");
    d.budgets.panels.forEach(budgetPanel);

    table("top-calls", [["time", function (r) { return when(r.time); }], ["trace", function (r) { return traceLink(r.trace_id); }],
                        ["service", "service"], ["provider", "provider"], ["model", "model"], ["tenant", "tenant"],
                        ["user", "user"], ["tokens in/out", function (r) {
                          return r.input_tokens + " / " + r.output_tokens; }, "num"],
                        ["estimate", function (r) { return money(r.estimate); }, "num"],
                        ["cost", function (r) { return money(r.cost); }, "num"]], d.top_calls);
    table("top-traces", [["trace", function (r) { return traceLink(r.trace_id); }], ["start", function (r) { return when(r.start); }],
                         ["calls", "calls", "num"], ["cost", function (r) { return money(r.cost); }, "num"],
                         ["models", "models", "wrap"]], d.top_traces);
    table("anomaly-types", [["anomaly", "anomaly"], ["calls", "calls", "num"],
                            ["cost", function (r) { return money(r.cost); }, "num"]], d.anomalies.by_type,
          "no call marked as an anomaly in this period");
    table("anomalies", [["time", function (r) { return when(r.time); }], ["type", "anomaly_type"], ["trace", function (r) {
      return traceLink(r.trace_id); }], ["model", "model"], ["tenant", "tenant"],
                        ["cost", function (r) { return money(r.cost); }, "num"]], d.anomalies.calls, " ");
    table("recommendations", [["#", "rank", "num"], ["kind", "kind"], ["model", "model"], ["calls", "calls", "num"],
                              ["saving", function (r) { return r.kind === "max_tokens" ? "-" : approx(r.saving); },
                               "num"], ["suggestion", function (r) {
                                 var s = element("span", {title: r.how}, r.suggestion); return s; }, "wrap"]],
          d.recommendations, "no hint for these calls");
    $("method").textContent = "Forecast: " + d.forecast.method + ". Sums are exact (the spans' " +
      "gen_ai.usage.cost.amount added up); ratios are rounded.";
    renders += 1;
    document.body.dataset.renders = String(renders);
    document.body.dataset.ready = "1";
  }

  function params() {
    var p = new URLSearchParams();
    ["period"].concat(FILTERS).forEach(function (f) {
      var v = $("f-" + f).value;
      if (v) { p.set(f, v); }
    });
    return p;
  }

  function showError(message) {
    var el = $("error");
    el.textContent = message;
    el.hidden = !message;
  }

  function load(query) {
    document.body.dataset.ready = "0";
    fetch("api/data?" + query.toString(), {cache: "no-store"}).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error(body.error || response.statusText); }
        return body;
      });
    }).then(function (body) {
      showError("");
      current = body;
      render();
    }).catch(function (error) {
      showError("Could not load the data: " + error.message);
      document.body.dataset.ready = "1";
    });
  }

  function changed() {
    var query = params();
    history.replaceState(null, "", "?" + query.toString());
    load(query);
  }

  ["period"].concat(FILTERS).forEach(function (f) { $("f-" + f).addEventListener("change", changed); });
  $("f-clear").addEventListener("click", function () {
    FILTERS.forEach(function (f) { $("f-" + f).value = ""; });
    changed();
  });
  $("over-time-by").addEventListener("change", function () { if (current) { render(); } });

  if (embedded) {
    current = JSON.parse(embedded.textContent);
    var snapshot = $("snapshot");
    snapshot.hidden = false;
    snapshot.textContent = "Exported snapshot: the filters are those it was exported with.";
    render();
  } else {
    load(new URLSearchParams(window.location.search));
  }
})();
