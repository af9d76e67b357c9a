// The slowest-requests panel of the Debug view: GET /v1/slis/slowest (a
// v1.SlowestRequests) as HTML, each trace id linked through the server's trace UI
// template. Pure: data in, markup out; every value is escaped, links are http(s) only.
import { esc, ago, safeURL } from "/ui/fmt.js";

const TRACE_ID = /^[0-9a-f]{32}$/;

// traceCell links a trace id to the trace UI when there is a template and the id is
// well formed; "sampled" says the trace backend has the gateway's span.
function traceCell(r, template) {
  const id = String(r.traceId || "");
  const mark = r.sampled ? "" : ` <span class="dim" title="span not sampled: the trace backend may not have it; the node's request log has this trace id">unsampled</span>`;
  const href = template && TRACE_ID.test(id) ? safeURL(template.replace("{trace_id}", id)) : "";
  if (!href) return `<code>${esc(id)}</code>${mark}`;
  return `<a href="${esc(href)}" target="_blank" rel="noopener noreferrer" data-trace="${esc(id)}"><code>${esc(id)}</code></a>${mark}`;
}

const ms = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 2 : 1) + " ms");

// slowestPanel renders list (null: the server does not serve the route or failed)
// with template, the --trace-ui-url ("" for none); now (ms) pins "ago" for tests.
export function slowestPanel(list, template, now = Date.now()) {
  if (list === null || list === undefined) return `<p class="note">This server does not report slow requests (GET /v1/slis/slowest).</p>`;
  const reqs = list.requests || [];
  if (!reqs.length) return `<p class="note" data-k="slow-none">No slow requests reported in the last ${esc(list.window || "15m")}; agents send them with their SLIs every 10 s.</p>`;
  const rows = reqs.map((r) => `<tr data-trace-id="${esc(r.traceId)}"><td>${esc(ms(Number(r.durationMs) || 0))}</td>
    <td class="${r.status >= 500 ? "bad" : r.status >= 400 ? "warn" : ""}">${esc(r.status)}</td><td>${esc(r.app)}</td><td>${esc(r.version)}</td>
    <td>${esc(r.node)}${r.instance ? ` <span class="dim">#${esc(r.instance)}</span>` : ""}</td>
    <td title="route ${esc(r.route)}">${esc(r.method)} ${esc(r.path)}</td><td class="dim">${esc(ago(r.start, now))}</td><td>${traceCell(r, template)}</td></tr>`).join("");
  return `<table><thead><tr><th>duration</th><th>status</th><th>app</th><th>version</th><th>node</th><th>request</th><th>when</th><th>trace</th></tr></thead>
    <tbody data-k="slow-requests">${rows}</tbody></table>`;
}
