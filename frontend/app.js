// doodle2anime: the drawing page.
//
// The drawing is kept as stroke data, never as pixels: a list of strokes, each a list of
// points (x, y, time). The canvas is repainted from that list whenever it changes or resizes.
// Undo and redo are two stacks of earlier and later stroke lists. After every change the
// strokes go to the API and the anime faces that come back are shown beside the drawing.

const API_TRANSLATE = "api/v1/translate";
const API_MODELS = "api/v1/models";

// Stroke coordinates are stored in "paper units": the paper is LOGICAL units wide whatever its
// size on screen, so a drawing survives a resize or a rotated tablet unchanged.
const LOGICAL = 1000;
const BRUSH = { small: 9, medium: 18, large: 32 }; // line width in paper units (display only)
const MIN_STEP = 1.5; // paper units between two recorded points
// Faces come at the model's own size (64 px) and the browser scales them up on screen: a small
// PNG is quick to make and to send. "Save picture" scales the shown face up to SAVE_SIZE.
const DEFAULT_PREVIEW_SIZE = 256; // until the models list says the model's size
const SAVE_SIZE = 512;
const PREVIEW_DELAY_MS = 120; // a short pause, so a burst of undos sends one request
const REVEAL_AFTER_MS = 700; // the page scrolls to the face only once the kid pauses drawing
const SHARPEN_AFTER_MS = 400; // once the kid pauses, the shown face is fetched again, upscaled
const REQUEST_TIMEOUT_MS = 30000;
const HISTORY_LIMIT = 300;
// The API's limits on one drawing (see the REST API docs).
const MAX_STROKES = 256;
const MAX_POINTS_PER_STROKE = 1024;
const MAX_POINTS_TOTAL = 4096;

const INK = "#2b2d42";

const el = {
  canvas: document.getElementById("canvas"),
  paper: document.getElementById("paper"),
  hint: document.getElementById("paper-hint"),
  pen: document.getElementById("pen"),
  eraser: document.getElementById("eraser"),
  sizes: Array.from(document.querySelectorAll("button.size")),
  crayons: document.getElementById("crayons"),
  crayonButtons: Array.from(document.querySelectorAll("button.crayon")),
  undo: document.getElementById("undo"),
  redo: document.getElementById("redo"),
  clear: document.getElementById("clear"),
  frame: document.getElementById("frame"),
  result: document.getElementById("result"),
  placeholder: document.getElementById("placeholder"),
  busy: document.getElementById("busy"),
  variations: document.getElementById("variations"),
  variationsBlock: document.getElementById("variations-block"),
  download: document.getElementById("download"),
  message: document.getElementById("message"),
  status: document.getElementById("status"),
  retry: document.getElementById("retry"),
  modelInfo: document.getElementById("model-info"),
  controls: document.getElementById("controls"),
  newColours: document.getElementById("new-colours"),
  follow: document.getElementById("follow"),
  modes: document.getElementById("modes"),
  modeDoodle: document.getElementById("mode-doodle"),
  modeLine: document.getElementById("mode-line"),
};
const ctx = el.canvas.getContext("2d");

// ---------------------------------------------------------------------------------------------
// The drawing and its history

/** A finished stroke: {xs, ys, ts, width, colour, box}; colour is a crayon's "#rrggbb", or null
 *  for the black pen. Finished strokes are never changed. */
function makeStroke(xs, ys, ts, width, colour = null) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < xs.length; i++) {
    if (xs[i] < minX) minX = xs[i];
    if (xs[i] > maxX) maxX = xs[i];
    if (ys[i] < minY) minY = ys[i];
    if (ys[i] > maxY) maxY = ys[i];
  }
  return Object.freeze({ xs, ys, ts, width, colour, box: { minX, minY, maxX, maxY } });
}

const doc = {
  strokes: [], // the drawing now (an array that is replaced, never changed in place)
  past: [], // earlier drawings, for undo
  future: [], // drawings undone, for redo
};

function commit(next) {
  doc.past.push(doc.strokes);
  if (doc.past.length > HISTORY_LIMIT) doc.past.shift();
  doc.future = [];
  doc.strokes = next;
  drawingChanged();
}

function undo() {
  if (active || doc.past.length === 0) return;
  doc.future.push(doc.strokes);
  doc.strokes = doc.past.pop();
  drawingChanged();
  say(doc.strokes.length ? "Undone." : "Undone. The page is empty.");
}

