// The explorer page: the test set's latent means on the version's plane; a click or drag asks the
// server to decode that point (no weights in the browser), with at most one request in flight.
"use strict";

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];  // tab10, as the figures
const $ = (id) => document.getElementById(id);
const state = {
  versions: [], primary: null, compare: null, point: null, picks: [], nextPick: 0,
  view: null, scatter: null, busy: false, pending: null, painted: 0,
};

function showError(message) {
  const banner = $("banner");
  banner.textContent = message;
  banner.hidden = !message;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new Error(`the explorer does not answer (${error.message}): is make explore still running?`);
  }
  const data = await response.json().catch(() => ({error: `${response.status} ${response.statusText}`}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function paint(canvas, b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < bytes.length; i++) {
    const grey = 255 - bytes[i];  // ink dark on white, as the figures draw digits
    image.data.set([grey, grey, grey, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

// ---- the plane: data coordinates <-> canvas pixels
function fitView(points) {
  const xs = points.map((p) => p[0]).sort((a, b) => a - b);
  const ys = points.map((p) => p[1]).sort((a, b) => a - b);
  const q = (s, f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  // 0.2% of points at each edge may fall outside: one outlier should not shrink the cloud
  let [x0, x1, y0, y1] = [q(xs, 0.002), q(xs, 0.998), q(ys, 0.002), q(ys, 0.998)];
  const padX = 0.08 * (x1 - x0 || 1), padY = 0.08 * (y1 - y0 || 1);
  return {x0: x0 - padX, x1: x1 + padX, y0: y0 - padY, y1: y1 + padY};
}

function toCanvas([x, y]) {
  const c = $("plane"), v = state.view;
  return [(x - v.x0) / (v.x1 - v.x0) * c.width, (v.y1 - y) / (v.y1 - v.y0) * c.height];
}

function toPlane(event) {
  const c = $("plane"), box = c.getBoundingClientRect(), v = state.view;
  const px = (event.clientX - box.left) / box.width, py = (event.clientY - box.top) / box.height;
  return [v.x0 + px * (v.x1 - v.x0), v.y1 - py * (v.y1 - v.y0)];
}

function drawScatter(shown) {
  const c = $("plane");
  state.view = fitView(shown.points);
  const layer = document.createElement("canvas");
  layer.width = c.width; layer.height = c.height;
  const context = layer.getContext("2d");
  context.globalAlpha = 0.55;
  shown.points.forEach((p, i) => {
    const [x, y] = toCanvas(p);
    context.fillStyle = COLOURS[shown.labels[i]];
    context.fillRect(x - 1, y - 1, 2.5, 2.5);
  });
  state.scatter = layer;
  drawOverlay();
}

function drawOverlay() {
  const c = $("plane"), context = c.getContext("2d");
  context.clearRect(0, 0, c.width, c.height);
  if (state.scatter) context.drawImage(state.scatter, 0, 0);
  state.picks.forEach((index, k) => {
    const [x, y] = toCanvas(state.primary.points[index]);
    context.strokeStyle = "#000"; context.lineWidth = 2;
    context.beginPath(); context.arc(x, y, 7, 0, 2 * Math.PI); context.stroke();
    context.fillStyle = "#000"; context.font = "bold 13px system-ui";
    context.fillText("AB"[k], x + 9, y - 9);
  });
  if (state.point) {
    const [x, y] = toCanvas(state.point);
    context.strokeStyle = "#000"; context.lineWidth = 1.5;
    context.beginPath();
    context.moveTo(x - 10, y); context.lineTo(x + 10, y);
    context.moveTo(x, y - 10); context.lineTo(x, y + 10);
    context.stroke();
  }
}

// ---- decoding the chosen point, one request at a time; the latest point wins
async function decodeAt(point) {
  state.point = point;
  drawOverlay();
  $("coords").textContent = `(${point[0].toFixed(3)}, ${point[1].toFixed(3)})`;
  if (state.busy) { state.pending = point; return; }
  state.busy = true;
  try {
    const asks = [api("/api/decode", {version: state.primary.version, points: [point]})];
    if (state.compare) asks.push(api("/api/decode", {version: state.compare.version, points: [point]}));
    const [mine, theirs] = await Promise.all(asks);
    paint($("decoded"), mine.images[0]);
    if (theirs) paint($("decoded-compare"), theirs.images[0]);
    state.painted += 1;
    const decoded = $("decoded");
    decoded.dataset.painted = String(state.painted);
    decoded.dataset.point = point.join(",");
    decoded.dataset.version = mine.version;
    if (theirs) $("decoded-compare").dataset.version = theirs.version;
    showError("");
  } catch (error) {
    showError(error.message);
  } finally {
    state.busy = false;
    if (state.pending) { const next = state.pending; state.pending = null; decodeAt(next); }
  }
}

function nearestTestImage(point) {
  let best = 0, bestDistance = Infinity;
  state.primary.points.forEach((p, i) => {
    const d = (p[0] - point[0]) ** 2 + (p[1] - point[1]) ** 2;
    if (d < bestDistance) { best = i; bestDistance = d; }
  });
  return best;
}

// ---- interpolation strips: A's test image, the decoded line, B's test image
async function interpolate() {
  const a = Number($("a").value), b = Number($("b").value), steps = Number($("steps").value);
  state.picks = [a, b].filter((i) => i >= 0 && i < state.primary.points.length);
  drawOverlay();
  const strips = $("strips");
  try {
    const shown = [state.primary, state.compare].filter(Boolean);
    const lines = await Promise.all(shown.map((v) =>
      api(`/api/interpolate?version=${v.version}&a=${a}&b=${b}&steps=${steps}`)));
    const originals = state.primary.test_images
      ? await Promise.all([a, b].map((i) => api(`/api/test-images/${i}`))) : null;
    strips.replaceChildren();
    lines.forEach((line, k) => {
      const row = document.createElement("div");
      row.className = "strip";
      row.dataset.version = line.version;
      const name = document.createElement("span");
      name.textContent = `v${shown[k].version}`;
      row.append(name);
      const cells = [...line.images];
      if (originals) { cells.unshift(originals[0].image); cells.push(originals[1].image); }
      cells.forEach((b64, i) => {
        const canvas = document.createElement("canvas");
        canvas.width = 28; canvas.height = 28;
        if (originals && (i === 0 || i === cells.length - 1)) {
          canvas.className = "original"; canvas.title = "the test image itself";
        }
        paint(canvas, b64);
        row.append(canvas);
      });
      strips.append(row);
    });
    const label = lines[0].labels;
    strips.dataset.labels = label.join(",");
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

// ---- versions, metrics, links
function describe(v) {
  const score = v.metrics["test/neg_elbo"];
  const aliases = v.aliases.map((a) => ` @${a}`).join("");
  return `v${v.version}${aliases}` + (score === undefined ? "" : ` (test −ELBO ${score.toFixed(2)})`);
}

function showMetrics() {
  const shown = [state.primary, state.compare].filter(Boolean);
  const names = [...new Set(shown.flatMap((v) => Object.keys(v.metrics)))].sort();
  const table = $("metrics");
  table.replaceChildren();
  const head = table.insertRow();
  head.innerHTML = "<th></th>" + shown.map((v) => `<th>v${v.version}</th>`).join("");
  names.forEach((name) => {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    shown.forEach((v) => {
      const value = v.metrics[name];
      row.insertCell().textContent = value === undefined ? "–" :
        Number.isInteger(value) ? String(value) : value.toFixed(3);
    });
  });
  if (!names.length) table.insertRow().insertCell().textContent = "not evaluated yet";
  const links = $("links");
  links.replaceChildren();
  shown.forEach((v) => {
    const link = document.createElement("a");
    link.href = v.run_url; link.target = "_blank"; link.rel = "noopener";
    link.textContent = `v${v.version}'s training run in MLflow`;
    links.append(link, " ");
  });
}

async function choosePrimary(ref) {
  try {
    state.primary = await api(`/api/versions/${encodeURIComponent(ref)}`);
  } catch (error) {
    showError(error.message);
    return;
  }
  $("version").value = state.primary.version;
  $("decoded-caption").textContent = describe(state.primary);
  $("axes").textContent = state.primary.principal
    ? `The plane of the top two principal directions of the ${state.primary.latent_dim}-d latent means.`
    : "The 2-d latent plane.";
  drawScatter(state.primary);
  showMetrics();
  showError("");
  document.body.dataset.version = state.primary.version;
  if (state.point) decodeAt(state.point);
  if (state.picks.length === 2) interpolate();
}

async function chooseCompare(ref) {
  if (!ref) {
    state.compare = null;
  } else {
    try {
      state.compare = await api(`/api/versions/${encodeURIComponent(ref)}`);
    } catch (error) {
      showError(error.message);
      $("compare").value = "";
      state.compare = null;
    }
  }
  $("compare-figure").hidden = !state.compare;
  if (state.compare) {
    $("compare-caption").textContent = describe(state.compare);
    showError("");
  }
  document.body.dataset.compare = state.compare ? state.compare.version : "";
  showMetrics();
  if (state.point) decodeAt(state.point);
  if (state.picks.length === 2) interpolate();
}

async function start() {
  let listing;
  try {
    listing = await api("/api/versions");
  } catch (error) {
    showError(error.message);
    return;
  }
  state.versions = listing.versions;
  $("store").textContent = `models:/${listing.model} in ${listing.store}`;
  for (const select of [$("version"), $("compare")]) {
    listing.versions.forEach((v) => select.add(new Option(describe(v), v.version)));
  }
  $("legend").replaceChildren(...COLOURS.map((colour, digit) => {
    const key = document.createElement("span");
    key.style.setProperty("--colour", colour);
    key.textContent = String(digit);
    return key;
  }));
  $("version").addEventListener("change", (e) => choosePrimary(e.target.value));
  $("compare").addEventListener("change", (e) => chooseCompare(e.target.value));
  $("pick").addEventListener("submit", (e) => { e.preventDefault(); interpolate(); });

  const plane = $("plane");
  let dragging = false;
  plane.addEventListener("pointerdown", (event) => {
    if (!state.primary) return;
    if (event.shiftKey) {
      const index = nearestTestImage(toPlane(event));
      $("ab"[state.nextPick]).value = index;
      state.nextPick = 1 - state.nextPick;
      interpolate();
      return;
    }
    dragging = true;
    plane.setPointerCapture(event.pointerId);
    decodeAt(toPlane(event));
  });
  plane.addEventListener("pointermove", (event) => { if (dragging) decodeAt(toPlane(event)); });
  plane.addEventListener("pointerup", () => { dragging = false; });

  await choosePrimary(listing.default);
  document.body.dataset.ready = "1";
}

start();
