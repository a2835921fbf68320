// hsp dashboard: a small canvas line chart for circular buffers (no dependencies).
// drawCbuf(canvas, graph) draws every column of a parsed cbuf ({start, rows, seconds_per_row,
// columns, annotations, times, values}) as a time series, with annotations as markers, and
// records what it drew in the canvas's data-* attributes (so tests can check the data, not pixels).
"use strict";
const HSP_COLORS = ["#2463c7", "#1f8f4e", "#d68910", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d", "#d35400"];

function hspNiceStep(span, ticks) {
  const raw = span / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

function hspFmtNum(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function hspFmtTime(t, span) {
  const d = new Date(t * 1000);
  const iso = d.toISOString();
  return span > 2 * 86400 ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(11, span > 600 ? 16 : 19);
}

function drawCbuf(canvas, g, hidden) {
  hidden = hidden || {};
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 480, h = canvas.clientHeight || 220;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const L = 52, R = 10, T = 10, B = 24;
  const times = g.times, n = times.length;
  let lo = Infinity, hi = -Infinity, points = 0, sum = 0, lastT = null;
  g.values.forEach((col, c) => {
    if (hidden[c]) return;
    col.forEach((v, i) => {
      if (v === null) return;
      points++; sum += v; if (v < lo) lo = v; if (v > hi) hi = v;
      if (lastT === null || times[i] > lastT) lastT = times[i];
    });
  });
  if (points === 0) { lo = 0; hi = 1; }
  if (lo > 0) lo = 0;
  if (hi === lo) hi = lo + 1;
  const t0 = times[0], t1 = times[n - 1] + g.seconds_per_row;
  const x = t => L + (t - t0) / (t1 - t0) * (w - L - R);
  const y = v => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);
  // axes and grid
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#6b6b70"; ctx.strokeStyle = "#e4e4e0"; ctx.lineWidth = 1;
  const ys = hspNiceStep(hi - lo, 4);
  for (let v = Math.ceil(lo / ys) * ys; v <= hi + 1e-9; v += ys) {
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(w - R, y(v)); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle"; ctx.fillText(hspFmtNum(v), L - 4, y(v));
  }
  const xs = hspNiceStep(t1 - t0, Math.max(2, Math.floor((w - L - R) / 90)));
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let t = Math.ceil(t0 / xs) * xs; t <= t1; t += xs) {
    ctx.beginPath(); ctx.moveTo(x(t), T); ctx.lineTo(x(t), h - B); ctx.stroke();
    ctx.fillText(hspFmtTime(t, t1 - t0), x(t), h - B + 4);
  }
  // series: a row's value is drawn at the middle of its interval; gaps break the line
  g.values.forEach((col, c) => {
    if (hidden[c]) return;
    ctx.strokeStyle = HSP_COLORS[c % HSP_COLORS.length]; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    col.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const px = x(times[i] + g.seconds_per_row / 2), py = y(v);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    });
    ctx.stroke();
    // a value without a neighbour would draw nothing: mark it with a dot
    ctx.fillStyle = ctx.strokeStyle;
    col.forEach((v, i) => {
      if (v === null || (i > 0 && col[i - 1] !== null) || (i + 1 < col.length && col[i + 1] !== null)) return;
      ctx.beginPath(); ctx.arc(x(times[i] + g.seconds_per_row / 2), y(v), 2.5, 0, 2 * Math.PI); ctx.fill();
    });
  });
  // annotations: a marker on the annotated column's value (or the axis), text on hover
  const marks = [];
  (g.annotations || []).forEach(a => {
    const c = a.column - 1;
    if (hidden[c]) return;
    const i = Math.round((a.time - t0) / g.seconds_per_row);
    const v = g.values[c] && i >= 0 && i < n ? g.values[c][i] : null;
    const px = x(a.time + g.seconds_per_row / 2), py = v === null ? h - B : y(v);
    ctx.fillStyle = a.kind === "a" ? "#c0392b" : "#2463c7";
    ctx.beginPath(); ctx.moveTo(px, py - 9); ctx.lineTo(px - 5, py - 17); ctx.lineTo(px + 5, py - 17); ctx.closePath(); ctx.fill();
    marks.push({ x: px, y: py - 13, text: hspFmtTime(a.time, 0) + " " + (g.columns[c] ? g.columns[c].name : "") + ": " + a.text });
  });
  canvas.title = marks.map(m => m.text).join("\n");
  canvas.dataset.points = String(points);
  canvas.dataset.sum = String(sum);
  canvas.dataset.lastTime = lastT === null ? "" : String(lastT);
  canvas.dataset.start = String(t0);
  canvas.dataset.annotations = String(marks.length);
  canvas.dataset.draws = String(Number(canvas.dataset.draws || 0) + 1);
  return { points, sum, lastTime: lastT };
}