function redo() {
  if (active || doc.future.length === 0) return;
  doc.past.push(doc.strokes);
  doc.strokes = doc.future.pop();
  drawingChanged();
  say("Redone.");
}

function clearDrawing() {
  if (active || doc.strokes.length === 0) return;
  commit([]);
  say("All clear! Changed your mind? Press Undo to get it back.");
}

function drawingChanged() {
  el.canvas.dataset.strokes = String(doc.strokes.length);
  el.undo.disabled = doc.past.length === 0;
  el.redo.disabled = doc.future.length === 0;
  el.clear.disabled = doc.strokes.length === 0;
  el.hint.hidden = doc.strokes.length > 0;
  requestRedraw();
  requestPreview();
}

// ---------------------------------------------------------------------------------------------
// Tools

const tools = { tool: "pen", size: "medium", colour: null }; // colour: the crayon in hand (null: black pen)

function setTool(tool) {
  tools.tool = tool;
  el.pen.setAttribute("aria-pressed", String(tool === "pen"));
  el.eraser.setAttribute("aria-pressed", String(tool === "eraser"));
  el.canvas.dataset.tool = tool;
  hover = null;
  requestRedraw();
}

/** Pick up a crayon ("#rrggbb") or the black pen (null): new lines are drawn with it. */
function setColour(colour) {
  tools.colour = colour || null;
  for (const b of el.crayonButtons) b.setAttribute("aria-pressed", String((b.dataset.colour || null) === tools.colour));
  setTool("pen");
}

/** The crayon new lines get: only while the artist can read crayons. */
function crayonInHand() {
  return preview.controls.includes("colors") ? tools.colour : null;
}

function setSize(size) {
  if (!(size in BRUSH)) return;
  tools.size = size;
  for (const b of el.sizes) b.setAttribute("aria-pressed", String(b.dataset.size === size));
}

function eraserRadius() {
  return Math.max(22, BRUSH[tools.size] * 1.4);
}

// ---------------------------------------------------------------------------------------------
// The canvas: size, devicePixelRatio and painting

const view = { scale: 1, dpr: 1 }; // backing-store pixels per paper unit
let redrawQueued = false;

function fitCanvas() {
  const rect = el.canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(rect.width * dpr));
  const h = Math.max(1, Math.round(rect.height * dpr));
  if (el.canvas.width !== w || el.canvas.height !== h) {
    el.canvas.width = w; // resets the context: everything is repainted below
    el.canvas.height = h;
  }
  view.dpr = dpr;
  view.scale = w / LOGICAL;
  redraw();
}

function watchPixelRatio() {
  // Zooming or moving the window to another screen changes devicePixelRatio.
  const query = window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  query.addEventListener("change", () => { fitCanvas(); watchPixelRatio(); }, { once: true });
}

function requestRedraw() {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => { redrawQueued = false; redraw(); });
}

function redraw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, el.canvas.width, el.canvas.height);
  ctx.setTransform(view.scale, 0, 0, view.scale, 0, 0);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  const doomed = active && active.tool === "eraser" ? active.hits : null;
  for (const s of doc.strokes) {
    ctx.globalAlpha = doomed && doomed.has(s) ? 0.18 : 1;
    paintStroke(s.xs, s.ys, s.width, s.colour);
  }
  ctx.globalAlpha = 1;
  if (active && active.tool === "pen") paintStroke(active.xs, active.ys, active.width, active.colour);
  const ring = active && active.tool === "eraser" ? active.last : hover;
  if (ring && (active ? active.tool === "eraser" : tools.tool === "eraser")) paintEraserRing(ring.x, ring.y);
}

