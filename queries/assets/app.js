// fjord dashboard: live occupancy per lot, the last hours as a chart, firing alerts and a SQL
// console. Plain JavaScript and SVG; everything is served by the fjord binary.
"use strict";

const state = { token: null, timers: [] };
const COLORS = ["#1f6feb", "#2da44e", "#cf222e", "#8250df", "#d4a72c", "#0a7ea4", "#bf3989", "#57606a"];

function tokenFromPage() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    const t = decodeURIComponent(m[1]);
    localStorage.setItem("fjord-token", t);
    history.replaceState(null, "", location.pathname);
    return t;
  }
  return localStorage.getItem("fjord-token");
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (r.status === 401) throw new Unauthorized("wrong or missing token");
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

const sql = (text) => api("/api/sql", { method: "POST", headers: { "Content-Type": "text/plain", Accept: "application/json" }, body: text });

function setConn(ok, text) {
  const c = document.getElementById("conn");
  c.className = "pill " + (ok === null ? "pill-wait" : ok ? "pill-ok" : "pill-bad");
  c.textContent = text;
}

function level(ratio) { return ratio >= 0.9 ? "high" : ratio >= 0.7 ? "mid" : "low"; }
const pct = (x) => (x * 100).toFixed(1) + " %";

function renderLots(lots) {
  const box = document.getElementById("lots");
  if (!lots.length) { box.replaceChildren(el("p", { class: "muted" }, "No lot has reported yet.")); return; }
  const existing = new Map([...box.querySelectorAll(".lot")].map((n) => [n.dataset.lot, n]));
  const cards = lots.map((l) => {
    let card = existing.get(l.lot_id);
    if (!card) {
      card = el("div", { class: "lot", "data-lot": l.lot_id },
        el("div", { class: "name" }), el("div", { class: "zone" }),
        el("div", { class: "figures" }, el("span", { class: "ratio" }), el("span", { class: "occupied muted" })),
        el("div", { class: "bar" }, el("div")));
    }
    const ratio = Number(l.occupancy_ratio) || 0;
    card.className = "lot " + level(ratio);
    card.querySelector(".name").textContent = l.name || l.lot_id;
    card.querySelector(".zone").textContent = (l.zone ? l.zone + " · " : "") + l.lot_id;
    card.querySelector(".ratio").textContent = pct(ratio);
    card.querySelector(".occupied").textContent = `${l.occupied} / ${l.capacity}`;
    card.querySelector(".bar > div").style.width = Math.min(100, ratio * 100) + "%";
    card.dataset.occupied = l.occupied;
    return card;
  });
  box.replaceChildren(...cards);
  const occupied = lots.reduce((s, l) => s + Number(l.occupied || 0), 0);
  const capacity = lots.reduce((s, l) => s + Number(l.capacity || 0), 0);
  document.getElementById("kpi-lots").textContent = lots.length;
  document.getElementById("kpi-occupied").textContent = `${occupied} / ${capacity}`;
  document.getElementById("kpi-ratio").textContent = capacity ? pct(occupied / capacity) : "–";
}

