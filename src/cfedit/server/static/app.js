// The cfedit web editor: plain JS over the JSON API (GET api/model, api/examples; POST api/edit, api/bounds), relative to
// the page, so that the same page serves one run at / or each of several at /w/NAME/.
// Every text from the server goes into the page through textContent, never as HTML.
"use strict";

const state = { model: null, image: null, example: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function showError(msg) {
  const box = $("error");
  box.hidden = !msg;
  box.textContent = msg || "";
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ detail: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.detail || `HTTP ${r.status}`);
  return data;
}

const png = (b64) => "data:image/png;base64," + b64;
const fmt = (x) => (x === null || x === undefined ? "-" : x.toFixed(3));
// A continuous factor is {kind: "continuous", low, high, step, bins}; a categorical one the list of its value names.
const continuous = (f) => { const s = state.model && state.model.factors[f]; return s && !Array.isArray(s) ? s : null; };
const decimals = (step) => Math.max(0, -Math.floor(Math.log10(step)));
// A value as the page shows it: a continuous factor's as a number, one decimal finer than its slider's step.
function shown(f, v) {
  const c = continuous(f);
  return c && v !== "" && Number.isFinite(Number(v)) ? Number(v).toFixed(decimals(c.step) + 1) : String(v);
}
const assignment = (obj) => Object.entries(obj).map(([k, v]) => `${k}=${shown(k, v)}`).join(", ");

