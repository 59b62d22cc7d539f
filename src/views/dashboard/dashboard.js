// The massgen-rs dashboard: polls /status every 2 s and /usage/series every 10 s and draws
// them with plain DOM and inline SVG. Every shown value carries data- attributes so tests (and
// scripts) can read what the page shows. On the gateway, an admin client key entered by the
// user is kept in this tab's sessionStorage and sent as a bearer header; the admin actions on
// provider keys show only once /admin/keys accepts it.
"use strict";

const POLL_MS = 2000;
const USAGE_MS = 10000;
const KEY_STORE = "massgen-admin-key";
const mode = document.body.dataset.mode;
let admin = false;
let lastKeys = [];

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function adminKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ""; } catch (_) { return ""; }
}

function headers() {
  const key = adminKey();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function getJson(path) {
  const r = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function fmt(n) {
  if (typeof n !== "number") return String(n);
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n * 100) / 100);
}

function secs(s) { return s >= 60 ? Math.round(s / 6) / 10 + " min" : (Math.round(s * 10) / 10) + " s"; }

function badge(text, cls) { return el("span", { class: "badge " + (cls || text) }, text); }

function replace(node, ...children) { node.replaceChildren(...children); }

// ---- quotas ----
function gauge(scope, l) {
  const pct = l.limit > 0 ? Math.min(100, (100 * l.used) / l.limit) : 0;
  const level = l.remaining === 0 ? "full" : pct >= 75 ? "high" : "ok";
  const fill = el("div", { class: "fill" });
  fill.style.width = pct + "%";
  return el("div", {
      class: "gauge", "data-scope": scope, "data-dimension": l.dimension, "data-period": l.period,
      "data-used": l.used, "data-limit": l.limit, "data-utilization": l.utilization_pct,
      "data-level": level, "data-learned": l.learned },
    el("div", { class: "label" },
      el("span", {}, l.dimension + " per " + l.period + (l.learned ? " (learned)" : "")),
      el("span", { class: "value" }, fmt(l.used) + " / " + fmt(l.limit) + "  " + l.utilization_pct + "%")),
    el("div", { class: "track" }, fill));
}

function renderScopes(status) {
  const waits = {};
  for (const e of status.routing || []) {
    if (e.event === "quota_wait") waits[e.target] = e;
  }
  const cards = (status.scopes || []).map((s) => {
    const meta = [];
    meta.push("queue " + s.queue_depth);
    meta.push("in flight " + s.in_flight + (s.concurrency ? "/" + s.concurrency : ""));
    if (s.cooldown_remaining_secs > 0) meta.push("cooldown " + secs(s.cooldown_remaining_secs) + " (" + (s.cooldown_reason || "") + ")");
    else if (s.cooldown_reason) meta.push("closed: " + s.cooldown_reason);
    const wait = s.queue_depth > 0 ? waits[s.scope] : null;
    return el("div", { class: "scope", "data-scope": s.scope, "data-state": s.state,
        "data-queue-depth": s.queue_depth, "data-cooldown-secs": s.cooldown_remaining_secs },
      el("h3", {}, s.scope, " ", badge(s.state)),
      ...s.limits.map((l) => gauge(s.scope, l)),
      el("div", { class: "meta" }, meta.join(" · ")),
      wait ? el("div", { class: "meta wait", "data-wait": wait.detail }, "latest wait: " + (wait.agent ? wait.agent + ", " : "") + wait.detail) : null,
      s.learned_limits.length ? el("div", { class: "meta learned" }, "learned: " + s.learned_limits.join("; ")) : null,
      el("div", { class: "meta" }, "granted " + s.granted_total + " · denied " + s.denied_total));
  });
  if (cards.length === 0) cards.push(el("p", { class: "muted" }, status.note || "No quota scopes."));
  replace($("scopes"), ...cards);
}

// ---- keys ----
async function adminAction(id, action) {
  const init = { method: "POST", headers: Object.assign({ "content-type": "application/json" }, headers()) };
  if (action === "cooldown") {
    const s = prompt("Rest this key for how many seconds?", "60");
    if (!s) return;
    init.body = JSON.stringify({ seconds: Number(s) });
  }
  const r = await fetch("/admin/keys/" + encodeURIComponent(id) + "/" + action, init);
  if (!r.ok) showError("admin " + action + ": HTTP " + r.status);
  poll();
}

