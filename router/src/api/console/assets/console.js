// nfai admin console: logs in with the admin token (kept in sessionStorage), shows models,
// memory, keys, vector stores and source syncs from the admin API, runs model actions and
// syncs, and charts throughput and latency from /metrics.
"use strict";

const TOKEN_KEY = "nfai_admin_token";
const REFRESH_MS = 2000;
const POINTS = 60;

const $ = (id) => document.getElementById(id);
const token = () => sessionStorage.getItem(TOKEN_KEY);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (res.status === 401) { logout("The admin token was refused."); }
  return { status: res.status, data };
}

function errorText(r) {
  return (r.data && r.data.error && r.data.error.message) || ("HTTP " + r.status);
}

// ---- login ----

async function login(ev) {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  const r = await api("GET", "/admin/models");
  if (r.status === 200) {
    $("token").value = "";
    start();
  } else if (r.status !== 401) {
    $("login-error").textContent = errorText(r);
  }
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  if (timer) { clearInterval(timer); timer = null; }
}

let timer = null;

function start() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  $("login-error").textContent = "";
  refresh();
  loadKeys();
  loadStores();
  loadSources();
  if (!timer) timer = setInterval(refresh, REFRESH_MS);
}

// ---- models ----

let queued = {};

async function action(id, what, body) {
  $("action-result").textContent = what + " " + id + "…";
  const r = await api("POST", "/admin/models/" + encodeURIComponent(id) + "/" + what, body);
  $("action-result").textContent = r.status === 200
    ? what + " " + id + ": done"
    : what + " " + id + ": " + errorText(r);
  refresh();
}

function button(label, onclick, name) {
  const b = el("button", label);
  b.type = "button";
  if (name) b.dataset.action = name;
  b.addEventListener("click", onclick);
  return b;
}

function renderModels(models) {
  const body = $("models").querySelector("tbody");
  body.replaceChildren();
  for (const m of models) {
    const tr = el("tr");
    tr.dataset.model = m.id;
    tr.append(el("td", m.id), el("td", m.kind), el("td", m.state, "state-" + m.state),
      el("td", m.device), el("td", bytes(m.actual_bytes ?? m.estimated_bytes), "num"),
      el("td", m.in_flight, "num"), el("td", queued[m.id] ?? 0, "num"),
      el("td", m.pinned ? "yes" : "no"), el("td", m.keep_alive));
    const actions = el("td");
    const keep = el("input");
    keep.className = "keep-alive";
    keep.placeholder = "30m";
    keep.title = "keep-alive: 30m, 1h, seconds, -1 for ever";
    actions.append(
      button("Load", () => action(m.id, "load", {}), "load"),
      button("Unload", () => action(m.id, "unload", {}), "unload"),
      m.pinned ? button("Unpin", () => action(m.id, "unpin"), "unpin")
               : button("Pin", () => action(m.id, "pin"), "pin"),
      keep,
      button("Keep alive", () => {
        const v = keep.value.trim();
        if (v) action(m.id, "load", { keep_alive: /^-?\d+$/.test(v) ? Number(v) : v });
      }, "keep-alive"));
    tr.append(actions);
    body.append(tr);
  }
}

function renderMemory(mem) {
  const body = $("memory").querySelector("tbody");
  body.replaceChildren();
  for (const d of (mem && mem.data) || []) {
    const tr = el("tr");
    tr.append(el("td", d.device), el("td", bytes(d.budget_bytes), "num"),
      el("td", bytes(d.used_bytes), "num"), el("td", bytes(d.free_bytes), "num"),
      el("td", (d.resident || []).join(", ")));
    body.append(tr);
  }
}

async function refresh() {
  if (!token()) return;
  await scrape();
  const [models, mem] = await Promise.all([api("GET", "/admin/models"), api("GET", "/admin/memory")]);
  if (models.status === 200) {
    renderModels(models.data.data || []);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  }
  if (mem.status === 200) renderMemory(mem.data);
  loadSources();
}

// ---- keys and stores ----

function table(rows, columns) {
  const t = el("table");
  const head = el("tr");
  for (const c of columns) head.append(el("th", c));
  t.append(el("thead"));
  t.tHead.append(head);
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const v = r[c];
      tr.append(el("td", v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : v));
    }
    body.append(tr);
  }
  t.append(body);
  return t;
}

function columnsOf(rows, preferred) {
  const seen = new Set();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  const cols = preferred.filter((c) => seen.has(c));
  for (const k of seen) if (!cols.includes(k) && cols.length < 8) cols.push(k);
  return cols;
}

