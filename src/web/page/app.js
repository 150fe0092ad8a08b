// The page: fetches the shipped MNIST from this origin, trains with the wasm module's
// Session, and draws losses and the fixed-z sample grid as it goes.
//
// The URL can preset and start a run (the end-to-end test uses it):
//   ?preset=mnist-mlp&batch=64&lr=2e-4&seed=1&limit=6400&steps=300&grid=100&autostart=1
//   (&conditioned=1: the model reads each image's digit; the grid shows a column per digit)
// and `window.vaeganRun` holds the run's state for a driver to read: {state, step,
// history, adapter, samplesPerSecond, error}; state is "loading", "ready", "running",
// "paused", "done" or "error".

import init, * as vaegan from "./pkg/vaegan.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const run = (window.vaeganRun = { state: "loading", step: 0, history: [], adapter: null, samplesPerSecond: null, error: null });

// A driver waits for a state without polling: `await vaeganRun.until(["done"])` resolves
// with {state, step, error} once the page reaches one of the states (or "error").
const waiters = [];
function setState(state) {
  run.state = state;
  waiters.splice(0).filter((w) => !w(state)).forEach((w) => waiters.push(w));
}
run.until = (states) =>
  new Promise((resolve) => {
    const reached = (state) => {
      if (!states.includes(state) && state !== "error") return false;
      resolve({ state, step: run.step, error: run.error });
      return true;
    };
    if (!reached(run.state)) waiters.push(reached);
  });

let session = null;
let running = false;
let stopAt = Number(params.get("steps") || 0); // 0: train until paused
const gridEvery = Number(params.get("grid") || 200);
let lastGrid = -1;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function fail(e) {
  running = false;
  run.error = String(e && e.message ? e.message : e);
  setState("error");
  status(run.error, true);
  console.error(e);
  buttons();
}

function buttons() {
  $("start").disabled = running || run.state === "loading";
  $("start").textContent = session && !running ? "Resume" : "Start";
  $("pause").disabled = !running;
  $("download").disabled = !session || running;
  $("loadButton").disabled = running || run.state === "loading";
}

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} (is the page served by \`vaegan web\` from the repository?)`);
  return new Uint8Array(await r.arrayBuffer());
}

let mnist = null;
async function data() {
  if (!mnist) {
    status("Fetching MNIST from datasets/mnist…");
    mnist = {
      images: await fetchBytes("datasets/mnist/train-images.idx3-ubyte.gz"),
      labels: await fetchBytes("datasets/mnist/train-labels.idx1-ubyte.gz"),
    };
  }
  return mnist;
}

async function newSession(checkpoint) {
  const d = await data();
  status(checkpoint ? "Loading the checkpoint…" : "Building the model…");
  // Empty: the preset's rates (0); anything else must be a number, or Rust says why not.
  const lr = $("lr").value.trim() === "" ? 0 : Number($("lr").value);
  if (session) session.free();
  session = null;
  session = await vaegan.Session.create(
    $("preset").value, Number($("batch").value), lr, Number($("seed").value), Number($("limit").value),
    d.images, d.labels, $("conditioned").checked, checkpoint ?? undefined);
  run.history = [];
  series.clear();
  lastGrid = -1;
  $("batch").value = session.batch();
  status(`${session.steps_per_epoch()} steps per epoch at batch ${session.batch()}.`);
}