function paintStroke(xs, ys, width, colour = null) {
  const n = xs.length;
  if (n === 0) return;
  ctx.strokeStyle = colour || INK;
  ctx.fillStyle = colour || INK;
  let moves = false;
  for (let i = 1; i < n && !moves; i++) moves = xs[i] !== xs[0] || ys[i] !== ys[0];
  if (!moves) { // a tap: a round dot
    ctx.beginPath();
    ctx.arc(xs[0], ys[0], width / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.moveTo(xs[0], ys[0]);
  // Smooth: curve through the midpoints, with the recorded points as control points.
  for (let i = 1; i < n - 1; i++) {
    ctx.quadraticCurveTo(xs[i], ys[i], (xs[i] + xs[i + 1]) / 2, (ys[i] + ys[i + 1]) / 2);
  }
  ctx.lineTo(xs[n - 1], ys[n - 1]);
  ctx.stroke();
}

function paintEraserRing(x, y) {
  const r = eraserRadius();
  ctx.save();
  ctx.lineWidth = 3 / view.scale * view.dpr;
  ctx.strokeStyle = "#ff5ca8";
  ctx.fillStyle = "rgba(255, 92, 168, 0.12)";
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fill();
  ctx.stroke();
  ctx.restore();
}

// ---------------------------------------------------------------------------------------------
// Pointer input: mouse, touch and pen, one pointer at a time

let active = null; // the stroke or eraser drag in progress
let hover = null; // where a hovering mouse or pen is, to show the eraser ring

function toPaper(e, rect) {
  const k = LOGICAL / rect.width;
  return { x: (e.clientX - rect.left) * k, y: (e.clientY - rect.top) * k, t: eventTime(e) };
}

function eventTime(e) {
  return e.timeStamp > 0 ? e.timeStamp : performance.now();
}

function onPointerDown(e) {
  clearTimeout(preview.revealTimer); // the kid draws on: the paper stays where it is
  if (active) return; // a second finger (or a palm) while drawing is ignored
  if (e.pointerType === "mouse" && e.button !== 0) return;
  e.preventDefault();
  try { el.canvas.setPointerCapture(e.pointerId); } catch { /* not a live pointer: fine */ }
  const rect = el.canvas.getBoundingClientRect();
  if (rect.width === 0) return;
  const p = toPaper(e, rect);
  const tool = e.pointerType === "pen" && (e.buttons & 32) ? "eraser" : tools.tool; // pen's eraser end
  if (tool === "pen") {
    if (doc.strokes.length >= MAX_STROKES) {
      say("Wow, the page is full of lines! Erase some or start a new page.", "error");
      return;
    }
    active = { id: e.pointerId, tool, rect, xs: [p.x], ys: [p.y], ts: [p.t], width: BRUSH[tools.size], colour: crayonInHand() };
  } else {
    active = { id: e.pointerId, tool, rect, last: p, hits: new Set() };
    eraseAlong(p, p);
  }
  el.canvas.classList.add("drawing");
  requestRedraw();
}

function onPointerMove(e) {
  if (!active || e.pointerId !== active.id) {
    if (!active && e.pointerType !== "touch") {
      const rect = el.canvas.getBoundingClientRect();
      hover = rect.width ? toPaper(e, rect) : null;
      if (tools.tool === "eraser") requestRedraw();
    }
    return;
  }
  e.preventDefault();
  const batch = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
  for (const ev of batch.length ? batch : [e]) addPoint(toPaper(ev, active.rect));
  requestRedraw();
}

function addPoint(p) {
  if (active.tool === "eraser") {
    eraseAlong(active.last, p);
    active.last = p;
    return;
  }
  const n = active.xs.length;
  if (Math.hypot(p.x - active.xs[n - 1], p.y - active.ys[n - 1]) < MIN_STEP) return;
  if (n >= MAX_POINTS_PER_STROKE) { // a very long scribble: go on in a new stroke
    const { id, rect, width, colour } = active;
    finishStroke();
    if (!active && doc.strokes.length < MAX_STROKES) {
      const lastX = doc.strokes[doc.strokes.length - 1].xs.at(-1);
      const lastY = doc.strokes[doc.strokes.length - 1].ys.at(-1);
      active = { id, tool: "pen", rect, xs: [lastX], ys: [lastY], ts: [p.t], width, colour };
    } else {
      return;
    }
  }
  active.xs.push(p.x);
  active.ys.push(p.y);
  active.ts.push(p.t);
}

function onPointerUp(e) {
  if (!active || e.pointerId !== active.id) return;
  e.preventDefault();
  addPoint(toPaper(e, active.rect));
  if (active.tool === "pen") finishStroke(); else finishErase();
}

function onPointerCancel(e) {
  if (!active || e.pointerId !== active.id) return;
  // The browser took the pointer away. Keep what was drawn if it is a real line.
  if (active.tool === "pen" && active.xs.length > 1) finishStroke();
  else if (active.tool === "eraser") finishErase();
  else endActive();
}

function endActive() {
  active = null;
  el.canvas.classList.remove("drawing");
  requestRedraw();
}

function finishStroke() {
  const s = makeStroke(active.xs, active.ys, active.ts, active.width, active.colour);
  endActive();
  commit([...doc.strokes, s]);
  preview.reveal = true;
}

function finishErase() {
  const hits = active.hits;
  endActive();
  if (hits.size === 0) return;
  commit(doc.strokes.filter((s) => !hits.has(s)));
  preview.reveal = true;
  say(hits.size === 1 ? "Erased a line." : `Erased ${hits.size} lines.`);
}

/** Marks every stroke that the eraser, moving from a to b, touches. */
function eraseAlong(a, b) {
  const r = eraserRadius();
  for (const s of doc.strokes) {
    if (active.hits.has(s)) continue;
    const reach = r + s.width / 2;
    const bx = s.box;
    if (Math.max(a.x, b.x) < bx.minX - reach || Math.min(a.x, b.x) > bx.maxX + reach
        || Math.max(a.y, b.y) < bx.minY - reach || Math.min(a.y, b.y) > bx.maxY + reach) continue;
    if (strokeNear(s, a, b, reach)) active.hits.add(s);
  }
}

function strokeNear(s, a, b, reach) {
  const n = s.xs.length;
  if (n === 1) return segmentDistance(a.x, a.y, b.x, b.y, s.xs[0], s.ys[0], s.xs[0], s.ys[0]) <= reach;
  for (let i = 1; i < n; i++) {
    if (segmentDistance(a.x, a.y, b.x, b.y, s.xs[i - 1], s.ys[i - 1], s.xs[i], s.ys[i]) <= reach) return true;
  }
  return false;
}

function pointSegmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function segmentsCross(ax, ay, bx, by, cx, cy, dx, dy) {
  const d1 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx);
  const d2 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx);
  const d3 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
  const d4 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax);
  return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
}