function renderKeys(keys) {
  lastKeys = keys;
  const rows = keys.map((k) => {
    const actions = el("td", { class: "admin-only" });
    actions.hidden = !admin;
    if (admin) {
      for (const a of [k.status === "disabled" ? "enable" : "disable", "cooldown"]) {
        const b = el("button", { class: "small", type: "button", "data-action": a, "data-key-id": k.id }, a);
        b.addEventListener("click", () => adminAction(k.id, a));
        actions.append(b, " ");
      }
    }
    return el("tr", { "data-key-id": k.id, "data-key-mask": k.key, "data-key-status": k.status },
      el("td", { class: "mask" }, k.key), el("td", { class: "origin" }, k.origin), el("td", {}, badge(k.status)),
      el("td", {}, k.calls + (k.rate_limited ? " (" + k.rate_limited + " limited)" : "")),
      el("td", { class: "why" }, k.reason || ""), actions);
  });
  replace($("keys").tBodies[0], ...rows);
  $("keys-empty").hidden = keys.length > 0;
  for (const th of document.querySelectorAll("th.admin-only")) th.hidden = !admin;
}

// ---- providers and pools ----
function renderProviders(providers) {
  replace($("providers").tBodies[0], ...providers.map((p) =>
    el("tr", { "data-provider": p.name, "data-circuit": p.state },
      el("td", { class: "origin" }, p.name), el("td", {}, badge(p.state, p.state + "-circuit")),
      el("td", {}, p.in_flight), el("td", {}, p.calls), el("td", {}, p.errors + (p.rejected ? " +" + p.rejected + " rejected" : "")),
      el("td", {}, (p.latency_p50_ms ?? "–") + " / " + (p.latency_p95_ms ?? "–") + " ms"))));
}

function renderPools(pools) {
  replace($("pools"), ...pools.map((p) =>
    el("div", { class: "pool", "data-pool": p.pool, "data-available": p.available },
      el("h3", {}, p.pool + " ", el("span", { class: "muted" }, p.available + "/" + p.models.length + " available · agents " + p.agents.join(", "))),
      el("table", {}, el("tbody", {}, ...p.models.map((m) =>
        el("tr", { "data-model": m.provider + "/" + m.model, "data-available": m.available },
          el("td", {}, m.provider + "/" + m.model), el("td", {}, m.key || ""),
          el("td", {}, badge(m.available ? "available" : "unavailable")),
          el("td", { class: "why" }, (m.unavailable_reason || "") + (m.available_in_secs != null ? " (in " + secs(m.available_in_secs) + ")" : ""))))),
        ...p.left_out.map((l) => el("tr", { "data-model": l.model, "data-available": "left_out" },
          el("td", {}, l.model), el("td", {}), el("td", {}, badge("left out", "disabled")), el("td", { class: "why" }, l.reason)))))));
  $("pools-empty").hidden = pools.length > 0;
}

// ---- routing log ----
function renderRouting(entries) {
  const items = entries.slice().reverse().map((e) =>
    el("li", { "data-event": e.event, "data-at": e.at_ms },
      new Date(e.at_ms).toLocaleTimeString() + "  " + e.event + "  " + (e.agent ? e.agent + "  " : "") + e.target + "  " + e.detail));
  if (items.length === 0) items.push(el("li", { class: "muted", "data-event": "none" }, "nothing yet"));
  replace($("routing"), ...items);
}

