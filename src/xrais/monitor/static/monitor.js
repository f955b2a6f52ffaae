// xrais monitor: live strip chart of resolution (top, red) and multi-lattice probability (bottom,
// black) vs image number, after Interceptor (Figure 16). Polls the collector's JSON API once a second.
"use strict";
(() => {
  const POLL_MS = 1000;
  const PAGE = 10000;                         // rows per API request
  const $ = (id) => document.getElementById(id);
  const state = {
    runs: [], run: null, follow: true, window: 0,
    rows: new Map(),        // run → its rows (id order)
    loaded: new Set(),      // runs whose history has been fetched
    startRuns: null,        // runs already in the store when the page opened
    lastId: 0,              // newest row id seen (all runs)
    tick: 0, plotted: [], layout: null,
  };

  async function api(path) {
    const response = await fetch(path, { cache: "no-store" }); // the token, if any, travels in the page's cookie
    if (response.status === 401) throw new Error("this monitor needs its token: open the page as /?token=…");
    if (!response.ok) throw new Error(`${path.split("?")[0]}: HTTP ${response.status}`);
    return response.json();
  }

  function merge(run, rows) {
    let list = state.rows.get(run);
    if (!list) state.rows.set(run, (list = []));
    const last = list.length ? list[list.length - 1].id : 0;
    for (const row of rows) if (row.id > last) list.push(row);
  }

  async function loadHistory(run) {
    let since = 0;
    for (;;) {
      const page = await api(`api/results?run=${encodeURIComponent(run)}&since=${since}&limit=${PAGE}`);
      merge(run, page.results);
      since = page.last_id;
      if (!page.more) break;
    }
    state.loaded.add(run);
  }

  async function pollResults() {
    for (;;) {
      const page = await api(`api/results?since=${state.lastId}&limit=${PAGE}`);
      for (const row of page.results) {
        if (!state.loaded.has(row.run) && !state.startRuns.has(row.run)) state.loaded.add(row.run); // a new run
        if (state.loaded.has(row.run)) merge(row.run, [row]);
      }
      state.lastId = page.last_id;
      if (!page.more) break;
    }
  }

  async function pollRuns() {
    state.runs = (await api("api/runs")).runs;
    if (state.startRuns === null) state.startRuns = new Set(state.runs.map((r) => r.run));
    const select = $("run");
    const chosen = select.value;
    select.replaceChildren(new Option("newest run (follow)", ""),
      ...state.runs.map((r) => new Option(`${shortName(r.run)} (${r.n_images})`, r.run)));
    select.value = state.runs.some((r) => r.run === chosen) ? chosen : "";
    state.run = state.follow ? (state.runs.length ? state.runs[0].run : null) : chosen;
    showSummary();
  }

  function shortName(run) {
    const parts = run.split("/");
    return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : run;
  }

  async function pollStatus() {
    const status = await api("api/status");
    const badge = $("health");
    badge.textContent = status.health;
    badge.className = "badge " + (status.health === "ok" ? "ok" : status.health === "no workers" ? "warn" : "bad");
    const lag = status.lag;
    for (const name of ["received", "analysed", "behind", "queued", "waiting_on_disk", "in_flight", "errors", "skipped"]) {
      $("lag-" + name).textContent = lag[name];
    }
    $("lag-oldest").textContent = lag.oldest_waiting_s === null ? "–" : `${lag.oldest_waiting_s.toFixed(1)} s`;
    $("lag-oldest").classList.toggle("alert", (lag.oldest_waiting_s || 0) > 10);
    $("lag-behind").classList.toggle("alert", lag.behind > 0 && lag.queued + lag.waiting_on_disk > 0);
    $("lag-workers").textContent = status.workers;
    if (state.startRuns === null) state.lastId = status.store.last_id; // history comes per run
  }

  async function tick() {
    try {
      if (state.tick % 5 === 0 || state.startRuns === null) {
        if (state.startRuns === null) await pollStatus();
        await pollRuns();
      }
      if (state.run && !state.loaded.has(state.run)) await loadHistory(state.run);
      await pollResults();
      await pollStatus();
      draw();
      $("problem").hidden = true;
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      $("problem").textContent = `Cannot reach the monitor: ${error.message}`;
      $("problem").hidden = false;
    }
    state.tick += 1;
    setTimeout(tick, POLL_MS);
  }

  // Result fields of a row (or run summary) that come from an experimental model (its card says so).
  const experimental = (item, field) => (item && item.experimental ? item.experimental.split(",") : []).includes(field);
  const caveat = (item, field) => (experimental(item, field) ? " (experimental model: not yet reliable)" : "");

  function showSummary() {
    const run = state.runs.find((r) => r.run === state.run);
    $("summary").textContent = run ? `${run.run}: ${run.n_images} images (${run.n_ok} analysed, ${run.n_errors} ` +
      `errors, ${run.n_skipped} skipped); best d_min ${fmt(run.best_d_min, 2)} Å${caveat(run, "d_min")}, ` +
      `median ${fmt(run.median_d_min, 2)} Å; multi-lattice ` +
      `${run.fraction_multilattice === null ? "–" : (100 * run.fraction_multilattice).toFixed(0) + " %"}` +
      caveat(run, "multilattice") : "";
  }

  const fmt = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

  function niceTicks(low, high, count) {
    const span = high - low || 1;
    const step0 = span / count;
    const magnitude = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= step0);
    const ticks = [];
    for (let v = Math.ceil(low / step) * step; v <= high + 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
    return ticks;
  }

  function draw() {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    let rows = (state.rows.get(state.run) || []).filter((r) => r.number !== null);
    rows = rows.slice().sort((a, b) => a.number - b.number);
    if (state.window > 0 && rows.length) {
      const newest = rows[rows.length - 1].number;
      rows = rows.filter((r) => r.number > newest - state.window);
    }
    const margin = { left: 64, right: 16, top: 14, bottom: 34, gap: 34 };
    const panelHeight = (height - margin.top - margin.bottom - margin.gap) / 2;
    const top = { y: margin.top, h: panelHeight };
    const bottom = { y: margin.top + panelHeight + margin.gap, h: panelHeight };
    const plotWidth = width - margin.left - margin.right;
    const numbers = rows.map((r) => r.number);
    let xLow = numbers.length ? numbers[0] : 0, xHigh = numbers.length ? numbers[numbers.length - 1] : 1;
    if (xHigh - xLow < 10) xHigh = xLow + 10;
    const x = (n) => margin.left + ((n - xLow) / (xHigh - xLow)) * plotWidth;
    const resolved = rows.filter((r) => r.status === "ok" && r.d_min !== null);
    const probable = rows.filter((r) => r.status === "ok" && r.p_multilattice !== null);
    let dLow = Math.min(...resolved.map((r) => r.d_min)), dHigh = Math.max(...resolved.map((r) => r.d_min));
    if (!resolved.length) { dLow = 1; dHigh = 4; }
    const pad = Math.max(0.1, 0.08 * (dHigh - dLow));
    dLow = Math.max(0, dLow - pad); dHigh += pad;
    const yRes = (d) => top.y + ((d - dLow) / (dHigh - dLow)) * top.h;       // best (small d) at the top
    const yProb = (p) => bottom.y + (1 - p) * bottom.h;
    state.layout = { x, xLow, xHigh, margin, plotWidth };

    ctx.font = "12px system-ui, sans-serif";
    ctx.lineWidth = 1;
    const panel = (area, ticks, y, label, format) => {
      ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#444"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
      for (const t of ticks) {
        ctx.beginPath(); ctx.moveTo(margin.left, y(t)); ctx.lineTo(margin.left + plotWidth, y(t)); ctx.stroke();
        ctx.fillText(format(t), margin.left - 6, y(t));
      }
      ctx.strokeStyle = "#888"; ctx.strokeRect(margin.left, area.y, plotWidth, area.h);
      ctx.save(); ctx.translate(14, area.y + area.h / 2); ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center"; ctx.fillText(label, 0, 0); ctx.restore();
    };
    const resolutionExperimental = resolved.some((r) => experimental(r, "d_min"));
    const multilatticeExperimental = probable.some((r) => experimental(r, "p_multilattice"));
    panel(top, niceTicks(dLow, dHigh, 6).filter((t) => t >= dLow && t <= dHigh), yRes, "resolution d_min (Å)",
      (t) => t.toFixed(1));
    panel(bottom, [0, 0.25, 0.5, 0.75, 1], yProb, "p(multi-lattice)", (t) => t.toFixed(2));
    ctx.fillStyle = "#b71c1c"; ctx.textAlign = "left"; ctx.textBaseline = "bottom";
    if (resolutionExperimental) ctx.fillText("resolution: EXPERIMENTAL model, not yet reliable", margin.left + 4, top.y - 1);
    if (multilatticeExperimental) {
      ctx.fillText("p(multi-lattice): EXPERIMENTAL model, not yet reliable (see its model card)", margin.left + 4, bottom.y - 2);
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.fillStyle = "#444";
    for (const t of niceTicks(xLow, xHigh, 8)) {
      if (t < xLow || t > xHigh) continue;
      ctx.fillText(String(t), x(t), bottom.y + bottom.h + 6);
      ctx.fillText(String(t), x(t), top.y + top.h + 4);
    }
    ctx.fillText("image number", margin.left + plotWidth / 2, height - 14);
    ctx.setLineDash([4, 4]); ctx.strokeStyle = "#999";
    ctx.beginPath(); ctx.moveTo(margin.left, yProb(0.5)); ctx.lineTo(margin.left + plotWidth, yProb(0.5)); ctx.stroke();
    ctx.setLineDash([]);

    const radius = rows.length > 2000 ? 1.5 : 2.5;
    const dot = (px, py, colour) => { ctx.fillStyle = colour; ctx.beginPath(); ctx.arc(px, py, radius, 0, 2 * Math.PI); ctx.fill(); };
    for (const r of resolved) dot(x(r.number), yRes(r.d_min), "#d32f2f");
    for (const r of probable) dot(x(r.number), yProb(r.p_multilattice), r.multilattice ? "#000" : "#777");
    const errors = rows.filter((r) => r.status === "error"), skipped = rows.filter((r) => r.status === "skipped");
    ctx.fillStyle = "#ef6c00";
    for (const r of errors) ctx.fillRect(x(r.number) - 1, top.y + top.h - 8, 2, 8);
    ctx.fillStyle = "#90a4ae";
    for (const r of skipped) ctx.fillRect(x(r.number) - 1, bottom.y + bottom.h - 8, 2, 8);
    if (!rows.length) {
      ctx.fillStyle = "#888"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.fillText("no results yet", margin.left + plotWidth / 2, top.y + top.h / 2);
    }
    state.plotted = rows;
    Object.assign(canvas.dataset, {
      run: state.run || "", points: rows.length, resolutionPoints: resolved.length, multilatticePoints: probable.length,
      errors: errors.length, skipped: skipped.length, lastNumber: rows.length ? rows[rows.length - 1].number : "",
      notAnalysed: rows.filter((r) => r.not_analysed).length,
      resolutionExperimental, multilatticeExperimental,
    });
  }

  function nearest(event) {
    if (!state.layout || !state.plotted.length) return null;
    const { margin, plotWidth, xLow, xHigh } = state.layout;
    const box = $("chart").getBoundingClientRect();
    const n = xLow + ((event.clientX - box.left - margin.left) / plotWidth) * (xHigh - xLow);
    let best = null;
    for (const r of state.plotted) if (!best || Math.abs(r.number - n) < Math.abs(best.number - n)) best = r;
    return best;
  }

  $("chart").addEventListener("mousemove", (event) => {
    const r = nearest(event);
    if (!r) return;
    $("readout").textContent = r.status === "ok"
      ? `image ${r.number}: d_min ${fmt(r.d_min, 2)} Å, d_mean ${fmt(r.d_mean, 2)} Å${caveat(r, "d_min")}, ` +
        `p(multi-lattice) ${fmt(r.p_multilattice, 3)}${caveat(r, "p_multilattice")}` +
        (r.not_analysed ? ` — not analysed by ${r.not_analysed}` : "")
      : `image ${r.number}: ${r.status}${r.error ? " — " + r.error : ""}`;
  });
  $("chart").addEventListener("click", async (event) => {
    const r = nearest(event);
    if (!r) return;
    const details = $("details");
    details.textContent = JSON.stringify(await api(`api/results/${r.id}`), null, 2);
    details.hidden = false;
  });
  $("run").addEventListener("change", () => {
    state.follow = $("run").value === "";
    state.run = state.follow ? (state.runs.length ? state.runs[0].run : null) : $("run").value;
    showSummary();
    draw();
  });
  $("window").addEventListener("change", () => { state.window = Number($("window").value); draw(); });
  window.addEventListener("resize", draw);
  tick();
})();