function segmentDistance(ax, ay, bx, by, cx, cy, dx, dy) {
  if (segmentsCross(ax, ay, bx, by, cx, cy, dx, dy)) return 0;
  return Math.min(
    pointSegmentDistance(ax, ay, cx, cy, dx, dy),
    pointSegmentDistance(bx, by, cx, cy, dx, dy),
    pointSegmentDistance(cx, cy, ax, ay, bx, by),
    pointSegmentDistance(dx, dy, ax, ay, bx, by),
  );
}

// ---------------------------------------------------------------------------------------------
// The anime face: asking the API

const preview = {
  timer: 0,
  seq: 0, // the number of the latest request; only its answer is shown
  controller: null,
  images: [], // [{member, label, b64, src}] of the drawing last translated
  selected: 0, // the member shown big
  members: null, // [{index, label}] of the serving model, when known
  controls: [], // what the serving model lets a kid change: "seed" (colours), "follow"
  size: DEFAULT_PREVIEW_SIZE, // the side of the faces asked for: the serving model's own
  upscaler: null, // the server's upscaler, when the serving model's faces are enlarged by one
  sharpTimer: null, // the pending request for the shown face at the frame's size
  seed: null, // the colours asked for with "New colours" (null: the drawing's own)
  mode: "doodle", // "doodle": the default model; "line": the line-art model, which colours thin lines
  doodleModel: null, // the models list's entries of the two
  lineModel: null,
  reveal: false, // the request answers a stroke just drawn: bring its answer into view
  revealTimer: 0,
};

// The slider runs from "like my drawing" (left, 0) to "prettier" (right, 100); the API's
// ``follow`` is 1 at the drawing's end.
function followValue() {
  return 1 - Number(el.follow.value) / 100;
}

function describeFollow() {
  const v = Number(el.follow.value);
  const words = v <= 20 ? "just like my drawing" : v <= 45 ? "mostly like my drawing" : v <= 70 ? "a bit of both" : "extra pretty";
  el.follow.setAttribute("aria-valuetext", words);
}

