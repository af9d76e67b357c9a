// Formatting helpers for the console: every value that reaches innerHTML goes
// through esc; links only ever take http(s) URLs.
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
export const num = (n) => Number(n || 0).toLocaleString("en-US");
// count is n (as num writes it) and noun, plural unless n is 1, as api/v1's Count
// writes the CLI's and the API's counts: "1 node", "3 nodes", "2 policies".
export const count = (n, noun) => num(n) + " " + (Number(n) === 1 ? noun :
  /[^aeiou]y$/.test(noun) ? noun.slice(0, -1) + "ies" : /(s|x|z|ch|sh)$/.test(noun) ? noun + "es" : noun + "s");
export const pct = (f, digits = 2) => (f === null || f === undefined || isNaN(f) ? "—" : (f * 100).toFixed(digits) + "%");
export const short = (digest) => String(digest || "").replace(/^sha256:/, "").slice(0, 12);

export function bytes(n) {
  n = Number(n || 0);
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + u[i];
}

export function ago(t, now = Date.now()) {
  const ms = now - Date.parse(t);
  if (!isFinite(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

// since says how long ago t was in the words of the CLI's tables (internal/cli's
// since): whole units, cut not rounded, days for a week and then the date; "-" for
// Go's zero time. The rollout line (rollout.js) must read as `fermion status` prints it.
export function since(t, now = Date.now()) {
  const at = Date.parse(t);
  if (!isFinite(at) || at <= Date.parse("0001-01-01T00:00:00Z")) return "-";
  const s = (now - at) / 1000;
  if (s < 60) return Math.max(0, Math.trunc(s)) + "s ago";
  if (s < 3600) return Math.trunc(s / 60) + "m ago";
  if (s < 48 * 3600) return Math.trunc(s / 3600) + "h ago";
  if (s < 7 * 86400) return Math.trunc(s / 86400) + "d ago";
  return new Date(at).toISOString().slice(0, 10);
}

export function safeURL(u) {
  try { const x = new URL(u); return x.protocol === "http:" || x.protocol === "https:" ? x.href : ""; } catch { return ""; }
}

// traceLinks turns W3C trace ids (32 hex digits) in already-escaped text into links
// to the configured trace UI.
export function traceLinks(escaped, template) {
  if (!template) return escaped;
  return escaped.replace(/\b[0-9a-f]{32}\b/g, (id) => `<a href="${esc(template.replace("{trace_id}", id))}" target="_blank" rel="noopener noreferrer" data-trace="${id}">${id}</a>`);
}

// sparkline draws ratios (0..1, null for no data) as a small SVG line.
export function sparkline(vals, w = 120, h = 22) {
  const pts = vals.map((v, i) => [i, v]).filter(([, v]) => v !== null);
  if (pts.length < 2) return `<span class="dim">…</span>`;
  const lo = Math.min(...pts.map(([, v]) => v)), hi = Math.max(...pts.map(([, v]) => v));
  const span = hi - lo || 1, n = Math.max(vals.length - 1, 1);
  const d = pts.map(([i, v], k) => (k ? "L" : "M") + ((i / n) * w).toFixed(1) + " " + (h - 2 - ((v - lo) / span) * (h - 4)).toFixed(1)).join(" ");
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><path d="${d}" fill="none" stroke="#58a6ff" stroke-width="1.5"/></svg>`;
}