// ------------------------------------------------------------------ the causal diagram (SVG)
function diagram(graph) {
  const NS = "http://www.w3.org/2000/svg";
  const depth = {};
  const parents = (n) => graph.directed.filter((e) => e[1] === n).map((e) => e[0]);
  const level = (n) => (n in depth ? depth[n] : (depth[n] = Math.max(-1, ...parents(n).map(level)) + 1));
  graph.nodes.forEach(level);
  const layers = [];
  graph.nodes.forEach((n) => (layers[depth[n]] = layers[depth[n]] || []).push(n));
  const tall = Math.max(...layers.map((l) => l.length));
  const W = Math.max(1, layers.length) * 110, H = tall * 80, pos = {};
  layers.forEach((l, i) => l.forEach((n, j) => (pos[n] = [55 + i * 110, (H / l.length) * (j + 0.5)])));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const mk = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); svg.append(e); return e; };
  const defs = mk("defs", {});
  const marker = document.createElementNS(NS, "marker");
  for (const [k, v] of Object.entries({ id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" })) marker.setAttribute(k, v);
  const tip = document.createElementNS(NS, "path");
  tip.setAttribute("d", "M0,0 L10,5 L0,10 z");
  marker.append(tip);
  defs.append(marker);
  const R = 20;
  const ends = (a, b) => {
    const [x1, y1] = pos[a], [x2, y2] = pos[b], d = Math.hypot(x2 - x1, y2 - y1) || 1;
    return [x1 + ((x2 - x1) * R) / d, y1 + ((y2 - y1) * R) / d, x2 - ((x2 - x1) * R) / d, y2 - ((y2 - y1) * R) / d];
  };
  for (const [a, b] of graph.directed) {
    const [x1, y1, x2, y2] = ends(a, b);
    mk("line", { x1, y1, x2, y2, stroke: "#333", "stroke-width": 1.6, "marker-end": "url(#arrow)", class: "directed" });
  }
  for (const [a, b] of graph.bidirected) {
    const [x1, y1, x2, y2] = ends(a, b);
    const mx = (x1 + x2) / 2 - (y2 - y1) * 0.35 - 18, my = (y1 + y2) / 2 + (x2 - x1) * 0.35;
    mk("path", { d: `M${x1},${y1} Q${mx},${my} ${x2},${y2}`, fill: "none", stroke: "#2f5bd3", "stroke-width": 1.6,
                 "stroke-dasharray": "5 4", "marker-start": "url(#arrow)", "marker-end": "url(#arrow)", class: "bidirected" });
  }
  for (const n of graph.nodes) {
    mk("circle", { cx: pos[n][0], cy: pos[n][1], r: R, fill: "#eef2fb", stroke: "#2f5bd3", "stroke-width": 1.5 });
    const t = mk("text", { x: pos[n][0], y: pos[n][1] + 5, "text-anchor": "middle", "font-size": 15, "font-weight": 600 });
    t.textContent = n;
  }
  return svg;
}

// ------------------------------------------------------------------ model, examples, intervention controls
function controls(factors) {
  const box = $("interventions");
  box.replaceChildren();
  for (const [f, values] of Object.entries(factors)) {
    if (!Array.isArray(values)) { box.append(slider(f, values)); continue; }
    const sel = el("select", { "data-factor": f, "aria-label": `do(${f})` }, el("option", { value: "", text: "(leave to the model)" }));
    for (const v of values) sel.append(el("option", { value: v, text: `do(${f} = ${v})` }));
    box.append(el("label", { class: "factor" }, el("span", { text: f }), sel));
  }
}

// A continuous factor: a checkbox (set it, or leave it to the model), a slider over its interval and the number, typed or slid.
function slider(f, c) {
  const mid = (c.low + c.high) / 2, dec = decimals(c.step);
  const on = el("input", { type: "checkbox", "data-factor-on": f, "aria-label": `set ${f}` });
  const range = el("input", { type: "range", "data-factor": f, min: c.low, max: c.high, step: c.step, value: mid,
                              "aria-label": `do(${f}): ${c.low} to ${c.high}` });
  const num = el("input", { type: "number", class: "value", "data-factor-value": f, min: c.low, max: c.high, step: "any",
                            value: mid.toFixed(dec), "aria-label": `${f} value` });
  range.addEventListener("input", () => { num.value = Number(range.value).toFixed(dec); on.checked = true; });
  num.addEventListener("input", () => { if (num.value !== "") { range.value = num.value; on.checked = true; } });
  const row = el("div", { class: "factor continuous", title: `${f}: a number in [${c.low}, ${c.high}]` },
                 el("label", { class: "name" }, on, el("span", { text: f })), range, num);
  return row;
}

// Sliders not set yet start from the image's reading.
function startSliders(reading) {
  if (!reading) return;
  for (const [f, v] of Object.entries(reading)) {
    const c = continuous(f), on = document.querySelector(`input[data-factor-on="${f}"]`);
    if (!c || !on || on.checked || !Number.isFinite(Number(v))) continue;
    const x = Math.min(c.high, Math.max(c.low, Number(v)));
    document.querySelector(`input[type=range][data-factor="${f}"]`).value = x;
    document.querySelector(`input[data-factor-value="${f}"]`).value = x.toFixed(decimals(c.step));
  }
}

function choose(image, reading, exampleId, button) {
  state.image = image; state.example = exampleId;
  document.querySelectorAll(".thumbs button").forEach((b) => b.classList.toggle("selected", b === button));
  $("factual").hidden = false;
  $("factual-img").src = image;
  $("factual-reading").textContent = reading ? assignment(reading) : "(read when you edit)";
  startSliders(reading);
  $("edit-button").disabled = false;
}

async function load() {
  try {
    const m = await api("api/model");
    state.model = m;
    $("run-line").textContent = `${m.editor} editor` + (m.world ? ` on world ${m.world}` : "") +
      ` · images ${m.image_shape.join("×")} · bounds from ${m.p_v}`;
    if (m.runs.length > 0) {  // runs served side by side (cfedit serve with no run): each under /w/NAME/
      for (const name of m.runs) $("run-select").append(el("option", { value: name }, name));
      $("run-select").value = m.run;
      $("run-select").addEventListener("change", (ev) => { location.href = `../${ev.target.value}/`; });
      $("run-choice").hidden = false;
    }
    $("diagram").replaceChildren(diagram(m.graph));
    $("training").textContent = JSON.stringify(m.training, null, 1);
    $("k").max = m.limits.max_k;
    controls(m.factors);
    for (const q of m.queries) $("documented").append(el("option", { value: q }));
    if (m.queries.length) $("query").placeholder = m.queries[0];  // e.g. a query over the declared bins of a continuous factor
    const ex = await api("api/examples");
    for (const e of ex.examples) {
      const b = el("button", { type: "button", title: `example ${e.id}: ${assignment(e.reading)}`, "data-example": e.id },
                   el("img", { src: png(e.png), alt: `example ${e.id}` }));
      b.addEventListener("click", () => choose(png(e.png), e.reading, e.id, b));
      $("examples").append(b);
    }
    if (!ex.examples.length) $("examples").append(el("p", { class: "muted", text: "No examples: upload an image." }));
  } catch (err) { showError(err.message); }
}

$("upload").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => choose(reader.result, null, null, null);
  reader.readAsDataURL(file);
});

// ------------------------------------------------------------------ edit: grid, distributions, certificate
function tile(src, caption, name) {
  return el("figure", { class: "tile" }, el("img", { src, alt: caption }),
            el("figcaption", { text: caption }), el("a", { href: src, download: name, text: "download" }));
}