/** The drawing in Quick, Draw! raw format, t in ms since the drawing's first point. */
function toRaw(strokes) {
  const total = strokes.reduce((n, s) => n + s.xs.length, 0);
  const longest = strokes.reduce((n, s) => Math.max(n, s.xs.length), 0);
  // 1 unless the drawing is enormous; then every other point or fewer (a few paper units apart,
  // still finer than the 1-unit-in-256 resampling the server does). A stroke also keeps its last
  // point: one more per stroke.
  const keepEvery = Math.max(Math.ceil(total / (MAX_POINTS_TOTAL - strokes.length)), Math.ceil((longest - 1) / (MAX_POINTS_PER_STROKE - 1)), 1);
  const t0 = strokes.length ? strokes[0].ts[0] : 0;
  const round = (v) => Math.round(v * 10) / 10;
  return strokes.map((s) => {
    const xs = [], ys = [], ts = [];
    const n = s.xs.length;
    for (let i = 0; i < n; i++) {
      if (i % keepEvery !== 0 && i !== n - 1) continue;
      xs.push(round(s.xs[i]));
      ys.push(round(s.ys[i]));
      ts.push(Math.max(0, Math.round(s.ts[i] - t0)));
    }
    return [xs, ys, ts];
  });
}

function requestPreview() {
  clearTimeout(preview.timer);
  preview.reveal = false; // finishStroke and finishErase set it again
  clearTimeout(preview.revealTimer);
  hideRetry();
  // An answer still on its way is for an older drawing: drop it, or it would be shown (and its
  // arrival would hide the busy sign) while this drawing's request still waits to be sent.
  cancelRequest();
  if (doc.strokes.length === 0) {
    showEmpty();
    return;
  }
  setBusy(true);
  preview.timer = setTimeout(sendPreview, PREVIEW_DELAY_MS);
}

function cancelRequest() {
  clearTimeout(preview.sharpTimer);
  preview.seq += 1; // any answer still on its way is now stale
  if (preview.controller) preview.controller.abort();
  preview.controller = null;
  setBusy(false);
}

async function sendPreview() {
  if (preview.controller) preview.controller.abort();
  const seq = ++preview.seq;
  const controller = new AbortController();
  preview.controller = controller;
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; controller.abort(); }, REQUEST_TIMEOUT_MS);
  setBusy(true);
  try {
    const response = await fetch(API_TRANSLATE, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(translateBody()),
      signal: controller.signal,
    });
    if (!response.ok) {
      const detail = await readDetail(response);
      if (seq === preview.seq) showError(response.status, detail);
      return;
    }
    const data = await response.json();
    if (seq === preview.seq) showResult(data);
  } catch (err) {
    if (seq !== preview.seq) return; // replaced by a newer request: not an error
    showError(timedOut ? "timeout" : "network", String(err && err.message || err));
  } finally {
    clearTimeout(timer);
    if (seq === preview.seq) {
      preview.controller = null;
      setBusy(false);
    }
  }
}

function translateBody() {
  const body = { strokes: toRaw(doc.strokes), member: "all", size: preview.size, response: "json" };
  if (preview.mode === "line" && preview.lineModel) body.model = preview.lineModel.name;
  if (preview.controls.includes("follow")) body.follow = followValue();
  if (preview.controls.includes("seed") && preview.seed !== null) body.seed = preview.seed;
  if (preview.controls.includes("colors") && doc.strokes.some((s) => s.colour)) {
    body.colors = doc.strokes.map((s) => s.colour || null); // one per stroke, as toRaw keeps them
  }
  return body;
}

function newColours() {
  preview.seed = Math.floor(Math.random() * 1000000);
  if (doc.strokes.length) requestPreview();
  say("New colours! Press again for more.");
}

async function readDetail(response) {
  try {
    const body = await response.json();
    const d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => (x && x.msg) || "").join("; ");
  } catch { /* not JSON */ }
  return "";
}

function friendlyError(kind, detail) {
  const d = (detail || "").toLowerCase();
  if (kind === 503) return "The artist is taking a nap right now. Please try again later!";
  if (kind === 422 || kind === 413) {
    if (d.includes("empty") || d.includes("no points")) return "Draw something first, then watch the magic!";
    if (d.includes("too many") || kind === 413) return "Wow, that's a lot of lines! Erase a few and try again.";
    return "Hmm, the artist can't read that drawing. Try adding a few more lines!";
  }
  if (kind === "timeout") return "The artist is taking too long. Tap “Try again”.";
  if (kind === "network") return "Can't reach the artist. Check the internet, then tap “Try again”.";
  return "Oops, something went wrong. Tap “Try again”.";
}

function showError(kind, detail) {
  say(friendlyError(kind, detail), "error");
  el.retry.hidden = false;
  if (preview.reveal) reveal(el.message);
}

