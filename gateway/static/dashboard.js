// abgate live dashboard: polls /dashboard/data and draws everything as inline SVG.
// No framework and no network beyond this gateway. Every string from the server
// goes in through textContent, never innerHTML.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const MINUS = "\u2212";

const state = { experiment: decodeURIComponent(location.hash.slice(1)) || null, timer: null };

// --- small DOM helpers -------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fill(id, ...children) {
  const target = document.getElementById(id);
  target.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  return target;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const count = (n) => (isNum(n) ? n.toLocaleString("en-US") : "–");
const pct = (v, digits = 1) => (isNum(v) ? `${(100 * v).toFixed(digits)}%` : "–");
const signed = (text) => (text.startsWith("-") ? MINUS + text.slice(1) : `+${text}`);
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString("en-GB", { hour12: false });

function lift(value, relative) {
  if (!isNum(value)) return value === "inf" ? "∞" : value === "-inf" ? `${MINUS}∞` : "–";
  return relative ? signed(`${(100 * value).toFixed(2)}%`) : signed(value.toFixed(4));
}

function dot(colour) {
  const d = el("span", { class: "dot" });
  d.style.background = colour;
  return d;
}

// --- panels --------------------------------------------------------------------

function header(data) {
  document.getElementById("experiment-name").textContent = data.experiment;
  const state = data.paused ? "paused" : "routing";
  document.getElementById("experiment-meta").textContent =
    `model ${data.model} · config v${data.version} · ${state} · ${data.window_s}-s windows`;
  const picker = document.getElementById("picker");
  const select = document.getElementById("experiment-select");
  picker.hidden = data.experiments.length < 2;
  if (select.options.length !== data.experiments.length) {
    select.replaceChildren(...data.experiments.map((n) => el("option", { value: n }, n)));
  }
  select.value = data.experiment;
}

function alerts(data) {
  const items = [];
  if (data.srm.mismatch) {
    items.push(el("div", { class: "alert", role: "alert" },
      "Sample-ratio mismatch: every verdict is on hold. ", data.srm.message));
  }
  if (data.paused) {
    items.push(el("div", { class: "alert paused" },
      "Paused: all traffic goes to the champion; recording goes on."));
  }
  fill("alerts", ...items);
}

function split(data) {
  const rows = data.split.map((arm) => {
    const colour = data.colours[arm.variant];
    const bars = el("div", { class: "bars" });
    const observed = el("div", { class: "bar observed" });
    observed.style.width = `${100 * (arm.observed_share || 0)}%`;
    observed.style.background = colour;
    // The outline is what the split check expects: the weights in force when each
    // request was served (per epoch); today's weight when nothing was checked yet.
    const expected = arm.expected_share ?? arm.configured_share;
    const configured = el("div", { class: "bar configured" });
    configured.style.width = `${100 * expected}%`;
    configured.style.borderColor = colour;
    bars.append(observed, configured);
    return el("div", { class: "split-row", "data-variant": arm.variant },
      el("div", { class: "split-name" }, dot(colour), arm.variant,
        el("span", { class: "role" }, arm.role)),
      bars,
      el("div", { class: "split-nums" },
        el("span", null, "observed ", el("b", { "data-field": "observed" }, pct(arm.observed_share))),
        el("span", null, "configured ",
          el("b", { "data-field": "configured" }, pct(arm.configured_share))),
        arm.expected_share == null ? null : el("span", null, "expected (per epoch) ",
          el("b", { "data-field": "expected" }, pct(arm.expected_share))),
        el("span", null, el("b", { "data-field": "requests" }, count(arm.requests)), " requests"),
        el("span", null, el("b", { "data-field": "errors" }, count(arm.errors)), " errors")));
  });
  fill("split", ...rows);
  const srm = document.getElementById("srm");
  srm.textContent = data.srm.message;
  srm.className = data.srm.mismatch ? "note bad" : data.srm.checked ? "note ok" : "note";
}