function renderAlerts(alerts) {
  document.getElementById("kpi-alerts").textContent = alerts.length;
  const box = document.getElementById("alerts");
  if (!alerts.length) { box.replaceChildren(el("p", { class: "muted" }, "No alert is firing.")); return; }
  const rows = alerts.slice(0, 50).map((a) => el("tr", {},
    el("td", {}, el("span", { class: "sev " + a.severity }, a.severity)),
    el("td", {}, a.rule), el("td", {}, a.lot_id || a.gateway_id || ""), el("td", {}, a.space_id || ""),
    el("td", {}, new Date(a.started_at).toLocaleTimeString())));
  box.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["", "rule", "lot", "space", "since"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
}

// A line chart of series [{name, points: [[x, y], …], color, dashed, band: [[x, lo, hi], …]}] with x
// in ms; `now` (ms) draws a marker where the past ends and the forecast begins.
function lineChart(target, series, yMax, now) {
  const W = 800, H = 260, L = 44, R = 12, T = 10, B = 26;
  const all = series.flatMap((s) => s.points);
  if (!all.length) { target.replaceChildren(el("p", { class: "muted" }, "No windows yet.")); return; }
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  const y1 = yMax || Math.max(1e-9, ...all.map((p) => p[1]));
  const sx = (x) => L + (x1 === x0 ? 0 : (x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - y / y1) * (H - T - B);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    root.append(svg("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: "axis" }));
    const t = svg("text", { x: 4, y: sy(y) + 4 }); t.textContent = yMax === 1 ? Math.round(y * 100) + "%" : +y.toFixed(2); root.append(t);
  }
  for (let i = 0; i <= 4; i++) {
    const x = x0 + ((x1 - x0) * i) / 4;
    const t = svg("text", { x: sx(x) - 16, y: H - 6 }); t.textContent = new Date(x).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); root.append(t);
  }
  if (now && now > x0 && now < x1) {
    root.append(svg("line", { x1: sx(now), x2: sx(now), y1: T, y2: H - B, class: "now" }));
    const t = svg("text", { x: sx(now) + 4, y: T + 10, class: "now-label" }); t.textContent = "now · forecast →"; root.append(t);
  }
  series.forEach((s, i) => {
    const color = COLORS[(s.color ?? i) % COLORS.length];
    if (s.band && s.band.length) {
      const upper = s.band.map((p) => sx(p[0]).toFixed(1) + " " + sy(p[2]).toFixed(1));
      const lower = s.band.slice().reverse().map((p) => sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1));
      root.append(svg("path", { d: "M" + upper.join(" L") + " L" + lower.join(" L") + " Z", fill: color, "fill-opacity": 0.15, stroke: "none", "data-band": s.name }));
    }
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    const attrs = { d, fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name };
    if (s.dashed) { attrs["stroke-dasharray"] = "5 4"; attrs["data-forecast"] = s.name; }
    root.append(svg("path", attrs));
  });
  const named = series.filter((s) => !s.dashed);
  const legend = el("div", { class: "legend" }, ...named.map((s, i) => el("span", {}, el("i", { style: `background:${COLORS[(s.color ?? i) % COLORS.length]}` }), s.name)),
    ...(series.some((s) => s.dashed) ? [el("span", { class: "muted", style: "margin-left:12px" }, "dashed: forecast, band: 10–90 %")] : []));
  target.replaceChildren(root, legend);
}

function barChart(target, labels, values, name) {
  const W = 800, H = 200, L = 44, B = 30, T = 8;
  const max = Math.max(1e-9, ...values);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": name });
  const bw = (W - L) / values.length;
  values.forEach((v, i) => {
    const h = (Math.max(0, v) / max) * (H - B - T);
    root.append(svg("rect", { x: L + i * bw + 2, y: H - B - h, width: Math.max(1, bw - 4), height: h, fill: COLORS[0], rx: 2 }));
    if (values.length <= 24) { const t = svg("text", { x: L + i * bw + 2, y: H - 10 }); t.textContent = String(labels[i]).slice(0, 12); root.append(t); }
  });
  const t = svg("text", { x: 4, y: T + 10 }); t.textContent = +max.toFixed(2); root.append(t);
  target.replaceChildren(root, el("div", { class: "legend" }, name));
}

async function refreshLots() { renderLots(await api("/api/lots")); }
async function refreshAlerts() { renderAlerts(await api("/api/alerts?status=firing")); }
async function refreshHistory() {
  const [rows, forecast] = await Promise.all([
    sql("SELECT lot_id, window_end, occupancy_ratio FROM occupancy_1m WHERE window_end > now() - INTERVAL '3 hours' ORDER BY lot_id, window_end"),
    // the next 6 hours; the table is absent when the forecast is off
    sql("SELECT table_name FROM information_schema.tables WHERE table_name = 'occupancy_forecast'").then((t) => t.length
      ? sql("SELECT lot_id, target_time, occupancy_ratio, lower, upper FROM occupancy_forecast WHERE horizon <= 360 ORDER BY lot_id, target_time")
      : []),
  ]);
  const lots = new Map();
  const lot = (id) => { if (!lots.has(id)) lots.set(id, { past: [], future: [], band: [] }); return lots.get(id); };
  for (const r of rows) lot(r.lot_id).past.push([Date.parse(r.window_end), Number(r.occupancy_ratio)]);
  for (const r of forecast) {
    const x = Date.parse(r.target_time) + 600000; // the window's end, like the past windows
    lot(r.lot_id).future.push([x, Number(r.occupancy_ratio)]);
    lot(r.lot_id).band.push([x, Number(r.lower), Number(r.upper)]);
  }
  const series = [];
  [...lots].slice(0, 8).forEach(([name, l], i) => {
    if (l.past.length) series.push({ name, points: l.past, color: i });
    if (l.future.length) {
      // the forecast continues the line from its last window
      const joined = l.past.length ? [l.past[l.past.length - 1], ...l.future] : l.future;
      series.push({ name: name + " forecast", points: joined, color: i, dashed: true, band: l.band });
    }
  });
  lineChart(document.getElementById("history"), series, 1, forecast.length ? Date.now() : null);
}

async function runConsole() {
  const text = document.getElementById("sql-input").value;
  const status = document.getElementById("sql-status"), out = document.getElementById("sql-result"), chart = document.getElementById("sql-chart");
  status.className = "muted"; status.textContent = "running…";
  const started = performance.now();
  try {
    const r = await fetch("/api/sql", { method: "POST", headers: { Authorization: "Bearer " + state.token, "Content-Type": "text/plain", Accept: "application/json" }, body: text });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    const columns = (r.headers.get("x-fjord-columns") || "").split(",").filter(Boolean);
    const ms = Math.round(performance.now() - started);
    status.textContent = `${body.length} row${body.length === 1 ? "" : "s"} in ${ms} ms`;
    const shown = body.slice(0, 500);
    out.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))),
      el("tbody", {}, ...shown.map((row) => el("tr", {}, ...columns.map((c) => el("td", {}, row[c] === null ? "NULL" : row[c])))))));
    const numeric = columns.filter((c) => shown.length && shown.every((row) => row[c] === null || typeof row[c] === "number"));
    const label = columns.find((c) => !numeric.includes(c)) || columns[0];
    const value = numeric.find((c) => c !== label);
    if (value && shown.length > 1) barChart(chart, shown.slice(0, 60).map((r) => r[label]), shown.slice(0, 60).map((r) => Number(r[value]) || 0), `${value} by ${label}`);
    else chart.replaceChildren();
  } catch (e) {
    status.className = "error"; status.textContent = e.message; out.replaceChildren(); chart.replaceChildren();
  }
}

function every(ms, f) {
  const tick = async () => {
    try {
      await f();
      setConn(true, "live");
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (e instanceof Unauthorized) return askToken("That token was refused.");
      setConn(false, "offline");
    }
  };
  tick();
  state.timers.push(setInterval(tick, ms));
}

function askToken(message) {
  state.timers.forEach(clearInterval); state.timers = [];
  setConn(false, "signed out");
  document.getElementById("login").classList.remove("hidden");
  document.getElementById("login-error").textContent = message || "";
}

function start() {
  document.getElementById("login").classList.add("hidden");
  every(2000, refreshLots);
  every(5000, refreshAlerts);
  every(15000, refreshHistory);
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = document.getElementById("token-input").value.trim();
  localStorage.setItem("fjord-token", state.token);
  start();
});
document.getElementById("sql-run").addEventListener("click", runConsole);
document.getElementById("sql-input").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); runConsole(); } });

state.token = tokenFromPage();
if (state.token) start(); else askToken();