/** After a stroke, once the kid pauses, scrolls the page just enough to show ``target`` whole
 *  (on a phone the face is under the paper). A new touch on the paper cancels it: the paper must
 *  not move under a finger. Undo, the sizes and the slider never scroll: their buttons must stay
 *  where they were. */
function reveal(target) {
  preview.reveal = false;
  clearTimeout(preview.revealTimer);
  preview.revealTimer = setTimeout(() => {
    if (active) return;
    const r = target.getBoundingClientRect();
    if (r.top >= 0 && r.bottom <= window.innerHeight) return;
    target.scrollIntoView({ block: "nearest" });
  }, REVEAL_AFTER_MS);
}

function hideRetry() {
  el.retry.hidden = true;
  if (el.message.dataset.kind === "error") say("");
}

function setBusy(busy) {
  el.busy.hidden = !busy;
  el.frame.setAttribute("aria-busy", String(busy));
}

function showEmpty() {
  preview.images = [];
  el.result.hidden = true;
  el.result.removeAttribute("src");
  el.result.alt = "";
  el.placeholder.hidden = false;
  el.download.disabled = true;
  renderVariations();
}

function showResult(data) {
  const images = Array.isArray(data && data.images) ? data.images : [];
  if (images.length === 0) { showError("other", "no images"); return; }
  preview.images = images.map((im) => ({
    member: im.member,
    label: im.label || `variation ${im.member + 1}`,
    b64: im.png_base64,
    src: `data:image/png;base64,${im.png_base64}`,
  }));
  if (!preview.images.some((im) => im.member === preview.selected)) preview.selected = preview.images[0].member;
  if (data.model) el.modelInfo.textContent = `Artist: ${data.model} v${data.version}`;
  renderVariations();
  showSelected();
  el.download.disabled = false;
  say(preview.images.length > 1 ? "Ta-da! Here is your anime face. Pick your favourite below."
                                : "Ta-da! Here is your anime face.", "success");
  if (preview.reveal) reveal(el.frame);
  clearTimeout(preview.sharpTimer);
  preview.sharpTimer = setTimeout(sharpen, SHARPEN_AFTER_MS);
}

/** The side the shown face is worth asking for: the frame's size in device pixels, as a doubling
 *  of the quick face's (the upscaler doubles; 512 at most). */
function sharpSize() {
  const shown = (el.frame.clientWidth || 256) * (window.devicePixelRatio || 1);
  let size = preview.size;
  while (size < 512 && size < shown / 1.5) size *= 2;
  return size;
}

/** The quick answer is small (the model's own size, scaled by the browser) so that drawing stays
 *  fast; when the kid pauses, the shown variation is asked for again at the frame's size, from the
 *  server's upscaler, and swapped in if the drawing has not changed meanwhile. The request is
 *  marked (?sharp=1) so the server's logs can tell it from a drawing's. */
async function sharpen() {
  const im = preview.images.find((x) => x.member === preview.selected);
  const size = sharpSize();
  if (!preview.upscaler || !im || im.sharp || size <= preview.size || preview.controller) return;
  const seq = preview.seq;
  const src = await fetchFace(im.member, size, "?sharp=1");
  if (!src || seq !== preview.seq) return; // failed (the quick face stays), or the drawing changed
  im.sharp = src;
  im.sharpSize = size;
  if (preview.selected === im.member) el.result.src = im.sharp;
}

