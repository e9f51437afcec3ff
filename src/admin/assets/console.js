// The multiagents console: reads the JSON API of the instance that served
// it. The token (if the API needs one) stays in this tab's sessionStorage
// and travels only in the Authorization header.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { cursors: [null], page: 0, next: null, current: null, liveTimer: null };

function headers() {
  const t = sessionStorage.getItem("ma-token");
  return t ? { Authorization: "Bearer " + t } : {};
}
async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = body.error || {};
    if (r.status === 401) banner("The API needs the admin token: type it in the box at the top right.");
    throw new Error((e.kind ? e.kind + ": " : "") + (e.message || r.statusText));
  }
  banner("");
  return body;
}
function banner(text) { const b = $("banner"); b.textContent = text; b.style.display = text ? "block" : "none"; }
function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
function when(ms) { return ms ? new Date(ms).toLocaleTimeString() : ""; }
function took(ms) { if (ms == null) return "…"; return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(2) + " s"; }
function badge(label) { return `<span class="status ${esc(label)}">${esc(label)}</span>`; }

// Tabs
// The view is in the URL's fragment (#transactions, #live, #workers, or
// #tx/<id> for one transaction), so it can be linked to and reloaded.
const TABS = ["transactions", "live", "workers"];
document.querySelectorAll("header nav a").forEach((a) => a.addEventListener("click", () => { location.hash = a.dataset.tab; }));
window.addEventListener("hashchange", route);
function tabFromHash() { const t = location.hash.slice(1); return TABS.includes(t) ? t : "transactions"; }
function route() {
  let tx = null;
  if (location.hash.startsWith("#tx/")) {
    try { tx = decodeURIComponent(location.hash.slice(4)); } catch (e) { tx = null; }
  }
  show(tx ? "transactions" : tabFromHash());
  if (tx) detail(tx);
}
function show(tab) {
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("on", a.dataset.tab === tab));
  document.querySelectorAll("main section").forEach((s) => s.classList.toggle("on", s.id === tab));
  clearInterval(state.liveTimer);
  if (tab === "live") { live(); state.liveTimer = setInterval(live, 2000); }
  if (tab === "workers") workers();
  if (tab === "transactions") list();
}

// Token
$("token").value = sessionStorage.getItem("ma-token") || "";
$("token").addEventListener("change", () => { sessionStorage.setItem("ma-token", $("token").value.trim()); workers(); route(); });

// Transactions
async function list() {
  const status = $("status-filter").value;
  const cursor = state.cursors[state.page];
  const q = new URLSearchParams({ limit: "25" });
  if (status) q.set("status", status);
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("/api/v1/transactions?" + q);
    state.next = page.cursor;
    $("next-page").disabled = !page.cursor;
    $("tx-count").textContent = `page ${state.page + 1}: ${page.items.length} transaction(s)` +
      (status ? ` with status ${status}, of ${page.scanned} read` : "");
    $("tx-rows").innerHTML = page.items.length ? page.items.map((t) => `
      <tr class="row" data-tx="${esc(t.tx)}"><td class="mono">${esc(t.tx)}</td><td>${esc(t.workflow)}</td>
      <td>${badge(t.status_label)}</td><td>${esc(t.current_step || "")}</td><td>${when(t.created_ms)}</td><td>${took(t.elapsed_ms)}</td></tr>`).join("")
      : `<tr><td colspan="6" class="muted">no transactions${status ? " with status " + esc(status) : ""}</td></tr>`;
    document.querySelectorAll("#tx-rows tr.row").forEach((r) => r.addEventListener("click", () => { location.hash = "tx/" + encodeURIComponent(r.dataset.tx); }));
  } catch (e) {
    $("tx-rows").innerHTML = `<tr><td colspan="6" class="err">${esc(e.message)}</td></tr>`;
  }
}
$("status-filter").addEventListener("change", () => { state.cursors = [null]; state.page = 0; list(); });
$("refresh").addEventListener("click", list);
$("first-page").addEventListener("click", () => { state.cursors = [null]; state.page = 0; list(); });
$("next-page").addEventListener("click", () => { state.cursors[state.page + 1] = state.next; state.page += 1; list(); });

