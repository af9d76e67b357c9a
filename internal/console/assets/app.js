// Fermion console: one page over the /v1 API. It keeps the token in sessionStorage
// (this tab only), polls what the current view needs every 2 s, and follows
// /v1/events as a stream. Every action is an API call; the API checks the role.
import { esc, pct, num, count, bytes, ago, short, sparkline, traceLinks, safeURL } from "/ui/fmt.js";
import { rolloutPanel, rolloutLine } from "/ui/rollout.js";
import { slowestPanel } from "/ui/slowest.js";
import { instancesPanel } from "/ui/instances.js";

const TOKEN_KEY = "fermion.token";
const POLL_MS = 2000;
const MAX_EVENTS = 1000;
const ERROR_TYPES = new Set(["failed", "unplaceable", "policy_denied", "lease_lost", "alert"]);
const DEPLOY_TYPES = new Set(["deployed", "deleted", "rescheduled", "placed"]);

const $ = (id) => document.getElementById(id);
const S = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  session: null, config: { traceUrl: "", version: "", features: {} },
  rollouts: {}, // deployment → v1.Rollout, null when it has none (GET /v1/deployments/{name}/rollout)
  nodes: [], deployments: [], slos: [], sloStatus: {}, alerts: { incidents: [] },
  policies: [], violations: [], events: [], status: null, depEvents: [],
  trends: {}, // SLO series key → last success ratios, for the trend lines
  slis: { region: null, node: null, app: null }, // GET /v1/slis groups (null: not served)
  latTrend: {}, // region → last p99s
  slowest: null, // GET /v1/slis/slowest (null: not served)
  instances: null, // {dep, list} or {dep, error}: GET /v1/deployments/{name}/instances of debugDep
  view: "executive", debugDep: "", nodeFilter: "", eventType: "", confirm: "",
  updated: 0, firstRender: 0, polling: false, streamAbort: null, revisions: {}, leaving: false,
};
// For tests and measurement: numbers the page rendered and when.
window.fermionConsole = { S, renders: 0, firstRender: 0, lastEventSeq: 0 };

// Every read and action gives up after REQUEST_MS: a request stuck behind a busy
// server must not stall the page; the next poll asks again.
const REQUEST_MS = 10000;

async function api(path, opts = {}) {
  // Accept: application/json asks for compact JSON (the API indents for people only).
  // A refusal signs out only the token it was sent with: a read of a poll that outlived
  // a sign-out must not sign out the token signed in since.
  const token = S.token;
  const headers = { Authorization: "Bearer " + token, Accept: "application/json", ...(opts.body ? { "Content-Type": "application/json" } : {}) };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), REQUEST_MS);
  let res, text;
  try {
    res = await fetch(path, { ...opts, headers, body: opts.body ? JSON.stringify(opts.body) : undefined, signal: ac.signal });
    text = await res.text();
  } catch (e) {
    throw new Error(ac.signal.aborted ? path + ": no answer within " + REQUEST_MS / 1000 + " s" : path + ": " + e.message);
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 401) {
    if (token === S.token) signOut("Your token was refused: it is unknown, revoked or expired. Sign in again.");
    throw new Error("unauthorized");
  }
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!res.ok) {
    const e = new Error((body && body.error && body.error.message) || res.status + " " + res.statusText);
    e.status = res.status; e.code = body && body.error && body.error.code;
    throw e;
  }
  return body;
}

// ---- sign-in ----

// signIn checks a token at /ui/session. An error with refused set means the server
// turned the token down; any other (no answer, a network error, a 5xx) says nothing
// about the token, so a page that already holds one keeps it and asks again.
async function signIn(token) {
  let res, body;
  try {
    res = await fetch("/ui/session", { headers: { Authorization: "Bearer " + token }, signal: AbortSignal.timeout(REQUEST_MS) });
    body = await res.json().catch(() => ({}));
  } catch (e) {
    throw new Error("cannot reach the server: " + e.message);
  }
  if (!res.ok) {
    const e = new Error(body.error || "sign-in failed: " + res.status);
    e.refused = res.status === 401;
    throw e;
  }
  S.token = token; S.session = body;
  sessionStorage.setItem(TOKEN_KEY, token);
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  S.token = ""; S.session = null; S.polling = false;
  if (S.streamAbort) S.streamAbort.abort();
  $("nav").hidden = true; $("signout").hidden = true; $("who").textContent = "";
  $("view").innerHTML = ""; lastHTML = ""; $("toolbar").innerHTML = ""; $("toolbar").dataset.sig = "";
  $("signin").hidden = false; $("signin-error").textContent = msg || "";
}

const canDeploy = () => S.session && (S.session.role === "deployer" || S.session.role === "admin");
const canAdmin = () => S.session && S.session.role === "admin";

// ---- data ----

// refresh runs poll, at most one at a time: a view change, an action or the loop
// asking while one is in flight get that one, and one more after it if asked
// meanwhile. Overlapping polls would each take a share of the browser's six
// connections to this host, and one of them is the event stream's.
let polling = null, pollAgain = false;
function refresh() {
  if (polling) { pollAgain = true; return polling; }
  polling = (async () => {
    try {
      do { pollAgain = false; await poll(); } while (pollAgain);
    } finally { polling = null; }
  })();
  return polling;
}