/** One variation of the drawing at ``size`` px, as a data URL; null when the server cannot say. */
async function fetchFace(member, size, query = "") {
  try {
    const response = await fetch(`${API_TRANSLATE}${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ ...translateBody(), member, size }),
    });
    if (!response.ok) return null;
    const data = await response.json();
    const face = data && Array.isArray(data.images) && data.images[0];
    return face && face.png_base64 ? `data:image/png;base64,${face.png_base64}` : null;
  } catch {
    return null;
  }
}

function showSelected() {
  const im = preview.images.find((x) => x.member === preview.selected);
  if (!im) return;
  el.result.src = im.sharp || im.src;
  el.result.alt = `Anime face made from your drawing (${im.label})`;
  el.result.dataset.member = String(im.member);
  el.result.hidden = false;
  el.placeholder.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Variations: one thumbnail per ensemble member

function variationSlots() {
  // The serving model's members, else whatever the last answer held.
  if (preview.members && preview.members.length) return preview.members;
  return preview.images.map((im) => ({ index: im.member, label: im.label }));
}

function renderVariations() {
  const slots = variationSlots();
  el.variationsBlock.hidden = slots.length === 0;
  const byMember = new Map(preview.images.map((im) => [im.member, im]));
  // Rebuild only when the members change; otherwise update in place (keeps keyboard focus).
  const current = Array.from(el.variations.children).map((b) => Number(b.dataset.member));
  if (current.length !== slots.length || current.some((m, i) => m !== slots[i].index)) {
    el.variations.replaceChildren(...slots.map(makeVariationButton));
  }
  for (const button of el.variations.children) {
    const member = Number(button.dataset.member);
    const im = byMember.get(member);
    const img = button.querySelector("img");
    if (im) {
      img.src = im.src;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
    button.disabled = !im;
    const selected = member === preview.selected;
    button.setAttribute("aria-checked", String(selected));
    button.tabIndex = selected ? 0 : -1;
  }
}

function makeVariationButton(slot) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "variation";
  button.setAttribute("role", "radio");
  button.dataset.member = String(slot.index);
  button.dataset.testid = "variation";
  const img = document.createElement("img");
  img.alt = "";
  img.width = 96;
  img.height = 96;
  img.hidden = true;
  const word = document.createElement("span");
  word.className = "variation-word";
  word.textContent = niceLabel(slot.label || `variation ${slot.index + 1}`);
  button.append(img, word);
  button.addEventListener("click", () => selectVariation(slot.index, false));
  return button;
}

function niceLabel(label) {
  return label.charAt(0).toUpperCase() + label.slice(1);
}

function selectVariation(member, focus) {
  if (!preview.images.some((im) => im.member === member)) return;
  preview.selected = member;
  renderVariations();
  showSelected();
  clearTimeout(preview.sharpTimer);
  preview.sharpTimer = setTimeout(sharpen, SHARPEN_AFTER_MS);
  if (focus) {
    const button = el.variations.querySelector(`[data-member="${member}"]`);
    if (button) button.focus();
  }
}

el.variations.addEventListener("keydown", (e) => {
  const ready = Array.from(el.variations.children).filter((b) => !b.disabled);
  if (ready.length === 0) return;
  const at = ready.findIndex((b) => Number(b.dataset.member) === preview.selected);
  let next = -1;
  if (e.key === "ArrowRight" || e.key === "ArrowDown") next = (at + 1) % ready.length;
  else if (e.key === "ArrowLeft" || e.key === "ArrowUp") next = (at - 1 + ready.length) % ready.length;
  else if (e.key === "Home") next = 0;
  else if (e.key === "End") next = ready.length - 1;
  if (next < 0) return;
  e.preventDefault();
  selectVariation(Number(ready[next].dataset.member), true);
});

// ---------------------------------------------------------------------------------------------
// Download

async function downloadSelected() {
  const im = preview.images.find((x) => x.member === preview.selected);
  if (!im) return;
  // The face at SAVE_SIZE from the server's upscaler, where one serves; else (or if that fails)
  // the face on screen, scaled up smoothly by the browser.
  let src = im.sharpSize >= SAVE_SIZE ? im.sharp : im.src;
  if (preview.upscaler && !(im.sharpSize >= SAVE_SIZE)) {
    el.download.disabled = true;
    src = (await fetchFace(im.member, SAVE_SIZE)) || src; // else the face on screen will do
    el.download.disabled = false;
  }
  const picture = new Image();
  picture.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = Math.max(SAVE_SIZE, picture.naturalWidth);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (!blob) { say("Sorry, the picture could not be saved. Try again!", "error"); return; }
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = "doodle2anime.png";
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      say("Saved! Look for doodle2anime.png in your downloads.", "success");
    }, "image/png");
  };
  picture.src = src;
}

// ---------------------------------------------------------------------------------------------
// Messages

function say(text, kind = "info") {
  el.status.textContent = text;
  el.message.dataset.kind = kind;
  el.message.classList.toggle("empty", !text);
}

// ---------------------------------------------------------------------------------------------
// The serving model

async function loadModels() {
  try {
    const response = await fetch(API_MODELS, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const models = await response.json();
    const list = Array.isArray(models) ? models : [];
    // a quick doodle names no model, so the default one draws its faces; a detailed line
    // drawing goes to a line-art model, when one serves
    const serving = list.find((m) => m.default && m.serving) || null;
    preview.lineModel = list.find((m) => m.pen === "line_art" && m.serving && !m.default && m.on_page !== false) || null;
    el.modes.hidden = !preview.lineModel;
    if (!serving) {
      say(friendlyError(503), "error");
      return;
    }
    preview.doodleModel = serving;
    useModel(preview.mode === "line" && preview.lineModel ? preview.lineModel : serving);
  } catch {
    /* the translate call reports trouble to the kid; the picker falls back to its answers */
  }
}

/** Show the members and controls of the model that draws the faces now. */
function useModel(model) {
  preview.members = (model.members || []).map((m) => ({ index: m.index, label: m.label }));
  preview.controls = model.controls || [];
  // the model's own size, for a quick answer (the browser scales it to the frame); "Save picture"
  // asks the server's upscaler, where one serves, for the face at SAVE_SIZE
  if (model.image_size >= 28) preview.size = model.image_size;
  preview.upscaler = model.upscaler || null;
  el.controls.hidden = preview.controls.length === 0;
  el.newColours.hidden = !preview.controls.includes("seed");
  el.follow.closest("label").hidden = !preview.controls.includes("follow");
  el.crayons.hidden = !preview.controls.includes("colors");
  if (el.crayons.hidden && tools.colour) setColour(null);
  if (!preview.images.length) el.modelInfo.textContent = `Artist: ${model.name} v${model.version}`;
  renderVariations();
}

/** A quick doodle (the default artist), or a detailed line drawing with the thin pen. */
function setMode(mode) {
  const model = mode === "line" ? preview.lineModel : preview.doodleModel;
  if (!model || mode === preview.mode) return;
  preview.mode = mode;
  el.modeDoodle.setAttribute("aria-pressed", String(mode === "doodle"));
  el.modeLine.setAttribute("aria-pressed", String(mode === "line"));
  el.canvas.dataset.mode = mode;
  el.modelInfo.textContent = `Artist: ${model.name} v${model.version}`;
  setSize(mode === "line" ? "small" : "medium");
  setTool("pen");
  useModel(model);
  say(mode === "line"
    ? "Line drawing: draw every detail with the thin pen, hair, eyes and all. Your lines get coloured in!"
    : "Quick doodle: draw a face any way you like.");
  if (doc.strokes.length) requestPreview();
}

// ---------------------------------------------------------------------------------------------
// Wiring

el.canvas.addEventListener("pointerdown", onPointerDown);
el.canvas.addEventListener("pointermove", onPointerMove);
el.canvas.addEventListener("pointerup", onPointerUp);
el.canvas.addEventListener("pointercancel", onPointerCancel);
el.canvas.addEventListener("lostpointercapture", (e) => {
  if (active && e.pointerId === active.id) onPointerUp(e);
});
el.canvas.addEventListener("pointerleave", () => {
  if (!active && hover) { hover = null; requestRedraw(); }
});
el.canvas.addEventListener("contextmenu", (e) => e.preventDefault());

el.pen.addEventListener("click", () => setTool("pen"));
for (const b of el.crayonButtons) b.addEventListener("click", () => setColour(b.dataset.colour));
el.eraser.addEventListener("click", () => setTool("eraser"));
for (const b of el.sizes) b.addEventListener("click", () => setSize(b.dataset.size));
el.undo.addEventListener("click", undo);
el.redo.addEventListener("click", redo);
el.clear.addEventListener("click", clearDrawing);
el.download.addEventListener("click", downloadSelected);
el.retry.addEventListener("click", () => requestPreview());
el.newColours.addEventListener("click", newColours);
el.modeDoodle.addEventListener("click", () => setMode("doodle"));
el.modeLine.addEventListener("click", () => setMode("line"));
el.follow.addEventListener("input", () => { describeFollow(); if (doc.strokes.length) requestPreview(); });

document.addEventListener("keydown", (e) => {
  if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
  const key = e.key.toLowerCase();
  if (key === "z" && !e.shiftKey) { e.preventDefault(); undo(); }
  else if ((key === "z" && e.shiftKey) || key === "y") { e.preventDefault(); redo(); }
});

new ResizeObserver(() => fitCanvas()).observe(el.paper);
watchPixelRatio();
fitCanvas();
describeFollow();
drawingChanged();
say("Draw a face in the white box.");
loadModels();
