// The per-instance timeline of the Debug view: GET /v1/deployments/{name}/instances
// (a v1.InstancesList) as HTML, per node one row per instance with a bar from its
// creation to its discard (or now) on a time axis shared by every row, and marks where
// its initialisation ended, it served its first request, a request failed and it was
// discarded. Pure: data in, markup out; every value is escaped.
import { esc, num, count, bytes } from "/ui/fmt.js";

// MAX_ROWS bounds what one render draws: a daemon deployment on 1,000 nodes with 32
// discarded instances kept per version would otherwise be a 30,000-row table.
export const MAX_ROWS = 400;

// Event kinds the agent records (api/v1/instances.go) are matched loosely, so that a
// kind added or spelt differently later still shows: a failure is any kind naming one,
// readiness any of the ways an instance becomes ready.
const FAIL = /fail|error|trap|timeout/;
const READY = /^(initiali[sz]ed|ready|warmed|restored)/;
const FIRST = /^first/;
// Discard reasons that mean something went wrong, as opposed to the autoscaler's own
// choices (idle, drain, undeploy, replaced).
// BAD_DISCARD are the discard reasons an instance's own failure causes (the sandbox's:
// internal/telemetry's Reason* and LimitResponseBody, sandbox.ReasonStart); the rest
// (idle, closed, recycled, canceled, exited) are the node's choice.
const BAD_DISCARD = new Set(["trap", "panic", "timeout", "oom", "warmup", "start", "bad_response", "response_body"]);
const STATE_CLASS = { idle: "ok", busy: "acc", starting: "warn" };

const ms = (t) => { const v = Date.parse(t); return isFinite(v) && v > 0 ? v : NaN; };
const clock = (v) => new Date(v).toISOString().slice(11, 23);
const msText = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Number(v || 0).toFixed(v < 10 ? 2 : 1) + " ms");

// marks derives an instance's marks from its fields and events: init end (created +
// initMillis, when it got ready), first request, failures, discard.
export function marks(in_) {
  const created = ms(in_.created), out = [];
  const evs = in_.events || [];
  // Ready when an event says so, when it served, or while it lives past starting; a
  // discarded instance with none of these never was (a failed warmup).
  const ready = evs.some((e) => READY.test(e.kind)) || in_.requests > 0 || (in_.state !== "discarded" && in_.state !== "starting");
  if (isFinite(created) && ready) out.push({ kind: "init", t: created + Number(in_.initMillis || 0), text: "ready after " + msText(Number(in_.initMillis || 0)) });
  const first = evs.find((e) => FIRST.test(e.kind));
  if (first && isFinite(ms(first.time))) out.push({ kind: "first", t: ms(first.time), text: "first request" });
  for (const e of evs) if (e.kind !== "discarded" && FAIL.test(e.kind) && isFinite(ms(e.time))) out.push({ kind: "fail", t: ms(e.time), text: e.kind.replace(/_/g, " ") + (e.detail ? ": " + e.detail : "") });
  if (in_.state === "discarded" && isFinite(ms(in_.discarded))) out.push({ kind: "disc", t: ms(in_.discarded), text: "discarded: " + (in_.discardReason || "no reason given") + (in_.discardDetail ? ": " + in_.discardDetail : "") });
  return out;
}

