// The spend panel: what the runs of a period spent, over time and per model, and what racing bought (the figures of
// `llmmixer logs --stats`, from GET /api/stats). Drawn with Chart.js (vendor/chart.umd.min.js), loaded from this server.
"use strict";

(function () {
  const PALETTE = ["#6ea8fe", "#3fb950", "#d29922", "#f778ba", "#a371f7", "#39c5cf", "#f85149", "#8b93a7"];
  const charts = { time: null, models: null };
  let panel = null;
  let api = null;
  let loading = null;

  function ms(v) { return typeof v === "number" ? `${Math.round(v).toLocaleString("en-US")} ms` : "—"; }
  function usd(v) { return typeof v === "number" ? `$${v.toFixed(4)}` : "—"; }
  function ratio(v) { return typeof v === "number" ? `×${v.toFixed(2)}` : "—"; }

  function bucketLabel(start, bucketS) {
    const iso = new Date(start * 1000).toISOString();  // UTC, as the buckets are
    return bucketS < 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
  }

  // One table: a header row, then a row per entry with a cell per column (each cell's data-field names it).
  function fillTable(table, key, columns, entries) {
    table.textContent = "";
    const head = table.createTHead().insertRow();
    for (const [, title] of [[key, key], ...columns]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const [name, entry] of entries) {
      const row = body.insertRow();
      row.dataset[key] = name;
      row.insertCell().textContent = name;
      for (const [field, , format] of columns) {
        const cell = row.insertCell();
        cell.dataset.field = field;
        cell.textContent = format(entry[field]);
      }
    }
  }

  const MODE_COLUMNS = [["runs", "runs", String], ["p50_ms", "p50", ms], ["p95_ms", "p95", ms],
    ["p50_vs_best_single", "p50 vs best", ratio], ["p95_vs_best_single", "p95 vs best", ratio],
    ["spend_usd", "spend", usd], ["cancelled_spend_usd", "on cancelled legs", usd]];
  const MODEL_COLUMNS = [["runs", "legs", String], ["wins", "wins", String], ["p50_ms", "p50", ms],
    ["p95_ms", "p95", ms], ["spend_usd", "spend", usd], ["cancelled_spend_usd", "on cancelled legs", usd]];

  function draw(name, canvas, config) {
    if (charts[name]) charts[name].destroy();
    charts[name] = new window.Chart(canvas, config);
  }

  const money = { ticks: { callback: (v) => (Number(v) === 0 ? "$0" : `$${Number(Number(v).toPrecision(2))}`) } };

  function drawTime(series) {
    const names = Object.keys(series.models);
    draw("time", panel.querySelector("#spend-time"), {
      type: "bar",
      data: {
        labels: series.starts.map((s) => bucketLabel(s, series.bucket_s)),
        datasets: names.map((n, i) => ({ label: n, data: series.models[n], backgroundColor: PALETTE[i % PALETTE.length] })),
      },
      options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, ...money } } },
    });
  }

  function drawModels(models) {
    const names = Object.keys(models);
    draw("models", panel.querySelector("#spend-models"), {
      type: "bar",
      data: {
        labels: names,
        datasets: [
          { label: "answers kept", data: names.map((n) => models[n].spend_usd - models[n].cancelled_spend_usd),
            backgroundColor: PALETTE[1] },
          { label: "cancelled legs", data: names.map((n) => models[n].cancelled_spend_usd), backgroundColor: PALETTE[2] },
        ],
      },
      options: { indexAxis: "y", animation: false, maintainAspectRatio: false,
        scales: { x: { stacked: true, ...money }, y: { stacked: true } } },
    });
  }

  function render(stats) {
    const best = stats.best_single;
    panel.querySelector("#spend-best").textContent = best
      ? `best single model: ${best.model}, p50 ${ms(best.p50_ms)}, p95 ${ms(best.p95_ms)}` : "no finished legs yet";
    fillTable(panel.querySelector("#spend-modes"), "mode", MODE_COLUMNS, Object.entries(stats.modes));
    fillTable(panel.querySelector("#spend-per-model"), "model", MODEL_COLUMNS, Object.entries(stats.models));
    if (window.Chart) {
      drawTime(stats.spend_over_time);
      drawModels(stats.models);
    }
    panel.dataset.loaded = panel.querySelector("#spend-since").value;
  }

  async function refresh() {
    if (!panel || !panel.open) return;
    const since = panel.querySelector("#spend-since").value;
    const request = api("GET", `/api/stats?since=${encodeURIComponent(since)}`);
    loading = request;
    try {
      const stats = await request;
      if (loading === request) render(stats);
    } catch (e) {
      panel.querySelector("#spend-best").textContent = `Could not load /api/stats: ${e.message}`;
    }
  }

  function attach(element, apiCall) {
    panel = element;
    api = apiCall;
    if (window.Chart) {
      const css = getComputedStyle(document.documentElement);
      window.Chart.defaults.color = css.getPropertyValue("--muted").trim() || "#8b93a7";
      window.Chart.defaults.borderColor = css.getPropertyValue("--border").trim() || "#2a2f3a";
    }
    panel.addEventListener("toggle", refresh);
    panel.querySelector("#spend-since").addEventListener("change", refresh);
  }

  window.LLMMixerSpend = { attach, refresh };
})();
