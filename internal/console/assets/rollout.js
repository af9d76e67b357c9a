// The rollout panel: a deployment's rollout (GET /v1/deployments/{name}/rollout, a
// v1.Rollout) as HTML. Pure: data in, markup out, so that a Go test can feed it the
// API's JSON in a browser (browser_test.go, TestRolloutPanelInBrowser).
import { esc, ago, short, since } from "/ui/fmt.js";

// Phases that leave the rollout waiting on a person or still moving; the rest are ends.
const PHASE_CLASS = {
  progressing: "warn", analysing: "warn", paused: "warn", promoting: "warn",
  succeeded: "ok", rolled_back: "bad", aborted: "bad", failed: "bad",
};

// num3 prints a check's number: ratios and factors as given, to four significant
// digits; NaN and infinities (a stable side with no traffic) as a dash.
const num3 = (v) => (typeof v === "number" && isFinite(v) ? String(Number(v.toPrecision(4))) : "—");

// rolloutLine says where a deployment's rollout stands (its rolloutStatus, a
// v1.RolloutSummary) in the line `fermion status` prints: api/v1's
// RolloutSummary.Describe, and how long ago an ended one ended. A port, not a field
// the server fills, so that the API's JSON stays data; TestRolloutLineInBrowser holds
// the two to the same words.
export function rolloutLine(r, now = Date.now()) {
  let step = `at step ${r.step + 1}/${r.steps}` + (r.stepText ? ` (${r.stepText})` : "");
  if (r.step >= r.steps) step = "while promoting"; // past the last step: the promotion to every node
  const name = (v) => v.version || "revision " + v.number;
  let to = name(r.to), from = name(r.from);
  if (r.to.version && r.to.version === r.from.version) { // two builds of one app version: say which
    to += ` (revision ${r.to.number})`;
    from += ` (revision ${r.from.number})`;
  }
  let s;
  switch (r.phase) {
    case "promoting": s = `rolling out: promoting ${to} to every node`; break;
    case "succeeded": s = `rolled out: ${to} on every node`; break;
    case "rolled_back": s = `rolled back ${step} to ${from}`; break;
    case "aborted": case "failed": s = `rollout ${r.phase} ${step}, back to ${from}`; break;
    default:
      s = `rolling out: ${step.replace(/^at /, "")} ${r.kind || "rollout"} ${to}` +
        (r.gated ? ", paused at a manual gate" : r.phase === "paused" ? ", paused" : "");
  }
  if (r.terminal && r.phase !== "succeeded" && r.reason) s += ": " + r.reason;
  return r.terminal ? s + " (" + since(r.updated, now) + ")" : s;
}

// rolloutActions are the buttons a deployer gets for a rollout: none once it ended;
// pause or resume as it stands; promote and abort while it runs. abort asks twice
// (confirm names the action awaiting its second click, as the deployments view does).
export function rolloutActions(r, confirm) {
  if (!r || r.terminal) return [];
  const out = [{ action: "promote", label: "promote" }];
  out.push(r.phase === "paused" ? { action: "resume", label: "resume" } : { action: "pause", label: "pause" });
  out.push(confirm === "abort" ? { action: "abort-confirm", label: "confirm abort", danger: true } : { action: "abort", label: "abort", danger: true });
  return out;
}

// rolloutPanel renders r for deployment name. opts: canAct (the session may deploy),
// confirm (an action awaiting its second click), now (ms, for "ago"; the tests pin it).
export function rolloutPanel(name, r, opts = {}) {
  if (!r) return `<p class="dim" data-k="rollout-none">no rollout: ${esc(name)} changed all at once</p>`;
  const steps = (r.steps || []).map((s, i) => {
    const state = r.terminal ? (r.phase === "succeeded" || i < r.step ? "done" : "") : i < r.step ? "done" : i === r.step ? "current" : "";
    return `<li class="step ${state}" data-step="${i}"${state === "current" ? ` aria-current="step"` : ""}>${esc(s)}</li>`;
  }).join("");
  const verdicts = (r.verdicts || []).slice(-5).reverse().map((v) => `
    <tr class="verdict"><td colspan="8">step ${v.step + 1} · <span class="${v.result === "pass" ? "ok" : v.result === "fail" ? "bad" : "warn"}" data-k="verdict-result">${esc(v.result)}</span> · ${esc(ago(v.at, opts.now))}</td></tr>
    ${(v.checks || []).map((c) => `<tr data-check="${esc(c.check)}"><td>${esc(c.check)}</td>
      <td class="${c.result === "pass" ? "ok" : c.result === "fail" ? "bad" : "warn"}">${esc(c.result)}</td>
      <td class="canary">${num3(c.canary)}</td><td class="stable">${num3(c.stable)}</td><td class="threshold">${num3(c.threshold)}</td>
      <td class="p">${c.p < 0 ? "—" : num3(c.p)}</td><td class="n">${Number(c.nCanary || 0).toLocaleString("en-US")} / ${Number(c.nStable || 0).toLocaleString("en-US")}</td>
      <td class="dim">${esc(c.reason || "")}</td></tr>`).join("")}`).join("");
  const buttons = opts.canAct ? rolloutActions(r, opts.confirm).map((b) =>
    `<button${b.danger ? ` class="danger"` : ""} data-act="rollout" data-name="${esc(name)}" data-to="${b.action}">${b.label}</button>`).join(" ") : "";
  return `<div class="rollout" data-k="rollout" data-phase="${esc(r.phase)}">
    <p><span class="chip ${PHASE_CLASS[r.phase] || ""}" data-k="rollout-phase">${esc(r.phase.replace("_", " "))}</span>
      ${esc(r.strategy && r.strategy.kind || "")} from #${r.from.number} (${esc(r.from.version)} ${esc(short(r.from.digest))})
      to #${r.to.number} (${esc(r.to.version)} ${esc(short(r.to.digest))})
      ${r.weight && !r.terminal ? ` · canary weight <b data-k="rollout-weight">${r.weight}%</b>` : ""}
      · started ${esc(ago(r.started, opts.now))}${r.reason ? ` · <span class="dim" data-k="rollout-reason">${esc(r.reason)}</span>` : ""}
      ${buttons ? `<span class="actions">${buttons}</span>` : ""}</p>
    ${steps ? `<ol class="steps" data-k="rollout-steps">${steps}</ol>` : ""}
    ${(r.canaryNodes || []).length ? `<p class="dim">canary nodes: <span data-k="rollout-canary-nodes">${r.canaryNodes.map((n) => `<span class="chip">${esc(n)}</span>`).join("")}</span></p>` : ""}
    ${verdicts ? `<table data-k="rollout-verdicts"><thead><tr><th>check</th><th>result</th><th>canary</th><th>stable</th><th>threshold</th><th>p</th><th>n (canary / stable)</th><th></th></tr></thead><tbody>${verdicts}</tbody></table>`
      : `<p class="dim">no analysis yet</p>`}
  </div>`;
}