// instancesPanel renders list for deployment; list null: the server does not serve
// the route; {error} a failed read. now (ms) is the axis's right end ("now"), pinned in
// tests.
export function instancesPanel(deployment, list, now = Date.now()) {
  if (list === null || list === undefined) return `<p class="note">This server does not report instance timelines (GET /v1/deployments/{name}/instances).</p>`;
  if (list.error) return `<p class="error" data-k="inst-error">instances of ${esc(deployment)}: ${esc(list.error)}</p>`;
  const all = (list.instances || []).filter((i) => isFinite(ms(i.created)));
  const unreachable = list.unreachable || [];
  const unreach = unreachable.length ? `<p class="warn" data-k="inst-unreachable">Not answering: ${unreachable.map((u) =>
    `<span class="chip" data-node="${esc(u.node)}" title="${esc(u.error)}">${esc(u.node)}</span> <span class="dim">${esc(u.error)}</span>`).join(" ")}</p>` : "";
  if (!all.length) return `${unreach}<p class="note" data-k="inst-none">No instances of ${esc(deployment)} reported${unreachable.length ? " by the nodes that answered" : ""}.</p>`;

  // One axis for every row: from the oldest creation to now (or the newest time any
  // node reported, should a node's clock run ahead of this browser's).
  let t0 = Infinity, t1 = now;
  for (const i of all) {
    t0 = Math.min(t0, ms(i.created));
    for (const t of [i.discarded, i.lastRequest]) if (isFinite(ms(t))) t1 = Math.max(t1, ms(t));
  }
  const span = Math.max(t1 - t0, 1);
  const x = (t) => ((Math.min(Math.max(t, t0), t1) - t0) / span * 100).toFixed(2);

  const byNode = new Map();
  for (const i of all) { if (!byNode.has(i.node)) byNode.set(i.node, []); byNode.get(i.node).push(i); }
  const nodes = [...byNode.keys()].sort();
  const live = all.filter((i) => i.state !== "discarded").length;
  let drawn = 0;
  const sections = nodes.map((node) => {
    const ins = byNode.get(node).sort((a, b) => String(a.version).localeCompare(String(b.version)) || ms(a.created) - ms(b.created) || a.id - b.id);
    const rows = [];
    for (const i of ins) {
      if (drawn >= MAX_ROWS) break;
      drawn++;
      const gone = i.state === "discarded", created = ms(i.created), end = gone && isFinite(ms(i.discarded)) ? ms(i.discarded) : t1;
      const left = x(created), width = Math.max(Number(x(end)) - Number(left), 0.3).toFixed(2);
      const mk = marks(i).map((m) => `<i class="m m-${m.kind}" data-mark="${m.kind}" style="left:${x(m.t)}%" title="${esc(m.text + " at " + clock(m.t))}"></i>`).join("");
      const reason = gone ? `<span class="${BAD_DISCARD.has(i.discardReason) ? "bad" : "dim"}" data-k="inst-reason" title="${esc(i.discardDetail || "")}">${esc(i.discardReason || "no reason given")}</span>` : "";
      const barTitle = `created ${clock(created)}${gone ? ", discarded " + clock(end) : ", live"}`;
      rows.push(`<tr data-inst="${esc(i.version)}#${esc(i.id)}" data-state="${esc(i.state)}"><td>${esc(i.version)} <b>#${esc(i.id)}</b></td>
        <td><span class="chip ${gone ? "dim" : STATE_CLASS[i.state] || ""}" data-k="inst-state">${esc(i.state)}</span></td>
        <td class="dim">${esc(i.start || "")}${i.reason ? " · " + esc(i.reason) : ""}</td>
        <td class="tlcell"><div class="tlbar${gone ? " gone" : ""}" title="${esc(barTitle)}"><b style="left:${left}%;width:${width}%"></b>${mk}</div></td>
        <td data-k="inst-init">${esc(msText(Number(i.initMillis || 0)))}</td><td data-k="inst-requests">${num(i.requests)}</td>
        <td data-k="inst-errors" class="${i.errors ? "bad" : ""}">${num(i.errors)}</td><td class="dim">${i.memoryBytes ? bytes(i.memoryBytes) : ""}</td><td>${reason}</td></tr>`);
    }
    if (!rows.length) return "";
    return `<tbody data-node="${esc(node)}"><tr class="node"><th colspan="9">${esc(node)} <span class="dim">${count(ins.length, "instance")}, ${num(ins.filter((i) => i.state !== "discarded").length)} live</span></th></tr>${rows.join("")}</tbody>`;
  }).join("");
  const more = all.length > drawn ? `<p class="note" data-k="inst-more">Showing ${num(drawn)} of ${num(all.length)} instances; <code>fermion instances ${esc(deployment)} --node NODE</code> lists one node's.</p>` : "";
  const dropped = list.dropped ? ` · ${count(list.dropped, "older discarded instance")} no longer held by their nodes` : "";
  return `${unreach}<p data-k="inst-summary">${count(all.length, "instance")} on ${count(nodes.length, "node")} · ${num(live)} live · ${num(all.length - live)} discarded${dropped}</p>
    <p class="note tllegend">Bars run from creation to discard (or now), ${esc(clock(t0))} to ${esc(clock(t1))} UTC. Marks: <i class="m m-init"></i> ready (init done)
    <i class="m m-first"></i> first request <i class="m m-fail"></i> failed request <i class="m m-disc"></i> discarded; hover for times and details.</p>
    <table class="inst"><thead><tr><th>instance</th><th>state</th><th>start · reason</th><th>timeline</th><th>init</th><th>requests</th><th>errors</th><th>memory</th><th>discarded because</th></tr></thead>
    ${sections}</table>${more}`;
}