// A forest plot: each challenger's lift over the champion with its interval.
function metric(data) {
  const p = data.primary;
  document.getElementById("metric-name").textContent =
    `${p.metric} · ${p.direction === "increase" ? "higher" : "lower"} is better`;
  const rows = p.variants;
  const arms = Object.fromEntries(data.split.map((a) => [a.variant, a]));
  const champion = data.split.find((a) => a.role === "champion");
  const means = el("table", { class: "metric-table" },
    el("thead", null, el("tr", null, el("th", null, "variant"), el("th", null, p.metric),
      el("th", null, "outcomes"), el("th", null, "lift vs champion"), el("th", null, "p"))),
    el("tbody", null, ...data.split.map((arm) => {
      const test = rows.find((r) => r.variant === arm.variant);
      const relative = test && test.difference_type === "relative";
      return el("tr", { "data-variant": arm.variant },
        el("td", null, dot(data.colours[arm.variant]), arm.variant),
        el("td", null, arm.primary ? pct(arm.primary.mean, 2) : "–"),
        el("td", null, count(arm.primary ? arm.primary.n : null)),
        el("td", { "data-field": "lift" }, test ? lift(test.estimate, relative) : "champion"),
        el("td", null, test && isNum(test.p_value) ? test.p_value.toPrecision(2) : "–"));
    })));
  const usable = rows.filter((r) => !r.error && isNum(r.estimate));
  if (!usable.length) {
    fill("metric", empty(champion && arms[champion.variant].primary
      ? "waiting for enough outcomes in both arms" : `no ${p.metric} outcomes yet (feedback)`),
    means);
  } else {
    fill("metric", forest(usable, data.colours), means);
  }
  document.getElementById("metric-note").textContent =
    `Bars: ${p.interval} of the lift over the champion; a bar clear of the dashed zero line is significant.`;
}

function forest(rows, colours) {
  const width = Math.max(320, Math.round(document.getElementById("metric").clientWidth || 460));
  const rowH = 36;
  const top = 8;
  const left = 92;
  const right = 16;
  const height = top + rows.length * rowH + 26;
  const relative = rows.some((r) => r.difference_type === "relative");
  const ends = [0];
  for (const r of rows) {
    ends.push(r.estimate);
    for (const v of r.ci) if (isNum(v)) ends.push(v);
  }
  let lo = Math.min(...ends);
  let hi = Math.max(...ends);
  const pad = (hi - lo || Math.abs(hi) || 0.01) * 0.12;
  lo -= pad;
  hi += pad;
  const x = (v) => left + ((v - lo) / (hi - lo)) * (width - left - right);
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "lift over the champion with its interval" });
  const ticks = niceTicks(lo, hi, 5);
  const axisY = top + rows.length * rowH + 4;
  for (const t of ticks) {
    plot.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: top, y2: axisY }));
    plot.append(svg("text", { x: x(t), y: axisY + 14, "text-anchor": "middle" },
      t === 0 ? "0" : relative ? lift(t, true).replace(/\.00%$/, "%") : lift(t, false)));
  }
  plot.append(svg("line", { class: "zero", x1: x(0), x2: x(0), y1: top - 4, y2: axisY }));
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    const colour = colours[r.variant];
    const low = isNum(r.ci[0]) ? r.ci[0] : lo;
    const high = isNum(r.ci[1]) ? r.ci[1] : hi;
    plot.append(svg("text", { x: left - 10, y: y + 4, "text-anchor": "end",
      "font-weight": "600", fill: "#1f2328" }, r.variant));
    plot.append(svg("rect", { x: x(low), y: y - 6, width: Math.max(2, x(high) - x(low)),
      height: 12, rx: 3, fill: colour, "fill-opacity": "0.25", stroke: colour }));
    plot.append(svg("circle", { cx: x(r.estimate), cy: y, r: 5, fill: colour,
      stroke: "#fff", "stroke-width": 1.5 }));
  });
  return plot;
}

