// hsp dashboard: polls the JSON API (docs/dashboard.md) and renders plugins, queues, graphs,
// and the deploy panel. Plain DOM code, no build step.
"use strict";
const $ = sel => document.querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};

const tokenInput = $("#token");
tokenInput.value = localStorage.getItem("hsp-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("hsp-token", tokenInput.value));

async function api(path, body) {
  const headers = {};
  if (tokenInput.value) headers["Authorization"] = "Bearer " + tokenInput.value;
  const opts = { headers };
  if (body !== undefined) {
    opts.method = "POST"; headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data;
  try { data = await r.json(); } catch (e) { data = { error: r.status + " " + r.statusText }; }
  if (!r.ok && data.ok === undefined) data.ok = false;
  data.httpStatus = r.status;
  return data;
}

// -- formatting ---------------------------------------------------------------------------------
function human(n) {
  if (n === null || n === undefined) return "-";
  const a = Math.abs(n);
  if (a < 1000) return String(Math.round(n));
  for (const [d, u] of [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (a >= d) return (n / d).toFixed(1) + u;
}
function bytes(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"]; let v = n, i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < u.length - 1);
  return v.toFixed(1) + " " + u[i];
}
function rate(r) { return r === null || r === undefined ? "-" : r < 10 ? r.toFixed(1) : human(r); }
function ns(avg, sd) { return avg || sd ? human(avg) + " / " + human(sd) + " ns" : "-"; }
function clock(t) { return new Date(t * 1000).toISOString().slice(11, 19); }
function duration(s) { s = Math.floor(s || 0); return Math.floor(s / 3600) + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0"); }

// -- status -------------------------------------------------------------------------------------
const expanded = new Set();
let lastStatus = null;

function renderPlugins(st) {
  const tb = $("#plugins tbody");
  tb.replaceChildren();
  for (const p of st.plugins) {
    const s = p.stats || {};
    const actions = el("td", {},
      el("button", { class: "small", onclick: e => { e.stopPropagation(); showSource(p.name); } }, "source"),
      el("button", { class: "small", onclick: e => { e.stopPropagation(); showErr(p.name); } }, ".err"),
      p.type === "analysis" && p.state === "running"
        ? el("button", { class: "small stop", onclick: e => { e.stopPropagation(); stopPlugin(p.name); } }, "stop") : null);
    const row = el("tr", { class: "plugin", "data-name": p.name, "data-state": p.state, onclick: () => {
        expanded.has(p.name) ? expanded.delete(p.name) : expanded.add(p.name); renderPlugins(lastStatus); } },
      el("td", {}, p.name),
      el("td", {}, el("span", { class: "state " + p.state }, p.state)),
      el("td", { class: "n rate" }, rate(p.rate)),
      el("td", { class: "n processed" }, p.type === "input" ? "-" : human(p.processed)),
      el("td", { class: "n injected" }, human(p.injected)),
      el("td", { class: "n" }, p.type === "input" ? "-" : human(p.failures)),
      el("td", { class: "n" }, bytes(p.memory)),
      el("td", { class: "n" }, s.mem_max ? bytes(s.mem_max) : "-"),
      el("td", { class: "n" }, s.ins_max ? human(s.ins_max) : "-"),
      el("td", { class: "n" }, ns(s.mm_avg, s.mm_sd)),
      el("td", { class: "n" }, ns(s.pm_avg, s.pm_sd)),
      el("td", { class: "n" }, ns(s.te_avg, s.te_sd)),
      actions);
    tb.append(row);
    if (p.reason && !expanded.has(p.name)) {
      tb.append(el("tr", { class: "details" }, el("td", { colspan: 13, class: "reason" }, p.reason)));
    }
    if (expanded.has(p.name)) {
      const log = el("ul", { class: "log" });
      for (const l of p.log) log.append(el("li", { class: l.level }, clock(l.time) + " " + l.level + " " + l.text));
      if (!p.log.length) log.append(el("li", {}, "(no log lines)"));
      tb.append(el("tr", { class: "details" }, el("td", { colspan: 13 },
        p.reason ? el("div", { class: "reason" }, "terminated: " + p.reason) : null,
        p.matcher ? el("div", {}, "matcher: ", el("code", {}, p.matcher)) : null,
        p.ticker_interval !== null ? el("div", {}, "ticker_interval: " + p.ticker_interval + " s") : null,
        log)));
    }
  }
}

function renderStatus(st) {
  lastStatus = st;
  const counts = {};
  for (const p of st.plugins) counts[p.state] = (counts[p.state] || 0) + 1;
  $("#summary").textContent = "up " + duration(st.uptime) + " · " +
    Object.entries(counts).map(([k, v]) => v + " " + k).join(", ");
  renderPlugins(st);
  $("#queues tbody").replaceChildren(...st.queues.map(q => el("tr", {},
    el("td", {}, q.name), el("td", {}, q.writer || "-"), el("td", { class: "n" }, q.files), el("td", { class: "n" }, bytes(q.size)))));
  $("#readers tbody").replaceChildren(...st.readers.map(r => el("tr", {},
    el("td", {}, r.name), el("td", {}, r.queue), el("td", {}, r.position || "-"), el("td", { class: "n" }, bytes(r.lag)))));
  const tl = $("#terminations");
  tl.replaceChildren(...st.terminations.slice().reverse().map(t => el("li", { class: "error" }, clock(t.time) + " " + t.plugin + ": " + t.reason)));
  if (!st.terminations.length) tl.append(el("li", {}, "none"));
}

async function pollStatus() {
  try {
    const st = await api("/api/status");
    if (st.plugins) { renderStatus(st); $("#conn").classList.add("live"); }
    else { $("#conn").classList.remove("live"); $("#summary").textContent = st.error || "no status"; }
  } catch (e) { $("#conn").classList.remove("live"); }
}

// -- graphs and payloads -----------------------------------------------------------------------
const cards = new Map(); // key -> {card, updated, graph, hidden}

function graphCard(p, box) {
  const hidden = {};
  const canvas = el("canvas", { class: "graph", "data-key": p.key });
  const legend = el("div", { class: "legend" });
  box.append(legend, canvas);
  return { canvas, legend, hidden };
}

function legendOf(columns, hidden, toggle) {
  return el("div", { class: "legend" }, ...columns.map((col, i) => el("span", {
    style: (toggle ? "cursor:pointer;" : "") + "opacity:" + (hidden[i] ? 0.4 : 1),
    onclick: toggle ? () => toggle(i) : null },
    el("i", { style: "background:" + HSP_COLORS[i % HSP_COLORS.length] }), col.name + (col.unit ? " (" + col.unit + ")" : ""))));
}

function renderPayload(p) {
  let c = cards.get(p.key);
  if (!c) {
    const body = el("div", { class: "body" });
    const card = el("div", { class: "card", "data-key": p.key, "data-type": p.type },
      el("h3", {}, p.logger + " · " + p.name + " (" + p.type + ")"), el("div", { class: "meta" }), body);
    $("#graphs").append(card);
    c = { card, body, updated: null };
    cards.set(p.key, c);
  }
  if (c.updated === p.updated) return;
  c.updated = p.updated;
  c.card.querySelector(".meta").textContent = p.count + " payloads, last at " + clock(p.updated) + (p.error ? " · " + p.error : "");
  if (p.graph) {
    if (!c.chart) { c.body.replaceChildren(); c.chart = graphCard(p, c.body); }
    c.graph = p.graph;
    const ch = c.chart;
    ch.legend.replaceChildren(...legendOf(p.graph.columns, ch.hidden, i => { ch.hidden[i] = !ch.hidden[i]; c.updated = null; renderPayload(p); }).childNodes);
    drawCbuf(ch.canvas, p.graph, ch.hidden);
  } else if (p.type === "tsv") {
    c.chart = null;
    const rows = (p.text || "").split("\n").filter(l => l.length).map(l => l.split("\t"));
    const table = el("table", { class: "tsv" });
    rows.slice(0, 500).forEach((r, i) => table.append(el("tr", {}, ...r.map(v => el(i === 0 ? "th" : "td", {}, v)))));
    c.body.replaceChildren(table);
  } else {
    c.chart = null;
    c.body.replaceChildren(el("pre", {}, p.text || ""));
  }
}

async function pollPayloads() {
  try {
    const r = await api("/api/payloads?detail=1");
    if (!r.payloads) return;
    $("#graphs-empty").style.display = r.payloads.length ? "none" : "";
    for (const p of r.payloads) renderPayload(p);
  } catch (e) { /* next poll */ }
}

window.addEventListener("resize", () => { for (const c of cards.values()) if (c.chart && c.graph) drawCbuf(c.chart.canvas, c.graph, c.chart.hidden); });

// -- plugin actions -----------------------------------------------------------------------------
function view(title, text) {
  $("#viewer-title").textContent = title;
  $("#viewer-body").textContent = text;
  $("#viewer").showModal();
}
async function showSource(name) {
  const r = await api("/api/plugins/" + encodeURIComponent(name) + "/source");
  view(name + " source", r.ok === false ? r.error : "-- " + r.lua_file + "\n" + (r.source || "") + "\n-- cfg\n" + r.cfg);
}
async function showErr(name) {
  const r = await api("/api/plugins/" + encodeURIComponent(name) + "/err");
  view(name + ".err", r.ok === false ? r.error : (r.err || "(no .err file)"));
}
async function stopPlugin(name) {
  const r = await api("/api/plugins/" + encodeURIComponent(name) + "/stop", {});
  setResult(r.ok ? "stopping " + name : r.error, r.ok);
  pollStatus();
}

// -- deploy panel -------------------------------------------------------------------------------
function readFileInto(input, target, nameInput) {
  input.addEventListener("change", () => {
    const f = input.files[0];
    if (!f) return;
    f.text().then(t => { target.value = t; if (nameInput && f.name.endsWith(".lua")) nameInput.value = f.name.slice(0, -4); });
  });
}
readFileInto($("#dep-lua-file"), $("#dep-source"), $("#dep-name"));
readFileInto($("#dep-cfg-file"), $("#dep-cfg"));

function setResult(text, ok) {
  const r = $("#dep-result");
  r.textContent = text;
  r.className = "result " + (ok ? "ok" : "bad");
}
function request() {
  return { name: $("#dep-name").value.trim(), source: $("#dep-source").value, cfg: $("#dep-cfg").value, n: Number($("#dep-n").value) };
}
function cfgMatcher(cfg) {
  const m = /^\s*message_matcher\s*=\s*(["'])((?:\\.|(?!\1).)*)\1/m.exec(cfg);
  return m ? m[2].replace(/\\(.)/g, "$1") : null;
}

$("#btn-match").addEventListener("click", async () => {
  const req = request();
  const matcher = cfgMatcher(req.cfg);
  if (matcher === null) { setResult("the cfg has no message_matcher = \"...\" line", false); return; }
  setResult("testing the matcher…", true);
  const r = await api("/api/match", { matcher, n: req.n });
  const out = $("#try-output");
  if (!r.ok) { setResult("matcher refused: " + r.error, false); out.replaceChildren(); return; }
  const hits = r.matched.filter(x => x).length;
  setResult(`matcher ${matcher}: ${hits} of ${r.matched.length} recent messages match`, true);
  const table = el("table", { id: "match-table" }, el("tr", {}, el("th", {}, "match"), el("th", {}, "Timestamp"),
    el("th", {}, "Type"), el("th", {}, "Logger"), el("th", {}, "Fields")));
  r.messages.forEach((m, i) => table.append(el("tr", { class: r.matched[i] ? "matched" : "unmatched" },
    el("td", { class: r.matched[i] ? "match-yes" : "match-no" }, r.matched[i] ? "✓" : "·"),
    el("td", {}, new Date(m.Timestamp / 1e6).toISOString()), el("td", {}, m.Type), el("td", {}, m.Logger),
    el("td", {}, JSON.stringify(m.Fields).slice(0, 160)))));
  out.replaceChildren(el("h3", {}, "Matcher test"), table);
});

$("#btn-try").addEventListener("click", async () => {
  const req = request();
  setResult("running the plugin over the last " + req.n + " messages…", true);
  const r = await api("/api/try", req);
  const out = $("#try-output");
  if (!r.ok) { setResult("try failed: " + r.error, false); out.replaceChildren(); return; }
  setResult(`${r.matched} of the last ${r.messages} messages matched and were processed, ${r.injected_total} messages injected` +
    (r.terminated ? "\nTERMINATED: " + r.terminated : ""), !r.terminated);
  const box = el("div", { id: "try-results" }, el("h3", {}, "Try: what the plugin injected"));
  const graphs = el("div", { id: "try-graphs" });
  const lastByName = new Map();
  r.injected.forEach(i => { if (i.graph) lastByName.set(i.payload_name, i); });
  for (const [name, i] of lastByName) {
    const card = el("div", { class: "card" }, el("h3", {}, name + " (cbuf, last of the run)"));
    const canvas = el("canvas", { class: "graph" });
    card.append(legendOf(i.graph.columns, {}), canvas); graphs.append(card);
    requestAnimationFrame(() => drawCbuf(canvas, i.graph));
  }
  box.append(graphs);
  const others = r.injected.filter(i => !i.graph);
  if (others.length) box.append(el("pre", {}, others.slice(-20).map(i => JSON.stringify(i.message)).join("\n")));
  if (r.log.length) box.append(el("h3", {}, "log"), el("pre", {}, r.log.join("\n")));
  if (r.statuses.length) box.append(el("h3", {}, "non-zero statuses"), el("pre", {}, r.statuses.slice(0, 50).map(s => s.join(" ")).join("\n")));
  out.replaceChildren(box);
});

$("#btn-deploy").addEventListener("click", async () => {
  const req = request();
  setResult("validating and deploying " + req.name + "…", true);
  const r = await api("/api/plugins", { name: req.name, source: req.source, cfg: req.cfg });
  setResult(r.ok ? (r.replaced ? "replaced " : "deployed ") + r.plugin + ": it appears in the table once running" : r.error, r.ok);
  pollStatus();
});

pollStatus(); pollPayloads();
setInterval(pollStatus, 1000);
setInterval(pollPayloads, 1500);