async function loadKeys() {
  const box = $("keys");
  const r = await api("GET", "/admin/keys");
  box.replaceChildren();
  if (r.status !== 200) { box.append(el("p", "Keys are not available: " + errorText(r))); return; }
  const rows = Array.isArray(r.data) ? r.data : (r.data && r.data.data) || [];
  if (!rows.length) { box.append(el("p", "No keys.")); return; }
  box.append(table(rows, columnsOf(rows, ["id", "name", "prefix", "created_at", "last_used_at", "revoked"])));
}

async function loadStores() {
  const box = $("stores");
  const r = await api("GET", "/v1/vector_stores");
  box.replaceChildren();
  if (r.status !== 200) { box.append(el("p", "Vector stores are not available: " + errorText(r))); return; }
  const rows = (r.data && r.data.data) || [];
  if (!rows.length) { box.append(el("p", "No vector stores.")); return; }
  box.append(table(rows, columnsOf(rows, ["id", "name", "status", "usage_bytes", "file_counts", "created_at"])));
}

async function loadSources() {
  const box = $("sources");
  const r = await api("GET", "/admin/sources");
  box.replaceChildren();
  if (r.status !== 200) { box.append(el("p", "Sources are not available: " + errorText(r))); return; }
  const rows = (r.data && r.data.data) || [];
  if (!rows.length) { box.append(el("p", "No [[retrieval.sources]] are configured.")); return; }
  const cols = ["name", "vector_store", "state", "rows_read", "upserted", "unchanged", "deleted",
    "rows_total", "completed_syncs", "cause"];
  const t = table(rows, cols);
  t.tHead.rows[0].append(el("th", ""));
  rows.forEach((s, i) => {
    const tr = t.tBodies[0].rows[i];
    tr.dataset.source = s.name;
    const td = el("td");
    td.append(button("Sync now", async () => {
      const path = "/admin/vector_stores/" + encodeURIComponent(s.vector_store) +
        "/sync?source=" + encodeURIComponent(s.name);
      const res = await api("POST", path);
      $("action-result").textContent = res.status === 202
        ? "sync " + s.name + ": started"
        : "sync " + s.name + ": " + errorText(res);
      loadSources();
    }, "sync"));
    tr.append(td);
  });
  box.append(t);
}

// ---- metrics and charts ----

/** Sums of each family's samples, and per-model values of the engine queue gauge. */
function parseMetrics(text) {
  const sums = {};
  const waiting = {};
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    sums[m[1]] = (sums[m[1]] || 0) + v;
    if (m[1] === "nfai_engine_waiting_sequences") {
      const model = /model="([^"]*)"/.exec(m[2] || "");
      if (model) waiting[model[1]] = v;
    }
  }
  return { sums, waiting };
}

const series = { tps: [], latency: [], ttft: [] };
let last = null;

function push(list, v) {
  list.push(v);
  if (list.length > POINTS) list.shift();
}

async function scrape() {
  let text;
  try {
    const res = await fetch("/metrics", { headers: { Authorization: "Bearer " + token() } });
    if (res.status !== 200) return;
    text = await res.text();
  } catch (_) { return; }
  const now = performance.now() / 1000;
  const { sums, waiting } = parseMetrics(text);
  queued = waiting;
  const cur = {
    t: now,
    tokens: sums["nfai_completion_tokens_total"] || 0,
    durSum: sums["nfai_request_duration_seconds_sum"] || 0,
    durCount: sums["nfai_request_duration_seconds_count"] || 0,
    ttftSum: sums["nfai_time_to_first_token_seconds_sum"] || 0,
    ttftCount: sums["nfai_time_to_first_token_seconds_count"] || 0,
  };
  if (last) {
    const dt = Math.max(cur.t - last.t, 1e-3);
    push(series.tps, Math.max(0, (cur.tokens - last.tokens) / dt));
    const dc = cur.durCount - last.durCount;
    push(series.latency, dc > 0 ? (cur.durSum - last.durSum) / dc : 0);
    const tc = cur.ttftCount - last.ttftCount;
    push(series.ttft, tc > 0 ? (cur.ttftSum - last.ttftSum) / tc : 0);
    draw($("throughput-chart"), [{ data: series.tps, color: "#2a6fdb" }]);
    draw($("latency-chart"), [{ data: series.latency, color: "#d9480f" }, { data: series.ttft, color: "#2f9e44" }]);
  }
  last = cur;
}

function draw(canvas, lines) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const l of lines) for (const v of l.data) max = Math.max(max, v);
  max = max > 0 ? max * 1.1 : 1;
  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#5b6470";
  ctx.font = "10px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = pad + (h - 2 * pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke();
    ctx.fillText((max * (4 - i) / 4).toPrecision(2), 2, y - 2);
  }
  for (const l of lines) {
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    l.data.forEach((v, i) => {
      const x = pad + (w - pad - 4) * i / (POINTS - 1);
      const y = h - pad - (h - 2 * pad) * v / max;
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
}

// ---- start ----

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", () => logout());
if (token()) start();