function verdicts(data) {
  document.getElementById("test-name").textContent = data.test;
  const items = data.verdicts.map((v) => el("div", { class: "verdict", "data-variant": v.variant },
    el("span", { class: `badge badge-${v.action}` }, v.action),
    el("span", null, dot(data.colours[v.variant]), el("b", null, v.variant), ` · rule ${v.rule}`),
    el("span", { class: "why" }, v.reason)));
  fill("verdicts", ...(items.length ? items : [empty("only a champion: nothing to decide")]));
}

function guardrails(data) {
  // Every configured guardrail per challenger, with its result (empty list: none configured).
  const label = { failed: "breached", ok: "ok", "not checked": "not checked yet" };
  const items = [];
  for (const v of data.guardrails) {
    if (!v.checks.length) {
      items.push(el("div", { class: "guardrail" }, dot(data.colours[v.variant]),
        el("b", null, v.variant), " · no guardrails configured"));
    }
    for (const g of v.checks) {
      items.push(el("div", { class: `guardrail guardrail-${g.status.replace(" ", "-")}`,
        "data-variant": v.variant, "data-rule": g.rule },
        dot(data.colours[v.variant]), el("b", null, v.variant),
        ` · ${g.metric} ${g.limit} ${g.threshold}: `, el("b", null, label[g.status] || g.status),
        el("span", { class: "why" }, g.message)));
    }
  }
  fill("guardrails", ...(items.length ? items : [empty("only a champion: nothing to check")]));
}

function shadows(data) {
  // Per shadow and metric: both / live only / shadow only / neither, shadow − live in
  // accuracy points with its interval, and the paired gate's verdict.
  const words = { harm: "harm", non_inferior: "non-inferior", undecided: "undecided",
    no_data: "no labels" };
  const pts = (v) => (isNum(v) ? `${v >= 0 ? "+" : MINUS}${Math.abs(100 * v).toFixed(2)}` : "∞");
  const items = (data.shadows || []).map((s) => {
    const p = s.paired;
    const diff = isNum(s.estimate)
      ? ` · shadow − live ${pts(s.estimate)} pts` +
        (s.ci ? ` [${s.ci.map((v) => (isNum(v) ? pts(v) : v === "-inf" ? `${MINUS}∞` : "+∞"))
          .join(", ")}]` : "")
      : "";
    return el("div", { class: "shadow", "data-shadow": s.shadow },
      el("span", { class: `badge badge-${s.verdict}` }, words[s.verdict] || s.verdict),
      el("b", null, ` ${s.shadow}`), ` (${s.model_version || "?"}) · ${s.metric}: `,
      `${count(p.both)} / ${count(p.live_only)} / ${count(p.shadow_only)} / ${count(p.neither)}`,
      diff, ` · shed ${count(s.shed)}, late ${count(s.late)}`,
      el("span", { class: "why" }, s.reason));
  });
  fill("shadows", ...(items.length ? items : [empty("no shadows in this experiment's config")]));
}

function ramp(data) {
  const r = data.ramp;
  if (!r) {
    fill("ramp", empty("no ramp plan in this experiment's config"));
    return;
  }
  const current = Number.isInteger(r.step) ? r.step : -1;
  const steps = el("div", { class: "steps" }, ...r.steps.map((s, i) => el("span", {
    class: `step${i < current ? " done" : i === current ? " current" : ""}` }, `${s}%`)));
  const where = current >= 0 ? `step ${current + 1} of ${r.steps.length} · ${r.status}` : r.status;
  fill("ramp", steps, el("p", { class: "note" },
    `${r.variant} at ${r.weight}% · ${where} · ` +
    `each step ≥ ${r.min_duration_s} s and ${count(r.min_samples)} samples`));
}