async function detail(tx) {
  state.current = tx;
  $("detail").hidden = false;
  $("detail").scrollIntoView({ block: "start" });
  try {
    const t = await api("/api/v1/transactions/" + encodeURIComponent(tx));
    $("detail-title").textContent = `${t.workflow} · ${t.tx}`;
    $("detail-status").innerHTML = badge(t.status_label) + ` <span class="muted">${took(t.elapsed_ms)}</span>`;
    $("detail-error").textContent = t.error || "";
    $("detail-output").textContent = t.output ? JSON.stringify(t.output, null, 2) : "";
    $("detail-output-box").hidden = !t.output;
    $("cancel-tx").hidden = !["running", "compensating"].includes(t.status);
    const h = t.history || [];
    const start = t.created_ms, end = Math.max(t.updated_ms, ...h.map((a) => a.finished_ms || Date.now()));
    const span = Math.max(1, end - start);
    $("timeline").innerHTML = h.map((a) => {
      const left = ((a.started_ms - start) / span) * 100;
      const width = (((a.finished_ms || Date.now()) - a.started_ms) / span) * 100;
      const bad = a.outcome && a.outcome !== "ok" && a.outcome !== "skipped";
      const label = `${a.kind === "compensate" ? "↩ " : ""}${a.step} #${a.attempt}`;
      return `<div class="row"><div class="label" title="${esc(label)}">${esc(label)}</div>
        <div class="lane" title="${esc(label)}: ${esc(a.outcome || "running")}">
        <div class="span ${a.kind === "compensate" ? "compensate" : ""} ${bad ? "bad" : ""}" style="left:${left}%;width:${width}%"></div></div></div>`;
    }).join("");
    $("attempts").innerHTML = h.map((a) => `<tr><td>${esc(a.step)}</td><td>${esc(a.kind)}</td><td>${a.attempt}</td>
      <td>${esc(a.worker)}</td><td>${when(a.started_ms)}</td><td>${took(a.finished_ms ? a.finished_ms - a.started_ms : null)}</td>
      <td class="wrap ${a.outcome && a.outcome !== "ok" && a.outcome !== "skipped" ? "err" : ""}">${esc(a.outcome || "running")}</td></tr>`).join("");
  } catch (e) {
    $("detail-error").textContent = e.message;
  }
}
$("close-detail").addEventListener("click", () => { $("detail").hidden = true; state.current = null; location.hash = "transactions"; });
$("cancel-tx").addEventListener("click", async () => {
  if (!state.current) return;
  try { await api(`/api/v1/transactions/${encodeURIComponent(state.current)}/cancel`,
    { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }); } catch (e) { $("detail-error").textContent = e.message; }
  setTimeout(() => detail(state.current), 300);
});

// Submit
$("submit").addEventListener("click", async () => {
  let input;
  try { input = JSON.parse($("submit-input").value || "{}"); } catch (e) { $("submit-result").textContent = "input is not JSON: " + e.message; return; }
  try {
    const r = await api("/api/v1/transactions", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ workflow: $("submit-workflow").value, input }) });
    $("submit-result").textContent = "started " + r.tx;
    setTimeout(() => { location.hash = "tx/" + encodeURIComponent(r.tx); list(); }, 300);
  } catch (e) { $("submit-result").textContent = e.message; }
});

// Workers
async function workers() {
  try {
    const w = await api("/api/v1/workers");
    $("submit-workflow").innerHTML = w.workflows.map((n) => `<option>${esc(n)}</option>`).join("");
    $("worker-rows").innerHTML = w.workers.map((x) => `<tr><td>${esc(x.name)}</td><td>${esc(x.kind)}</td>
      <td>${x.in_flight} / ${x.limit ?? x.max_concurrent}</td><td>${x.queued}</td><td>${badge(x.breaker)}</td>
      <td>${x.calls.executions}</td><td>${x.calls.failures}</td><td>${x.calls.p50_ms.toFixed(2)} ms</td><td>${x.calls.p99_ms.toFixed(2)} ms</td></tr>`).join("")
      || `<tr><td colspan="9" class="muted">no workers</td></tr>`;
  } catch (e) { $("worker-rows").innerHTML = `<tr><td colspan="9" class="err">${esc(e.message)}</td></tr>`; }
}

// Live
function chart(canvas, values, color) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 24;
  c.clearRect(0, 0, w, h);
  const max = Math.max(1, ...values.map((v) => v || 0));
  c.strokeStyle = "#e4e7ec"; c.fillStyle = "#667085"; c.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) { const y = pad + ((h - 2 * pad) * i) / 4; c.beginPath(); c.moveTo(pad, y); c.lineTo(w - 4, y); c.stroke();
    c.fillText(String(Math.round((max * (4 - i)) / 4 * 10) / 10), 0, y + 4); }
  c.strokeStyle = color; c.lineWidth = 2; c.beginPath();
  values.forEach((v, i) => { const x = pad + ((w - pad - 4) * i) / Math.max(1, values.length - 1), y = h - pad - ((h - 2 * pad) * (v || 0)) / max;
    i ? c.lineTo(x, y) : c.moveTo(x, y); });
  c.stroke();
}
async function live() {
  try {
    const s = await api("/api/v1/stats");
    if (!s.live) { $("rate").textContent = "n/a"; $("latency").textContent = "metrics are off in this process"; return; }
    $("rate").innerHTML = `${s.live.rate_10s.toFixed(1)} <small>workflows/s</small>`;
    const f = (v) => (v == null ? "–" : v.toFixed(2) + " ms");
    $("latency").innerHTML = `p50 ${f(s.live.p50_ms)} <small>·</small> p99 ${f(s.live.p99_ms)}`;
    chart($("chart-rate"), s.live.seconds.map((x) => x.completed + x.failed), "#175cd3");
    chart($("chart-p99"), s.live.seconds.map((x) => x.p99_ms), "#c4320a");
    const rss = s.memory && s.memory.resident_bytes;
    $("memory").textContent = rss ? `resident memory ${(rss / 1048576).toFixed(1)} MiB` : "";
  } catch (e) { $("rate").textContent = e.message; }
}

workers();
route();