// ---- charts ----
function chart(node, series, value) {
  // Bars: one per bucket holding calls, placed in time over the whole asked span.
  const W = 400, H = 160, L = 40, B = 20, T = 8, R = 8;
  const points = series.points;
  const x0 = series.since_ms, x1 = Math.max(series.until_ms, x0 + 1), bucket = series.bucket_ms;
  const ys = points.map(value);
  const ymax = Math.max(...ys, 0) || 1;
  const sx = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v) => H - B - (v / ymax) * (H - B - T);
  const bw = Math.max(2, sx(x0 + bucket) - sx(x0) - 1);
  const label = (x, y, text, anchor) => { const t = svg("text", { x, y, "text-anchor": anchor || "start" }); t.textContent = text; return t; };
  const parts = [svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    label(L - 4, T + 10, fmt(ymax), "end"), label(L - 4, H - B, "0", "end"),
    label(L, H - 4, new Date(x0).toLocaleString()), label(W - R, H - 4, "now", "end")];
  points.forEach((p, i) => {
    const x = Math.max(L, Math.min(W - R - bw, sx(p.t_ms)));
    parts.push(svg("rect", { class: "bar", x, y: sy(ys[i]), width: bw, height: Math.max(1, H - B - sy(ys[i])), "data-t": p.t_ms, "data-value": ys[i] }));
  });
  if (!points.length) parts.push(label(W / 2, H / 2, "no calls recorded in this span", "middle"));
  node.setAttribute("data-points", points.length);
  node.setAttribute("data-total", ys.reduce((a, b) => a + b, 0));
  node.replaceChildren(...parts);
}

async function pollUsage() {
  try {
    const s = await getJson("/usage/series?" + $("usage-range").value);
    chart($("chart-calls"), s, (p) => p.calls);
    chart($("chart-tokens"), s, (p) => p.input_tokens + p.output_tokens);
    chart($("chart-cost"), s, (p) => p.cost_usd);
    $("usage-note").textContent = s.total.calls + " calls, $" + s.total.cost_usd.toFixed(4) + " — " + s.store;
    $("usage-note").dataset.totalCalls = s.total.calls;
    replace($("models").tBodies[0], ...Object.entries(s.models).map(([m, t]) =>
      el("tr", { "data-model": m, "data-calls": t.calls }, el("td", {}, m), el("td", {}, t.calls), el("td", {}, t.failed),
        el("td", {}, fmt(t.input_tokens) + " / " + fmt(t.output_tokens)), el("td", {}, t.cost_usd.toFixed(4)))));
  } catch (e) {
    $("usage-note").textContent = "(no usage ledger: " + e.message + ")";
    const now = Date.now();
    for (const c of document.querySelectorAll("svg[data-chart]")) chart(c, { points: [], since_ms: now - 3600000, until_ms: now, bucket_ms: 60000 }, () => 0);
  }
}

function showError(m) { const e = $("error"); e.textContent = m; e.hidden = !m; }

async function poll() {
  try {
    const status = await getJson("/status");
    renderScopes(status);
    renderKeys(status.keys || []);
    renderProviders(status.providers || []);
    renderPools(status.pools || []);
    renderRouting(status.routing || []);
    $("summary").textContent = (status.scopes || []).length + " scopes · " + status.waiting_total + " waiting · " + status.closed_scopes + " cooling down or closed";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.polls = Number(document.body.dataset.polls) + 1;
    showError("");
  } catch (e) {
    showError("cannot read /status: " + e.message);
  }
}

// ---- admin (gateway only) ----
async function checkAdmin() {
  const state = $("admin-state");
  admin = false;
  if (adminKey()) {
    try {
      const r = await fetch("/admin/keys", { headers: headers(), cache: "no-store" });
      admin = r.ok;
      if (!r.ok) state.textContent = r.status === 403 ? "that client is not an admin" : "key refused (HTTP " + r.status + ")";
    } catch (e) { state.textContent = "admin check failed"; }
  } else {
    state.textContent = "read-only";
  }
  if (admin) state.textContent = "admin";
  state.dataset.admin = admin ? "on" : "off";
  $("admin-forget").hidden = !adminKey();
  renderKeys(lastKeys);
}

function setupAdmin() {
  if (mode !== "gateway") return;
  $("admin").hidden = false;
  $("admin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("admin-key").value.trim();
    try { if (k) sessionStorage.setItem(KEY_STORE, k); } catch (_) {}
    $("admin-key").value = "";
    checkAdmin();
  });
  $("admin-forget").addEventListener("click", () => {
    try { sessionStorage.removeItem(KEY_STORE); } catch (_) {}
    checkAdmin();
  });
  checkAdmin();
}

setupAdmin();
$("usage-range").addEventListener("change", pollUsage);
poll();
pollUsage();
setInterval(poll, POLL_MS);
setInterval(pollUsage, USAGE_MS);