function legend(data) {
  fill("legend", ...data.split.map((a) => el("span", null, dot(data.colours[a.variant]),
    `${a.variant} (${a.role})`)));
}

// --- line charts ---------------------------------------------------------------

function niceTicks(lo, hi, target) {
  const span = hi - lo || 1;
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= target) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

function lineChart(id, data, field, format) {
  const target = document.getElementById(id);
  const width = Math.max(320, Math.round(target.clientWidth || 420));
  const height = 210;
  const m = { left: 48, right: 12, top: 10, bottom: 22 };
  const points = data.series;
  const names = data.split.map((a) => a.variant);
  if (points.length < 1) {
    fill(id, empty("no traffic recorded yet"));
    return;
  }
  const values = [];
  for (const p of points) for (const n of names) {
    const v = p.variants[n] && p.variants[n][field];
    if (isNum(v)) values.push(v);
  }
  const t0 = points[0].start;
  const t1 = Math.max(points[points.length - 1].start + points[points.length - 1].seconds,
    t0 + data.window_s);
  const top = Math.max(...values, 0) * 1.12 || (field === "error_rate" ? 0.01 : 1);
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * (width - m.left - m.right);
  const y = (v) => height - m.bottom - (v / top) * (height - m.top - m.bottom);
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "data-field": field });
  for (const t of niceTicks(0, top, 4)) {
    plot.append(svg("line", { class: "grid", x1: m.left, x2: width - m.right, y1: y(t), y2: y(t) }));
    plot.append(svg("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, format(t)));
  }
  plot.append(svg("line", { class: "axis", x1: m.left, x2: width - m.right,
    y1: height - m.bottom, y2: height - m.bottom }));
  const labels = Math.min(4, points.length);
  for (let i = 0; i < labels; i++) {
    const t = t0 + ((t1 - t0) * i) / Math.max(1, labels - 1);
    const anchor = i === 0 ? "start" : i === labels - 1 ? "end" : "middle";
    plot.append(svg("text", { x: x(t), y: height - 6, "text-anchor": anchor }, clock(t)));
  }
  for (const name of names) {
    let d = "";
    let pen = false;
    for (const p of points) {
      const v = p.variants[name] && p.variants[name][field];
      if (!isNum(v)) {
        pen = false;
        continue;
      }
      // Plot each window at its middle (the current one at its elapsed middle).
      const px = x(p.start + p.seconds / 2).toFixed(1);
      d += `${pen ? "L" : "M"}${px},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) {
      plot.append(svg("path", { d, fill: "none", stroke: data.colours[name], "stroke-width": 2,
        "stroke-linejoin": "round", "data-variant": name }));
    }
    if (points.length === 1 && d) {
      const [px, py] = d.slice(1).split(",");
      plot.append(svg("circle", { cx: px, cy: py, r: 3, fill: data.colours[name] }));
    }
  }
  if (values.length && values.every((v) => v === 0)) {
    plot.append(svg("text", { x: (m.left + width - m.right) / 2, y: m.top + 34,
      "text-anchor": "middle", class: "quiet" }, `all zero in these ${points.length} windows`));
  }
  fill(id, plot);
}

// Axis labels: as few digits as the tick step needs.
const short = (v) => String(Number(v.toFixed(Math.abs(v) >= 10 ? 0 : 2)));
const errorPct = (v) => `${short(100 * v)}%`;

// --- drift and audit -------------------------------------------------------------

// The drift source is pluggable: any array of per-feature objects is shown as a table,
// rows flagged when they say so (drifted / alert / flagged).
function drift(data) {
  const rows = Array.isArray(data.drift) ? data.drift : null;
  if (!rows || !rows.length) {
    fill("drift", empty("no drift data"));
    return;
  }
  const flags = new Set(["drifted", "alert", "flagged"]);  // mark a row, not a column
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((c) => !flags.has(c));
  const cell = (v) => (isNum(v) ? (Number.isInteger(v) ? count(v) : v.toPrecision(3)) :
    typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));
  fill("drift", el("div", { class: "scroll" }, el("table", { class: "log" },
    el("thead", null, el("tr", null, ...columns.map((c) => el("th", null, c)))),
    el("tbody", null, ...rows.map((r) => el("tr", {
      class: r.drifted || r.alert || r.flagged ? "flagged" : null },
    ...columns.map((c) => el("td", { class: isNum(r[c]) ? "num" : null },
      r[c] === undefined ? "" : cell(r[c])))))))));
}

function audit(data) {
  if (!data.audit.length) {
    fill("audit", empty("no changes recorded"));
    return;
  }
  fill("audit", el("table", { class: "log" },
    el("thead", null, el("tr", null, ...["time", "actor", "action", "reason", "config"].map(
      (h) => el("th", null, h)))),
    el("tbody", null, ...data.audit.map((a) => el("tr", null,
      el("td", { class: "when" }, a.ts.replace("T", " ").replace(/\+00:00$/, " UTC")),
      el("td", null, a.actor),
      el("td", null, el("code", null, a.action)),
      el("td", null, a.reason || (a.rule ? `rule ${a.rule}` : "")),
      el("td", { class: "num" }, a.version ? `v${a.version}` : ""))))));
}

function empty(text) {
  return el("p", { class: "empty" }, text);
}

// --- polling and login -------------------------------------------------------------

function render(data) {
  header(data);
  alerts(data);
  split(data);
  metric(data);
  verdicts(data);
  guardrails(data);
  shadows(data);
  ramp(data);
  legend(data);
  lineChart("chart-rps", data, "rps", short);
  lineChart("chart-errors", data, "error_rate", errorPct);
  lineChart("chart-p99", data, "p99_ms", short);
  drift(data);
  audit(data);
}

function status(text, kind, generatedAt) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.className = `status ${kind || ""}`;
  if (generatedAt !== undefined) node.dataset.generatedAt = String(generatedAt);
}

async function refresh() {
  clearTimeout(state.timer);
  const query = state.experiment ? `?experiment=${encodeURIComponent(state.experiment)}` : "";
  try {
    const answer = await fetch(`/dashboard/data${query}`, { credentials: "same-origin",
      cache: "no-store" });
    if (answer.status === 401) {
      showLogin((await answer.json()).error);
      return;
    }
    const data = await answer.json();
    if (!answer.ok) {
      status(data.error || `error ${answer.status}`, "down");
    } else {
      document.getElementById("login").hidden = true;
      document.getElementById("board").hidden = false;
      render(data);
      document.getElementById("logout").hidden = !data.login_required;
      status(`updated ${clock(data.generated_at)} · every ${POLL_MS / 1000} s`, "",
        data.generated_at);
    }
  } catch (err) {
    status(`gateway unreachable, retrying (${err.message})`, "down");
  }
  state.timer = setTimeout(refresh, POLL_MS);
}

function showLogin(message) {
  document.getElementById("board").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  status("signed out", "stale");
  if (message && document.getElementById("token").value) {
    document.getElementById("login-error").textContent = message;
  }
  document.getElementById("token").focus();
}

async function login(event) {
  event.preventDefault();
  const token = document.getElementById("token").value;
  const answer = await fetch("/dashboard/login", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }),
    credentials: "same-origin",
  });
  if (answer.ok) {
    document.getElementById("login-error").textContent = "";
    document.getElementById("token").value = "";
    document.getElementById("logout").hidden = false;
    refresh();
  } else {
    document.getElementById("login-error").textContent = (await answer.json()).error;
  }
}

async function logout() {
  await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin" });
  clearTimeout(state.timer);
  showLogin();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("experiment-select").addEventListener("change", (event) => {
    state.experiment = event.target.value;
    location.hash = encodeURIComponent(state.experiment);
    refresh();
  });
  refresh();
});