function render(res) {
  const c = res.certificate;
  $("results").hidden = false;
  $("edit-title").textContent = `do(${Object.entries(c.do).map(([k, v]) => `${k}=${v}`).join(", ")}), k = ${c.k}`;  // as the server reads it
  if (res.factual.resized_from) showError(`the upload was ${res.factual.resized_from.join("×")}; it was resized to the run's size`);
  $("factual-reading").textContent = assignment(res.factual.reading);
  const grid = $("grid");
  grid.replaceChildren(tile(png(res.factual.png), "factual: " + assignment(res.factual.reading), "factual.png"));
  res.edits.forEach((e, i) => grid.append(tile(png(e.png), assignment(e.reading), `edit-${i + 1}.png`)));

  const dist = $("distributions");
  dist.replaceChildren(el("tr", {}, el("th", { text: "factor" }), el("th", { text: "factual" }), el("th", { text: "counterfactual value over the k edits" })));
  for (const [f, d] of Object.entries(c.distributions)) {
    const cell = el("td");
    for (const [v, p] of Object.entries(d)) if (p > 0) cell.append(el("span", { class: "bar", style: `width:${Math.round(p * 60)}px` }), `${v} ${p.toFixed(2)}  `);
    const bin = c.binned_factual && c.binned_factual[f] ? ` (bin ${c.binned_factual[f]})` : "";
    dist.append(el("tr", {}, el("td", { text: f }), el("td", { text: shown(f, c.factual[f]) + bin }), cell));
  }

  const cert = $("certificate");
  const truth = c.queries.some((q) => q.truth !== undefined && q.truth !== null);
  const head = ["query", "optimal bounds", "identified", "estimate [95% CI]", "consistent"].concat(truth ? ["truth"] : []);
  cert.replaceChildren(el("tr", {}, ...head.map((h) => el("th", { text: h }))));
  for (const q of c.queries) {
    const yes = (b, t) => el("td", { class: b ? "yes" : "no", text: t || (b ? "yes" : "no") });
    const row = el("tr", {}, el("td", { class: "mono", text: q.query }), el("td", { text: `[${fmt(q.lower)}, ${fmt(q.upper)}]` }),
      el("td", { text: q.identified ? "yes" : "no" }), el("td", { text: `${fmt(q.estimate)} [${fmt(q.estimate_lower)}, ${fmt(q.estimate_upper)}] (n=${q.n})` }),
      yes(q.consistent));
    if (truth) row.append(el("td", { text: fmt(q.truth) }));
    cert.append(row);
  }
  $("cert-note").textContent = `Each query asks how likely the edit shows a factor's value, given the image's reading. Bounds from ${c.p_v}. ` +
    (c.omitted ? `${c.omitted} queries not listed: no edit shows their value and their lower bound is 0 (consistent). ` : "") + (c.note || "") +
    (c.binning ? " " + c.binning : "");
}

$("edit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const doing = {};
  document.querySelectorAll("#interventions select").forEach((s) => { if (s.value) doing[s.dataset.factor] = s.value; });
  for (const on of document.querySelectorAll("#interventions input[data-factor-on]")) {  // a continuous factor: a number
    const f = on.dataset.factorOn, num = document.querySelector(`input[data-factor-value="${f}"]`);
    if (!on.checked) continue;
    if (num.value === "" || !Number.isFinite(Number(num.value))) { showError(`give ${f} a number`); return; }
    doing[f] = Number(num.value);
  }
  if (!Object.keys(doing).length) { showError("choose at least one intervention do(X = x')"); return; }
  const body = { do: doing, k: Number($("k").value), seed: Number($("seed").value) };
  if (state.example !== null) body.example = state.example; else body.image = state.image;
  $("edit-button").disabled = true;
  showError("");
  try { render(await api("api/edit", body)); } catch (err) { showError(err.message); } finally { $("edit-button").disabled = false; }
});

$("bounds-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError("");
  try {
    const b = await api("api/bounds", { query: $("query").value });
    $("bounds-out").textContent = `${b.query}: [${fmt(b.lower)}, ${fmt(b.upper)}]` + (b.identified ? " (identified)" : "") +
      (b.certified ? "" : " (valid, maybe loose)") + (b.truth !== null && b.truth !== undefined ? ` · truth ${fmt(b.truth)}` : "");
  } catch (err) { showError(err.message); }
});

load();