// Loss curves: one small panel per loss, all sharing the step axis.
const series = new Map();
function drawCurves() {
  const c = $("curves"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const names = [...series.keys()];
  if (!names.length) return;
  const panelH = Math.floor(c.height / names.length);
  const lastStep = Math.max(...names.map((n) => series.get(n).at(-1)[0]));
  const firstStep = Math.min(...names.map((n) => series.get(n)[0][0]));
  names.forEach((name, i) => {
    const pts = series.get(name);
    const top = i * panelH + 16, h = panelH - 26, left = 48, w = c.width - 56;
    let lo = Infinity, hi = -Infinity;
    for (const [, v] of pts) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (hi - lo < 1e-9) { hi += 1e-3; lo -= 1e-3; }
    g.fillStyle = "#222"; g.font = "12px system-ui";
    g.fillText(`${name}  ${pts.at(-1)[1].toPrecision(4)}`, left, top - 4);
    g.fillStyle = "#888"; g.font = "10px system-ui";
    g.fillText(hi.toPrecision(3), 2, top + 8);
    g.fillText(lo.toPrecision(3), 2, top + h);
    g.strokeStyle = "#ddd"; g.strokeRect(left, top, w, h);
    g.strokeStyle = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"][i % 6];
    g.beginPath();
    pts.forEach(([s, v], k) => {
      const x = left + (w * (s - firstStep)) / Math.max(1, lastStep - firstStep);
      const y = top + h - (h * (v - lo)) / (hi - lo);
      k ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  });
}

async function drawGrid() {
  const pic = await session.samples();
  const c = $("grid");
  c.width = pic.width; c.height = pic.height;
  c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(pic.rgba), pic.width, pic.height), 0, 0);
  pic.free();
  lastGrid = session.step();
  $("gridStep").textContent = `(step ${lastGrid})`;
}

function takeLosses() {
  for (const [step, values] of JSON.parse(session.losses())) {
    run.history.push([step, values]);
    for (const [name, v] of Object.entries(values)) {
      if (!series.has(name)) series.set(name, []);
      series.get(name).push([step, v]);
    }
  }
}

// Steps in batches sized to about 100 ms of work, then waits for the GPU, so that the
// tab keeps drawing and readbacks complete.
async function loop() {
  let perBatch = 1;
  let rateSteps = 0, rateStart = performance.now();
  while (running) {
    let n = perBatch;
    if (stopAt) n = Math.min(n, stopAt - session.step());
    if (n <= 0) break;
    const t0 = performance.now();
    session.steps(n);
    await session.settle();
    const dt = performance.now() - t0;
    perBatch = Math.max(1, Math.min(64, Math.round(perBatch * Math.min(2, Math.max(0.5, 100 / Math.max(dt, 1))))));
    takeLosses();
    rateSteps += n;
    const elapsed = (performance.now() - rateStart) / 1000;
    if (elapsed > 1) {
      run.samplesPerSecond = (rateSteps * session.batch()) / elapsed;
      $("rate").textContent = run.samplesPerSecond.toFixed(0);
      rateSteps = 0; rateStart = performance.now();
    }
    run.step = session.step();
    $("step").textContent = run.step;
    $("epoch").textContent = `${session.epoch() + 1} (${session.steps_per_epoch()} steps each)`;
    drawCurves();
    if (run.step - lastGrid >= gridEvery) await drawGrid();
  }
  if (stopAt && session.step() >= stopAt) {
    // Every readback that is still in flight, then the final grid.
    await session.settle();
    takeLosses();
    drawCurves();
    await drawGrid();
    running = false;
    setState("done");
    status(`Done: ${session.step()} steps.`);
  }
  buttons();
}

async function start() {
  try {
    if (!session) await newSession(null);
    running = true;
    setState("running");
    status("Training…");
    buttons();
    await loop();
  } catch (e) {
    fail(e);
  }
}

$("start").onclick = start;
$("pause").onclick = () => {
  running = false;
  setState("paused");
  status(`Paused at step ${session.step()}.`);
};
$("download").onclick = async () => {
  try {
    const bytes = await session.checkpoint();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    a.download = `vaegan-${$("preset").value}-step${session.step()}.safetensors`;
    a.click();
    URL.revokeObjectURL(a.href);
  } catch (e) {
    fail(e);
  }
};
$("loadButton").onclick = () => $("load").click();
$("load").onchange = async () => {
  const file = $("load").files[0];
  if (!file) return;
  try {
    await newSession(new Uint8Array(await file.arrayBuffer()));
    run.step = session.step();
    $("step").textContent = run.step;
    setState("ready");
    status(`Loaded ${file.name} at step ${session.step()}; Start continues it.`);
    await drawGrid();
  } catch (e) {
    fail(e);
  }
  buttons();
};
// Settings changed before a run starts a new one.
for (const id of ["preset", "batch", "lr", "seed", "limit"]) {
  $(id).onchange = () => {
    if (!running && session) { session.free(); session = null; buttons(); }
  };
}

async function main() {
  try {
    await init();
    for (const p of vaegan.presets()) $("preset").add(new Option(p, p));
    for (const id of ["preset", "batch", "lr", "seed", "limit"]) if (params.has(id)) $(id).value = params.get(id);
    if (params.get("conditioned") === "1") $("conditioned").checked = true;
    // The browser's own words for its adapter (wgpu's name field is empty on the web).
    const info = (await navigator.gpu?.requestAdapter())?.info;
    const named = info ? [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(" ") : "";
    run.adapter = `${named || "WebGPU adapter"} — ${await vaegan.adapter()}`;
    $("adapter").textContent = run.adapter;
    setState("ready");
    status("Ready: Start trains on the shipped MNIST.");
    buttons();
    if (params.get("autostart") === "1") await start();
  } catch (e) {
    fail(e);
  }
}

main();