// limited runs fn over items with at most n calls in flight.
async function limited(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function poll() {
  const jobs = [
    api("/v1/nodes").then((b) => (S.nodes = b.nodes || [])),
    api("/v1/deployments").then((b) => (S.deployments = b.deployments || [])),
    api("/v1/alerts").then((b) => (S.alerts = b || { incidents: [] })),
    api("/v1/slos").then(async (b) => {
      S.slos = b.slos || [];
      const st = {};
      await limited(S.slos.slice(0, 50), 3, (s) =>
        api("/v1/slos/" + encodeURIComponent(s.name) + "/status").then((x) => (st[s.name] = x)).catch(() => {}));
      S.sloStatus = st;
      noteTrends();
    }),
  ];
  // Fleet SLIs (GET /v1/slis): rates and latency quantiles merged from every node's
  // sketches. A server without the SLI store answers 404 or 503: the views say so.
  const slis = (by, win) => api("/v1/slis?by=" + by + "&window=" + win).then((b) => b.groups || []).catch(() => null);
  jobs.push(slis("region", "5m").then((g) => { S.slis.region = g; noteLatency(); }));
  if (S.view === "oncall" || S.view === "debug") {
    jobs.push(slis("node", "15m").then((g) => (S.slis.node = g)));
    jobs.push(slis("app,version", "15m").then((g) => (S.slis.app = g)));
  }
  if (S.view === "policies") {
    jobs.push(api("/v1/policies").then((b) => (S.policies = b.policies || [])));
    jobs.push(api("/v1/policies/violations?limit=100").then((b) => (S.violations = b.events || [])));
  }
  if (S.view === "deployments" && S.config.features.rollout) {
    // The rollouts of deployments with a progressive strategy and of those opened, at
    // most 10, three at a time beside the other reads.
    const want = S.deployments.filter((d) => S.revisions[d.name] || (d.spec.rollout && d.spec.rollout.kind && d.spec.rollout.kind !== "all-at-once"))
      .slice(0, 10).map((d) => d.name);
    jobs.push(limited(want, 3, loadRollout));
  }
  if (S.view === "debug" && S.config.features.slowest) {
    // The fleet's slowest recent requests, each with its trace id (slowest.js).
    jobs.push(api("/v1/slis/slowest?limit=20").then((b) => (S.slowest = b)).catch(() => (S.slowest = null)));
  }
  if (S.view === "debug") {
    if (!S.debugDep && S.deployments.length) S.debugDep = S.deployments[0].name;
    if (S.debugDep) {
      const d = encodeURIComponent(S.debugDep);
      jobs.push(api("/v1/deployments/" + d + "/status").then((b) => (S.status = b)).catch(() => (S.status = null)));
      jobs.push(api("/v1/events?deployment=" + d + "&limit=200").then((b) => (S.depEvents = b.events || [])));
      if (S.config.features.instances) {
        // Each node's instance timelines (instances.js); the server asks the nodes.
        const dep = S.debugDep;
        jobs.push(api("/v1/deployments/" + d + "/instances").then((b) => (S.instances = { dep, list: b }),
          (e) => { if (e.message === "unauthorized") throw e; S.instances = { dep, list: { error: e.message } }; }));
      }
    }
  }
  const results = await Promise.allSettled(jobs);
  const failed = results.find((r) => r.status === "rejected");
  S.updated = Date.now();
  setStatus(failed ? "update failed: " + failed.reason.message : "live · updated " + new Date(S.updated).toLocaleTimeString());
}

let pollGen = 0;
async function pollLoop() {
  if (S.polling) return;
  S.polling = true;
  // A sign-out ends this loop; a loop asleep through a sign-out and a new sign-in must
  // not run beside the new one.
  const gen = ++pollGen;
  while (S.polling && gen === pollGen) {
    const t0 = Date.now();
    try { if (!document.hidden) { await refresh(); render(); } } catch (e) { if (e.message === "unauthorized") return; setStatus("update failed: " + e.message); }
    await new Promise((r) => setTimeout(r, Math.max(200, POLL_MS - (Date.now() - t0))));
  }
}

// followEvents reads /v1/events?follow=true (NDJSON: the recent history, then new
// events as they are recorded) and reconnects after the last event it saw.
async function followEvents() {
  let backoff = 500;
  while (S.token && !S.leaving) {
    const ac = new AbortController();
    S.streamAbort = ac;
    const after = S.events.length ? "&after=" + S.events[S.events.length - 1].seq : "&limit=300";
    const token = S.token;
    try {
      const res = await fetch("/v1/events?follow=true" + after, { headers: { Authorization: "Bearer " + token }, signal: ac.signal });
      if (res.status === 401) { if (token === S.token) signOut("Your token was refused. Sign in again."); return; }
      if (!res.ok) throw new Error("events: " + res.status);
      backoff = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) addEvent(JSON.parse(line));
        }
      }
    } catch (e) {
      if (ac.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

let renderQueued = false;
function addEvent(ev) {
  const last = S.events[S.events.length - 1];
  if (last && ev.seq <= last.seq) return;
  S.events.push(ev);
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(() => { renderQueued = false; render(); }); }
}

function noteLatency() {
  for (const g of S.slis.region || []) {
    const arr = (S.latTrend[g.region || "(none)"] = S.latTrend[g.region || "(none)"] || []);
    arr.push(g.requests ? g.p99Ms : null);
    if (arr.length > 60) arr.shift();
  }
}

function noteTrends() {
  for (const [name, st] of Object.entries(S.sloStatus)) {
    for (const se of st.series || []) {
      if (se.scope === "global" && st.slo.scope !== "global") continue;
      const key = name + "|" + se.app + "|" + se.scope;
      const arr = (S.trends[key] = S.trends[key] || []);
      arr.push(se.total ? se.good / se.total : null);
      if (arr.length > 60) arr.shift();
    }
  }
}

// ---- derived numbers (what the views show; the browser tests compare them with the API) ----

function fleet() {
  let good = 0, total = 0, within = 0, series = 0, noData = 0;
  for (const st of Object.values(S.sloStatus)) {
    const obj = parseFloat(st.slo.objective) / 100;
    for (const se of st.series || []) {
      if (se.total === 0) { noData++; continue; }
      series++;
      if (within_(se.good / se.total, obj)) within++;
      if (st.slo.sli === "availability" && se.scope === "global") { good += se.good; total += se.total; }
    }
  }
  const ready = S.nodes.filter((n) => n.state === "ready").length;
  const instances = S.nodes.reduce((a, n) => a + ((n.allocated && n.allocated.instances) || 0), 0);
  const firing = alertsIn("firing").length;
  let req = 0, errs = 0;
  for (const g of S.slis.region || []) { req += g.requests; errs += g.errors; }
  return { good, total, success: total ? good / total : null, within, series, noData, ready, instances, firing,
    fleetSuccess: req ? 1 - errs / req : null, fleetRequests: req };
}

// within_ says whether a ratio meets an objective; 99.9 / 100 is not exactly 0.999 in
// floating point, and a series exactly at its objective meets it.
const within_ = (ratio, obj) => ratio >= obj - 1e-9;

function alertsIn(phase) {
  const out = [];
  for (const inc of S.alerts.incidents || []) for (const a of inc.alerts || []) if (!phase || a.phase === phase) out.push(a);
  return out;
}

const depByName = () => Object.fromEntries(S.deployments.map((d) => [d.name, d]));
const artifactOf = (d) => (d ? d.version.repository + "@" + short(d.version.digest) : "");

// ---- views ----

const card = (k, label, value, cls = "") => `<div class="card"><div class="v ${cls}" data-k="${k}">${value}</div><div class="l">${esc(label)}</div></div>`;

function eventRows(evs, withArtifact) {
  const deps = depByName();
  if (!evs.length) return `<tr><td colspan="6" class="dim">no events</td></tr>`;
  return evs.map((e) => `<tr data-seq="${e.seq}"><td class="dim">${esc(ago(e.time))}</td><td><span class="chip">${esc(e.type)}</span></td>
    <td>${esc(e.deployment || "")}</td>${withArtifact ? `<td class="dim">${esc(artifactOf(deps[e.deployment]))}</td>` : ""}<td>${esc(e.node || "")}</td>
    <td>${traceLinks(esc(e.message), S.config.traceUrl)}</td></tr>`).join("");
}

// EXPORTER_ORDER ranks exporter states, the worst first.
const EXPORTER_ORDER = ["failing", "spooling", "unmonitored", "off", "ok"];
const exporterClass = (st) => (st === "ok" ? "ok" : st === "failing" ? "bad" : st === "spooling" ? "warn" : "dim");

// telemetryPanel: each node's span export health from its heartbeats (GET /v1/nodes,
// node.telemetry): how many nodes are in each state, then the nodes not ok, worst and
// deepest backlog first.
function telemetryPanel() {
  const counts = {}, bad = [];
  let backlog = 0, unreported = 0;
  for (const n of S.nodes) {
    const h = n.telemetry;
    if (!h) { unreported++; continue; }
    counts[h.exporter] = (counts[h.exporter] || 0) + 1;
    backlog += h.backlogBytes || 0;
    if (h.exporter !== "ok" && h.exporter !== "off") bad.push({ n, h });
  }
  bad.sort((a, b) => EXPORTER_ORDER.indexOf(a.h.exporter) - EXPORTER_ORDER.indexOf(b.h.exporter) || b.h.backlogBytes - a.h.backlogBytes);
  const drops = (h) => Object.entries(h.dropped || {}).map(([k, v]) => k + " " + num(v)).join(", ");
  return `<p data-k="telemetry-counts">${EXPORTER_ORDER.filter((st) => counts[st]).map((st) =>
      `<span class="chip ${exporterClass(st)}">${st} <b data-k="telemetry-${st}">${num(counts[st])}</b></span>`).join("") || `<span class="dim">no node reports its telemetry</span>`}
    ${unreported ? `<span class="chip dim">not reported ${num(unreported)}</span>` : ""} · backlog <b data-k="telemetry-backlog">${bytes(backlog)}</b></p>
    ${bad.length ? `<table><thead><tr><th>node</th><th>exporter</th><th>backlog</th><th>dropped</th><th>last error</th><th>last export</th></tr></thead><tbody data-k="telemetry-rows">
    ${bad.slice(0, 20).map(({ n, h }) => `<tr data-node="${esc(n.name)}"><td>${esc(n.name)}</td><td class="${exporterClass(h.exporter)}">${esc(h.exporter)}</td>
      <td>${bytes(h.backlogBytes)} · ${num(h.backlogPayloads)} payloads</td><td>${esc(drops(h)) || `<span class="dim">none</span>`}</td>
      <td class="err">${h.lastError ? `<span class="msg">${esc(h.lastError)}</span> <span class="dim">${esc(ago(h.lastErrorAt))}</span>` : ""}</td>
      <td class="dim">${h.lastExportAt ? esc(ago(h.lastExportAt)) : "never"}</td></tr>`).join("")}</tbody></table>` :
      `<p class="note">Every reporting node exports its spans${S.nodes.length ? "" : " (no nodes)"}.</p>`}`;
}

const views = {
  executive() {
    const f = fleet();
    const rows = [];
    for (const [name, st] of Object.entries(S.sloStatus)) {
      for (const se of st.series || []) {
        const key = name + "|" + se.app + "|" + se.scope;
        const ratio = se.total ? se.good / se.total : null;
        const obj = parseFloat(st.slo.objective) / 100;
        const burn = Math.max(0, ...(se.burn || []).map((b) => b.longRate || 0));
        const rem = Math.max(0, Math.min(1, se.budgetRemaining));
        rows.push(`<tr><td>${esc(name)}</td><td>${esc(se.app)}</td><td>${esc(se.scope)}</td><td>${esc(st.slo.sli)}</td><td>${esc(st.slo.objective)}%</td>
          <td class="${ratio === null ? "dim" : within_(ratio, obj) ? "ok" : "bad"}">${ratio === null ? "no data" : pct(ratio, 3)}</td>
          <td>${sparkline(S.trends[key] || [])}</td>
          <td><span class="bar"><i style="width:${(rem * 100).toFixed(0)}%"></i></span> ${pct(se.budgetRemaining, 1)}</td>
          <td class="${burn >= 1 ? "bad" : ""}">${burn.toFixed(2)}×</td></tr>`);
      }
    }
    const recent = S.events.filter((e) => DEPLOY_TYPES.has(e.type)).slice(-15).reverse();
    const rollouts = S.events.filter((e) => e.type.startsWith("rollout")).slice(-10).reverse();
    return `<h1>Executive</h1>
      <div class="cards">
        ${card("success-rate", "global success rate (availability SLOs)", f.success === null ? "—" : pct(f.success, 3))}
        ${card("fleet-success", "fleet success rate, last 5 min (SLIs)", f.fleetSuccess === null ? "—" : pct(f.fleetSuccess, 3))}
        ${card("slo-compliance", "SLO series within objective", f.series ? f.within + " / " + f.series : "—", f.within < f.series ? "warn" : "ok")}
        ${card("alerts-firing", "alerts firing", num(f.firing), f.firing ? "bad" : "ok")}
        ${card("nodes-ready", "nodes ready", num(f.ready) + " / " + num(S.nodes.length))}
        ${card("deployments-total", "deployments", num(S.deployments.length))}
        ${card("instances-total", "instances reserved", num(f.instances))}
      </div>
      <h2>SLOs, by region and scope: trend and error-budget burn</h2>
      <table><thead><tr><th>SLO</th><th>app</th><th>scope</th><th>SLI</th><th>objective</th><th>achieved</th><th>trend (2 s samples)</th><th>budget left</th><th>burn (long window)</th></tr></thead>
      <tbody data-k="slo-rows">${rows.join("") || `<tr><td colspan="9" class="dim">no SLOs yet: <code>fermion slo apply</code></td></tr>`}</tbody></table>
      <h2>Regions, last 5 minutes: rate, errors, p95/p99 latency</h2>
      ${S.slis.region === null ? `<p class="note">This server does not serve fleet SLIs (GET /v1/slis).</p>` :
      `<table><thead><tr><th>region</th><th>requests/s</th><th>error ratio</th><th>p95</th><th>p99</th><th>p99 trend (2 s samples)</th><th>instances</th></tr></thead>
      <tbody data-k="region-rows">${S.slis.region.map((g) => `<tr data-region="${esc(g.region)}"><td>${esc(g.region || "(no region label)")}</td><td>${g.requestsPerSecond.toFixed(1)}</td>
        <td class="${g.errorRatio > 0.01 ? "bad" : ""}">${pct(g.errorRatio, 2)}</td><td>${g.p95Ms.toFixed(1)} ms</td><td class="p99">${g.p99Ms.toFixed(1)} ms</td>
        <td>${sparkline(S.latTrend[g.region || "(none)"] || [])}</td><td>${num(g.instances)}</td></tr>`).join("") || `<tr><td colspan="7" class="dim">no traffic in the last 5 minutes</td></tr>`}</tbody></table>`}
      <div class="grid2"><div>
      <h2>Recent deployments</h2>
      <table><thead><tr><th>when</th><th>type</th><th>deployment</th><th>artifact</th><th>node</th><th>message</th></tr></thead><tbody data-k="recent-deployments">${eventRows(recent, true)}</tbody></table>
      </div><div>
      <h2>Recent rollouts</h2>
      <table><thead><tr><th>when</th><th>type</th><th>deployment</th><th>artifact</th><th>node</th><th>message</th></tr></thead><tbody data-k="recent-rollouts">${rollouts.length ? eventRows(rollouts, true) : `<tr><td colspan="6" class="dim">no rollout events: a deployment with a canary or rolling strategy records its steps and verdicts here</td></tr>`}</tbody></table>
      </div></div>`;
  },

  oncall() {
    const firing = alertsIn().filter((a) => a.phase !== "resolved");
    const alertRows = firing.map((a) => {
      const rb = safeURL(a.runbook);
      return `<tr><td class="${a.phase === "firing" ? "bad" : "warn"}">${esc(a.phase)}</td><td>${esc(a.severity)}</td><td>${esc(a.slo)}</td><td>${esc(a.app)}</td><td>${esc(a.scope)}</td>
        <td>${esc(a.summary)}</td><td>${rb ? `<a href="${esc(rb)}" target="_blank" rel="noopener noreferrer">runbook</a>` : `<span class="dim">none</span>`}</td></tr>`;
    }).join("");
    const since = Date.now() - 15 * 60 * 1000;
    const per = {};
    for (const e of S.events) {
      if (!e.node || Date.parse(e.time) < since) continue;
      const p = (per[e.node] = per[e.node] || { errors: 0, restarts: 0 });
      if (e.type === "failed") p.errors++;
      if (e.type === "lease_lost") p.restarts++; // the agent went away (a restart, a crash, a partition)
    }
    const nodesBad = S.nodes.filter((n) => n.state !== "ready" || (per[n.name] && (per[n.name].errors || per[n.name].restarts)))
      .map((n) => ({ n, p: per[n.name] || { errors: 0, restarts: 0 } }))
      .sort((a, b) => b.p.errors - a.p.errors || b.p.restarts - a.p.restarts).slice(0, 25);
    const errs = S.events.filter((e) => ERROR_TYPES.has(e.type)).slice(-50).reverse();
    const inst = S.deployments.map((d) => ({ d, nodes: (d.placement.nodes || []).length }))
      .sort((a, b) => b.nodes - a.nodes).slice(0, 20);
    const scale = S.events.filter((e) => /scale|prewarm|rescheduled/.test(e.type)).slice(-10).reverse();
    return `<h1>On-call</h1>
      <div class="cards">${card("oncall-firing", "alerts firing", num(firing.filter((a) => a.phase === "firing").length), firing.length ? "bad" : "ok")}
        ${card("oncall-pending", "alerts pending", num(firing.filter((a) => a.phase === "pending").length))}
        ${card("oncall-notready", "nodes not ready", num(S.nodes.filter((n) => n.state !== "ready").length))}
        ${card("oncall-errors", "error events (15 min)", num(S.events.filter((e) => ERROR_TYPES.has(e.type) && Date.parse(e.time) >= since).length))}</div>
      <h2>Alerts</h2>
      <table><thead><tr><th>phase</th><th>severity</th><th>SLO</th><th>app</th><th>scope</th><th>summary</th><th>runbook</th></tr></thead>
      <tbody data-k="alert-rows">${alertRows || `<tr><td colspan="7" class="ok">no alerts firing</td></tr>`}</tbody></table>
      <div class="grid2"><div>
      <h2>Nodes: errors and restarts (15 min)</h2>
      <table><thead><tr><th>node</th><th>state</th><th>failed</th><th>leases lost</th><th>lease age</th></tr></thead><tbody>
      ${nodesBad.map(({ n, p }) => `<tr><td>${esc(n.name)}</td><td class="${n.state === "ready" ? "ok" : "bad"}">${esc(n.state)}</td><td>${p.errors}</td><td>${p.restarts}</td><td>${n.leaseAgeSeconds.toFixed(1)} s</td></tr>`).join("") || `<tr><td colspan="5" class="ok">every node ready, no errors</td></tr>`}
      </tbody></table></div><div>
      <h2>Instances and autoscaling</h2>
      ${S.slis.app && S.slis.app.length ? `<table><thead><tr><th>app</th><th>version</th><th>instances now</th><th>cold starts (15 min)</th><th>requests/s</th></tr></thead><tbody data-k="app-instances">
      ${S.slis.app.slice().sort((a, b) => b.instances - a.instances).slice(0, 20).map((g) => `<tr><td>${esc(g.app)}</td><td>${esc(g.version)}</td><td>${num(g.instances)}</td><td>${num(g.coldStarts)}</td><td>${g.requestsPerSecond.toFixed(1)}</td></tr>`).join("")}
      </tbody></table>` : ""}
      <table><thead><tr><th>deployment</th><th>nodes placed</th><th>instances per node (prewarm)</th></tr></thead><tbody>
      ${inst.map(({ d, nodes }) => `<tr><td>${esc(d.name)}</td><td>${nodes}</td><td>${d.version.instances}</td></tr>`).join("") || `<tr><td colspan="3" class="dim">no deployments</td></tr>`}
      </tbody></table>
      ${scale.length ? `<ul class="tl">${scale.map((e) => `<li>${esc(ago(e.time))} <span class="chip">${esc(e.type)}</span> ${esc(e.deployment || "")} ${esc(e.message)}</li>`).join("")}</ul>` : `<p class="note">Each node's autoscaler scales instances locally; the API reports placements and reserved instances.</p>`}
      </div></div>
      <h2>Node error rates, last 15 minutes (SLIs)</h2>
      ${S.slis.node === null ? `<p class="note">This server does not serve fleet SLIs (GET /v1/slis).</p>` :
      `<table><thead><tr><th>node</th><th>region</th><th>requests</th><th>errors</th><th>error ratio</th><th>p99</th><th>cold starts</th><th>discards</th></tr></thead><tbody data-k="node-sli-rows">
      ${S.slis.node.slice().sort((a, b) => b.errorRatio - a.errorRatio || b.requests - a.requests).slice(0, 20).map((g) => `<tr><td>${esc(g.node)}</td><td>${esc(g.region || "")}</td>
        <td>${num(g.requests)}</td><td>${num(g.errors)}</td><td class="${g.errorRatio > 0.01 ? "bad" : ""}">${pct(g.errorRatio, 2)}</td><td>${g.p99Ms.toFixed(1)} ms</td>
        <td>${num(g.coldStarts)}</td><td>${esc(Object.entries(g.discards || {}).map(([k, v]) => k + " " + v).join(", "))}</td></tr>`).join("") || `<tr><td colspan="8" class="dim">no traffic in the last 15 minutes</td></tr>`}
      </tbody></table>`}
      <h2>Live tail: recent errors</h2>
      <table><thead><tr><th>when</th><th>type</th><th>deployment</th><th>artifact</th><th>node</th><th>message</th></tr></thead><tbody data-k="error-tail">${eventRows(errs, true)}</tbody></table>`;
  },

  debug() {
    const st = S.status;
    const rows = st ? (st.nodes || []).map((ns) => {
      const a = ns.actual;
      return `<tr><td>${esc(ns.node)}</td><td>${esc(ns.nodeState)}</td><td>${ns.desired ? esc(ns.desired.version) : `<span class="dim">not assigned</span>`}</td>
        <td class="${a && a.state === "ready" ? "ok" : "warn"}">${a ? esc(a.state) : "no report"}</td><td>${a ? a.instances : ""}</td>
        <td>${a && a.lastError ? traceLinks(esc(a.lastError), S.config.traceUrl) : ""}</td><td class="dim">${a ? esc(ago(a.updated)) : ""}</td></tr>`;
    }).join("") : "";
    const tl = S.depEvents.slice(-60).reverse().map((e) =>
      `<li><span class="dim">${esc(new Date(e.time).toLocaleTimeString())}</span> <span class="chip">${esc(e.type)}</span> ${esc(e.node || "")} ${traceLinks(esc(e.message), S.config.traceUrl)}</li>`).join("");
    const heat = S.nodes.map((n) => {
      const cap = n.capacity.memoryBytes || 1, used = n.allocated.memoryBytes || 0, f = Math.min(1, used / cap);
      const col = n.state !== "ready" ? "#555" : `hsl(${120 - 120 * f},70%,${35 + 10 * f}%)`;
      return `<i style="background:${col}" title="${esc(n.name)}: ${bytes(used)} of ${bytes(cap)} memory, ${n.allocated.instances} of ${n.capacity.instances} instances, ${esc(n.state)}"></i>`;
    }).join("");
    return `<h1>Debug</h1>
      <h2>Instances of ${esc(S.debugDep || "—")}: by node</h2>
      ${st ? `<p data-k="debug-ready">${st.ready} of ${st.desired} nodes ready${st.converged ? ` <span class="ok">converged</span>` : ` <span class="warn">converging</span>`}</p>` : ""}
      ${st && st.deployment.rolloutStatus ? `<p>rollout: <span data-k="debug-rollout">${esc(rolloutLine(st.deployment.rolloutStatus))}</span></p>` : ""}
      <table><thead><tr><th>node</th><th>node state</th><th>desired</th><th>state</th><th>instances</th><th>last error</th><th>reported</th></tr></thead><tbody>${rows || `<tr><td colspan="7" class="dim">no deployment selected</td></tr>`}</tbody></table>
      <h2>Instance timeline of ${esc(S.debugDep || "—")}, per node</h2>
      <div data-k="inst-panel">${!S.config.features.instances ? instancesPanel(S.debugDep, null) :
        S.instances && S.instances.dep === S.debugDep ? instancesPanel(S.debugDep, S.instances.list) : `<p class="note">asking the nodes…</p>`}</div>
      <div class="grid2"><div>
      <h2>Timeline</h2><ul class="tl" data-k="timeline">${tl || `<li class="dim">no events</li>`}</ul>
      </div><div>
      ${S.config.features.slowest ? `<h2>Slowest requests, last 15 minutes</h2>${slowestPanel(S.slowest, S.config.traceUrl)}` : ""}
      <h2>Slowest versions, last 15 minutes (p99)</h2>
      ${S.slis.app && S.slis.app.length ? `<table><thead><tr><th>app</th><th>version</th><th>p50</th><th>p99</th><th>requests</th></tr></thead><tbody data-k="slowest">
      ${S.slis.app.filter((g) => g.requests).sort((a, b) => b.p99Ms - a.p99Ms).slice(0, 10).map((g) => `<tr><td>${esc(g.app)}</td><td>${esc(g.version)}</td><td>${g.p50Ms.toFixed(1)} ms</td><td>${g.p99Ms.toFixed(1)} ms</td><td>${num(g.requests)}</td></tr>`).join("")}
      </tbody></table>` : `<p class="note">No request latencies yet (GET /v1/slis).</p>`}
      <h2>Traces</h2>
      <p class="note">${S.config.traceUrl ? `Trace ids in errors and events link to <code>${esc(S.config.traceUrl)}</code>.` : `Start the server with <code>--trace-ui-url 'http://jaeger:16686/trace/{trace_id}'</code> to link trace ids to your trace UI.`}</p>
      <h2>Memory reserved by node (${count(S.nodes.length, "node")})</h2><div class="heat" data-k="heatmap">${heat}</div>
      <h2>Telemetry export, by node</h2>${telemetryPanel()}
      </div></div>`;
  },

  nodes() {
    const q = S.nodeFilter.toLowerCase();
    const list = S.nodes.filter((n) => !q || n.name.toLowerCase().includes(q) || Object.entries(n.labels || {}).some(([k, v]) => (k + "=" + v).toLowerCase().includes(q)));
    const act = canDeploy();
    return `<h1>Nodes <span class="dim" data-k="nodes-count">${num(list.length)}</span></h1>
      <table><thead><tr><th>name</th><th>state</th><th>labels</th><th>capacity</th><th>reserved</th><th>lease age</th><th>telemetry</th><th>assignments</th>${act ? "<th></th>" : ""}</tr></thead><tbody>
      ${list.map((n) => `<tr data-node="${esc(n.name)}"><td>${esc(n.name)}</td><td class="${n.state === "ready" ? "ok" : "warn"}">${esc(n.state)}${n.schedulable ? "" : " (cordoned)"}</td>
        <td>${Object.entries(n.labels || {}).map(([k, v]) => `<span class="chip">${esc(k)}=${esc(v)}</span>`).join("")}</td>
        <td>${bytes(n.capacity.memoryBytes)} · ${n.capacity.milliCpu} m · ${n.capacity.instances} inst</td>
        <td>${bytes(n.allocated.memoryBytes)} · ${n.allocated.instances} inst</td><td>${n.leaseAgeSeconds.toFixed(1)} s</td>
        <td>${n.telemetry ? `<span class="${exporterClass(n.telemetry.exporter)}" title="${esc(n.telemetry.lastError || "")}">${esc(n.telemetry.exporter)}</span>${n.telemetry.backlogBytes ? " " + bytes(n.telemetry.backlogBytes) : ""}` : `<span class="dim">—</span>`}</td>
        <td>${(n.assignments || []).length} ${(n.assignments || []).slice(0, 5).map((a) => `<span class="chip">${esc(a)}</span>`).join("")}</td>
        ${act ? `<td>${n.schedulable ? `<button data-act="drain" data-name="${esc(n.name)}">drain</button>` : `<button data-act="uncordon" data-name="${esc(n.name)}">uncordon</button>`}</td>` : ""}</tr>`).join("")}
      </tbody></table>`;
  },

  deployments() {
    const act = canDeploy();
    return `<h1>Deployments <span class="dim" data-k="deployments-count">${num(S.deployments.length)}</span></h1>
      <table><thead><tr><th>name</th><th>version</th><th>artifact</th><th>nodes</th><th>rollout, placement</th><th>generation</th><th>updated</th><th></th></tr></thead><tbody>
      ${S.deployments.map((d) => {
        const want = d.spec.daemon ? "every node" : d.spec.nodes;
        const placed = (d.placement.nodes || []).length;
        const rev = S.revisions[d.name];
        const confirm = S.confirm === "delete:" + d.name;
        const ro = S.rollouts[d.name];
        const roRow = S.config.features.rollout && (rev || (ro && !ro.terminal)) && ro !== undefined ?
          `<tr data-rollout="${esc(d.name)}"><td></td><td colspan="7">${rolloutPanel(d.name, ro, { canAct: act, confirm: S.confirm === "rollout-abort:" + d.name ? "abort" : "" })}</td></tr>` : "";
        const revRow = !rev ? "" : rev.error ? `<tr><td></td><td colspan="7" class="dim">${esc(rev.error)}</td></tr>` :
          `<tr><td></td><td colspan="7"><table data-k="revisions"><tbody>${rev.revisions.map((r) => {
            const n = r.change.number, cur = n === rev.current, key = "rollback:" + d.name + ":" + n;
            return `<tr><td>#${n}${cur ? ` <span class="chip">current</span>` : ""}</td><td>${esc(r.version.version)}</td><td class="dim">${esc(short(r.version.digest))}</td>
              <td class="dim">${esc(r.change.cause || "")}${r.change.rollbackOf ? " to #" + r.change.rollbackOf : ""} · ${esc(ago(r.change.time))}${r.change.who ? " · " + esc(r.change.who) : ""}</td>
              <td class="dim">${esc(r.change.message || "")}</td>
              <td>${act && !cur ? `<button data-act="${S.confirm === key ? "rollback-confirm" : "rollback"}" data-name="${esc(d.name)}" data-to="${n}">${S.confirm === key ? "confirm roll back to #" + n : "roll back to #" + n}</button>` : ""}</td></tr>`;
          }).join("")}</tbody></table></td></tr>`;
        return `<tr data-dep="${esc(d.name)}"><td>${esc(d.name)}${d.deleting ? ` <span class="warn">deleting</span>` : ""}</td><td>${esc(d.version.version)}${ro ? ` <span class="chip" data-k="rollout-chip">${esc(ro.phase.replace("_", " "))}${ro.weight && !ro.terminal ? " " + ro.weight + "%" : ""}</span>` : ""}</td>
          <td class="dim">${esc(artifactOf(d))}${d.version.signed ? ` <span class="chip">signed</span>` : ""}</td><td>${placed} / ${want}</td>
          <td>${d.rolloutStatus ? `<div class="${d.rolloutStatus.terminal ? (d.rolloutStatus.phase === "succeeded" ? "ok" : "bad") : "warn"}" data-k="rollout-line">${esc(rolloutLine(d.rolloutStatus))}</div>` : ""}<span class="dim">${esc(d.placement.message || "")}</span></td><td>${d.generation}</td><td class="dim">${esc(ago(d.updated))}</td>
          <td><button data-act="history" data-name="${esc(d.name)}">${rev ? "hide history" : "history"}</button>
          ${act ? `<button class="danger" data-act="${confirm ? "delete-confirm" : "delete"}" data-name="${esc(d.name)}">${confirm ? "confirm delete" : "delete"}</button>` : ""}</td></tr>
          ${roRow}${revRow}`;
      }).join("")}
      </tbody></table>
      <p class="note">History shows a deployment's revisions where the server keeps them (GET /v1/deployments/{name}/revisions)${S.config.features.rollout ? " and its latest rollout: phase, steps, canary weight and nodes, and each analysis's checks" : "; this server does not report rollouts (GET /v1/deployments/{name}/rollout)"}; deploy with <code>fermion deploy</code>.</p>`;
  },

  policies() {
    const admin = canAdmin();
    return `<h1>Policies</h1>
      <table><thead><tr><th>name</th><th>target</th><th>mode</th><th>version</th><th>applied</th><th>by</th></tr></thead><tbody data-k="policy-rows">
      ${S.policies.map((p) => `<tr data-policy="${esc(p.name)}"><td>${esc(p.name)}</td><td>${esc(p.target)}</td>
        <td>${admin ? `<select data-act="mode" data-name="${esc(p.name)}">${["deny", "warn", "audit"].map((m) => `<option${m === p.mode ? " selected" : ""}>${m}</option>`).join("")}</select>` : `<span data-k="mode">${esc(p.mode)}</span>`}</td>
        <td>${p.version}</td><td class="dim">${esc(ago(p.applied))}</td><td class="dim">${esc(p.appliedBy)}</td></tr>`).join("") || `<tr><td colspan="6" class="dim">no policies: <code>fermion policy apply</code></td></tr>`}
      </tbody></table>
      <h2>Violations</h2>
      <table><thead><tr><th>when</th><th>type</th><th>deployment</th><th>node</th><th>message</th></tr></thead><tbody>${eventRows(S.violations.slice().reverse(), false)}</tbody></table>`;
  },

  events() {
    const evs = S.events.filter((e) => !S.eventType || e.type === S.eventType).slice(-200).reverse();
    return `<h1>Events</h1>
      <table><thead><tr><th>when</th><th>type</th><th>deployment</th><th>node</th><th>message</th></tr></thead><tbody data-k="event-rows">${eventRows(evs, false)}</tbody></table>`;
  },
};

function toolbar() {
  const tb = $("toolbar");
  if (S.view === "debug") {
    const names = S.deployments.map((d) => d.name);
    const sig = "debug:" + names.join(",");
    if (tb.dataset.sig !== sig) {
      tb.dataset.sig = sig;
      tb.innerHTML = `<label>deployment <select id="dep-select">${names.map((n) => `<option${n === S.debugDep ? " selected" : ""}>${esc(n)}</option>`).join("")}</select></label>`;
    }
  } else if (S.view === "nodes") {
    if (tb.dataset.sig !== "nodes") { tb.dataset.sig = "nodes"; tb.innerHTML = `<input id="node-filter" placeholder="filter by name or label=value" value="${esc(S.nodeFilter)}">`; }
  } else if (S.view === "events") {
    if (tb.dataset.sig !== "events") {
      tb.dataset.sig = "events";
      const types = ["", "deployed", "deleted", "placed", "unplaceable", "assigned", "started", "failed", "node_joined", "node_ready", "lease_lost", "drain_started", "drained", "policy_denied", "policy_warned", "policy_applied", "alert", "rollout", "leader"];
      tb.innerHTML = `<label>type <select id="event-type">${types.map((t) => `<option value="${t}"${t === S.eventType ? " selected" : ""}>${t || "all"}</option>`).join("")}</select></label>`;
    }
  } else if (tb.dataset.sig !== "") { tb.dataset.sig = ""; tb.innerHTML = ""; }
}

let lastHTML = "";
// While a button in the view is pressed, a poll's redraw waits for the release: a
// redraw between press and release replaces the button, and the browser then sends no
// click (with many deployments a redraw comes with nearly every poll). A press held
// for more than 2 s (or whose release the page never saw) no longer holds redraws.
let pressed = false, pressedAt = 0, redrawAfterRelease = false;
function render() {
  if (!S.session) return;
  toolbar();
  // Keep the open <select> and scroll position: skip re-rendering under an open menu.
  if (document.activeElement && document.activeElement.closest && document.activeElement.closest("#view select")) return;
  const html = views[S.view]();
  // Replace the DOM only when something changed: a pointer on a button keeps its target.
  if (html !== lastHTML) {
    if (pressed && performance.now() - pressedAt < 2000) { redrawAfterRelease = true; return; }
    $("view").innerHTML = html; lastHTML = html;
  }
  const fc = window.fermionConsole;
  fc.renders++;
  if (S.events.length) fc.lastEventSeq = S.events[S.events.length - 1].seq;
  if (!fc.firstRender && S.updated) { fc.firstRender = performance.now(); S.firstRender = fc.firstRender; }
}

function setStatus(s) { $("status").textContent = s; }
let toastTimer;
function toast(msg, bad) {
  let t = document.querySelector(".toast");
  if (!t) { t = document.createElement("div"); t.className = "toast"; t.setAttribute("role", "status"); document.body.append(t); }
  t.textContent = msg; t.classList.toggle("bad", !!bad);
  clearTimeout(toastTimer); toastTimer = setTimeout(() => t.remove(), 6000);
}

// ---- actions: API calls; a refusal shows the API's own message ----

async function act(kind, name, extra) {
  const n = encodeURIComponent(name);
  try {
    if (kind === "delete") { S.confirm = "delete:" + name; render(); return; }
    if (kind === "rollback") { S.confirm = "rollback:" + name + ":" + extra; render(); return; }
    if (kind === "rollout" && extra === "abort") { S.confirm = "rollout-abort:" + name; render(); return; }
    if (kind === "history") {
      if (S.revisions[name]) { delete S.revisions[name]; render(); return; }
      await Promise.all([loadHistory(name), S.config.features.rollout ? loadRollout(name).catch(() => {}) : null]);
      render(); return;
    }
    // Drop the confirm button before the call goes out: a second click (a double
    // click, an impatient user) must not send a second delete or rollback.
    if (S.confirm) { S.confirm = ""; render(); }
    if (kind === "delete-confirm") { await api("/v1/deployments/" + n, { method: "DELETE" }); toast("deleting " + name); }
    if (kind === "rollback-confirm") {
      await api("/v1/deployments/" + n + "/rollback", { method: "POST", body: { to: Number(extra), message: "rolled back from the console" } });
      toast("rolling " + name + " back to #" + extra);
      await loadHistory(name);
    }
    if (kind === "rollout") {
      const action = extra === "abort-confirm" ? "abort" : extra;
      S.rollouts[name] = await api("/v1/deployments/" + n + "/rollout/" + action, { method: "POST", body: { reason: action + " from the console" } });
      toast("rollout of " + name + ": " + action);
    }
    if (kind === "drain") { await api("/v1/nodes/" + n + "/drain", { method: "POST" }); toast("draining " + name); }
    if (kind === "uncordon") { await api("/v1/nodes/" + n + "/uncordon", { method: "POST" }); toast("uncordoned " + name); }
    if (kind === "mode") {
      const p = S.policies.find((x) => x.name === name);
      await api("/v1/policies/" + n, { method: "PUT", body: { source: p.source, mode: extra } });
      toast("policy " + name + " now in " + extra + " mode");
    }
    await refresh(); render();
  } catch (e) {
    if (e.message !== "unauthorized") toast(kind + " " + name + ": " + e.message, true);
  }
}

// loadRollout reads a deployment's rollout; 404 not_found is "it never had one" (the
// route itself is known to exist: config.features.rollout).
async function loadRollout(name) {
  try {
    S.rollouts[name] = await api("/v1/deployments/" + encodeURIComponent(name) + "/rollout");
  } catch (e) {
    if (e.message === "unauthorized") throw e;
    if (e.status === 404 && e.code === "not_found") S.rollouts[name] = null;
    else throw e;
  }
}

// loadHistory reads a deployment's revisions; a server without them says so in place.
async function loadHistory(name) {
  try {
    const h = await api("/v1/deployments/" + encodeURIComponent(name) + "/revisions");
    S.revisions[name] = { current: h.current, revisions: h.revisions || [] };
  } catch (e) {
    if (e.message === "unauthorized") throw e;
    S.revisions[name] = { error: e.status === 404 && /no route/.test(e.message) ? "this server keeps no deployment history" : "history: " + e.message };
  }
}

function route() {
  const v = (location.hash.replace(/^#\/?/, "") || "executive").split("/")[0];
  S.view = views[v] ? v : "executive";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.view === S.view);
  $("toolbar").dataset.sig = "-";
  if (S.session && S.polling) { render(); refresh().then(render, () => {}); }
}

async function start() {
  $("signin").hidden = true; $("nav").hidden = false; $("signout").hidden = false;
  $("who").textContent = (S.session.id ? S.session.id + " · " : "") + S.session.role;
  route();
  pollLoop();
  followEvents();
}

function wire() {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("signin-error").textContent = "";
    try { await signIn($("token").value.trim()); $("token").value = ""; start(); } catch (e) { $("signin-error").textContent = e.message; }
  });
  $("signout").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  $("view").addEventListener("pointerdown", () => { pressed = true; pressedAt = performance.now(); });
  const release = () => {
    pressed = false;
    // After the click this release leads to has been handled.
    if (redrawAfterRelease) { redrawAfterRelease = false; setTimeout(render, 0); }
  };
  window.addEventListener("pointerup", release);
  window.addEventListener("pointercancel", release);
  $("view").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (b) act(b.dataset.act, b.dataset.name, b.dataset.to);
  });
  $("view").addEventListener("change", (ev) => {
    const s = ev.target.closest("select[data-act]");
    if (s) { s.blur(); act(s.dataset.act, s.dataset.name, s.value); }
  });
  $("toolbar").addEventListener("change", (ev) => {
    if (ev.target.id === "dep-select") { S.debugDep = ev.target.value; S.status = null; S.depEvents = []; S.instances = null; refresh().then(render, () => {}); }
    if (ev.target.id === "event-type") { S.eventType = ev.target.value; render(); }
  });
  // Leaving the page (a reload, a link, closing the tab) ends the event stream at once
  // rather than when the browser gets round to it, and the server ends its side when the
  // connection goes (api_events.go). Back from the back/forward cache, follow again.
  window.addEventListener("pagehide", () => { S.leaving = true; if (S.streamAbort) S.streamAbort.abort(); });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted && S.leaving) { S.leaving = false; if (S.session) followEvents(); } });
  // A hidden tab does not poll (pollLoop); back in view it catches up at once.
  document.addEventListener("visibilitychange", () => { if (!document.hidden && S.session && S.polling) refresh().then(render, () => {}); });
  $("toolbar").addEventListener("input", (ev) => { if (ev.target.id === "node-filter") { S.nodeFilter = ev.target.value; render(); } });
}

async function main() {
  wire();
  // The configuration and the session in parallel: both stand before the first render.
  const config = fetch("/ui/config.json").then((r) => r.json()).then((c) => {
    S.config = c; $("version").textContent = "server " + c.version;
  }).catch(() => { /* the trace links stay off */ });
  if (!S.token) { await config; signOut(""); return; }
  // The first reads and the first token check go out with the configuration, all three
  // at once (each waiting for the other was a round trip before the first render): a
  // refused token signs out either way.
  const check = () => signIn(S.token).then(() => null, (e) => e);
  const first = refresh().catch(() => {});
  let err = await check();
  await config;
  // Only a refusal signs the tab out. A slow or unreachable server keeps the token and
  // is asked again, so a busy moment at a reload never loses the session.
  for (let wait = 1000; err; wait = Math.min(wait * 2, 15000)) {
    if (err.refused || !S.token) { signOut(err.message); return; }
    setStatus(err.message + "; trying again in " + wait / 1000 + " s");
    await new Promise((r) => setTimeout(r, wait));
    err = await check();
  }
  await first;
  start();
}
main();
