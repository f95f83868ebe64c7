// doodle2anime: the magic faces page.
//
// Every face comes from a seed (a random whole number): the same seed always gives the same
// face. "New face" asks the API for the face of a fresh seed; the faces made so far stay in a
// row, and any two of them can be picked as face A and face B. A mix asks for a 2x2 style-mixing
// grid (top row: face B, left column: face A, bottom right: B with some of A's style layers) and
// shows the bottom-right cell, cut out with a canvas. A morph is a GIF from A to B and back.
//
// The API answers at once (200, the picture), or says "still drawing" (202, with an address to
// ask again); the page then keeps asking, with a spinner, until the picture is there.

const API = "../api/v1/faces/";
const FACE_SIZE = 256;
const MIX_SIZE = 256; // the API's largest cell for a mix or a morph
const MORPH_FRAMES = 12;
const MORPH_SIZE = 256;
const HISTORY_MAX = 8;
const MAX_SEED = 4294967295;
const FETCH_TIMEOUT_MS = 130000; // the API itself waits up to sample_wait_s (at most 120 s)
const GIVE_UP_MS = 4 * 60 * 1000; // stop asking for a queued picture after this long
const POLL_FIRST_MS = 600;
const POLL_MAX_MS = 3000;

const LAYER_WORDS = { coarse: "face shape", middle: "hair & features", fine: "colours" };

const el = {
  faceFrame: document.getElementById("face-frame"),
  faceMain: document.getElementById("face-main"),
  facePlaceholder: document.getElementById("face-placeholder"),
  faceBusy: document.getElementById("face-busy"),
  newFace: document.getElementById("new-face"),
  download: document.getElementById("download"),
  psi: document.getElementById("psi"),
  psiWord: document.getElementById("psi-word"),
  history: document.getElementById("face-history"),
  faceA: document.getElementById("face-a"),
  faceB: document.getElementById("face-b"),
  mixButtons: Array.from(document.querySelectorAll(".mix-btn")),
  mixFrame: document.getElementById("mix-frame"),
  mixResult: document.getElementById("mix-result"),
  mixPlaceholder: document.getElementById("mix-placeholder"),
  mixBusy: document.getElementById("mix-busy"),
  downloadMix: document.getElementById("download-mix"),
  morph: document.getElementById("morph"),
  morphFrame: document.getElementById("morph-frame"),
  morphResult: document.getElementById("morph-result"),
  morphPlaceholder: document.getElementById("morph-placeholder"),
  morphBusy: document.getElementById("morph-busy"),
  message: document.getElementById("message"),
  status: document.getElementById("status"),
  retry: document.getElementById("retry"),
};

// ---------------------------------------------------------------------------------------------
// State

/** A face made on this page: {n, seed, psi, url}. ``url`` is an object URL of its PNG. */
const state = {
  psi: Number(el.psi.value),
  faces: [], // newest first
  count: 0, // faces made so far (their numbers for the labels)
  main: null, // the face shown big
  a: null,
  b: null,
  mix: null, // {url, name, layers}
  morphUrl: null,
  busy: { face: false, mix: false, morph: false },
  retry: null, // what "Try again" does
};

// ---------------------------------------------------------------------------------------------
// Talking to the API

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function sleep(ms) {
  return new Promise((done) => setTimeout(done, ms));
}

async function send(url, options) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    return await fetch(url, { ...options, signal: abort.signal });
  } catch (err) {
    throw new ApiError(err.name === "AbortError" ? "timeout" : "network", String(err));
  } finally {
    clearTimeout(timer);
  }
}

async function readDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.statusText || "";
  }
}

/** POST a request to the faces API; resolves to the picture (a Blob) once it is made.
 *  ``onWaiting`` is called each time the API says the picture is still being drawn. */
async function ask(kind, body, onWaiting) {
  const started = Date.now();
  let response = await send(API + kind, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "image/png, image/gif, application/json" },
    body: JSON.stringify(body),
  });
  let pause = POLL_FIRST_MS;
  while (response.status === 202) {
    let info = {};
    try {
      info = await response.json();
    } catch {
      // no body: handled below
    }
    if (!info.url) throw new ApiError(502, "the API said 202 without an address to ask again");
    if (Date.now() - started > GIVE_UP_MS) throw new ApiError("slow", "gave up waiting");
    if (onWaiting) onWaiting(info);
    await sleep(pause);
    pause = Math.min(pause * 1.5, POLL_MAX_MS);
    response = await send(new URL(info.url, location.href), { headers: { Accept: "image/png, image/gif, application/json" } });
  }
  if (!response.ok) throw new ApiError(response.status, await readDetail(response));
  const type = response.headers.get("content-type") || "";
  if (!type.startsWith("image/")) throw new ApiError(502, `expected a picture, got ${type || "nothing"}`);
  return await response.blob();
}

function friendly(err) {
  const status = err instanceof ApiError ? err.status : "bug";
  if (status === "network") return "Oops! The face machine is not answering. Is the internet on?";
  if (status === "timeout" || status === "slow") return "That took too long. The face machine is very busy.";
  if (status === 503) return "The face machine is having a nap right now.";
  if (status === 429) return "Whoa, so many faces! Wait a moment.";
  if (status === 422) return "Hmm, the face machine did not understand that.";
  return "Oh no, that face got smudged.";
}

// ---------------------------------------------------------------------------------------------
// Messages and busy spinners

function say(text, kind = "info") {
  el.status.textContent = text;
  el.message.dataset.kind = kind;
  if (kind !== "error") {
    el.retry.hidden = true;
    state.retry = null;
  }
}

function sayError(err, retry) {
  console.warn("faces API:", err);
  say(`${friendly(err)} Press "Try again".`, "error");
  state.retry = retry;
  el.retry.hidden = false;
}

const BUSY = {
  face: () => [el.faceFrame, el.faceBusy],
  mix: () => [el.mixFrame, el.mixBusy],
  morph: () => [el.morphFrame, el.morphBusy],
};

function setBusy(which, busy) {
  state.busy[which] = busy;
  const [frame, spinner] = BUSY[which]();
  frame.setAttribute("aria-busy", busy ? "true" : "false");
  spinner.hidden = !busy;
  render();
}

function stillDrawing(what) {
  return () => say(`The face machine is busy. Still ${what}… hang on!`, "info");
}

// ---------------------------------------------------------------------------------------------
// Faces

function randomSeed() {
  const one = new Uint32Array(1);
  crypto.getRandomValues(one);
  return Math.min(one[0], MAX_SEED);
}

function faceName(face) {
  return `face ${face.n}`;
}

function inUse(face) {
  return face === state.main || face === state.a || face === state.b;
}

function newFace() {
  drawFace(randomSeed(), null);
}

/** Ask for the face of ``seed`` at the slider's psi. ``face`` is the face to repaint (the
 *  slider moved), or null for a brand-new face. */
async function drawFace(seed, face) {
  if (state.busy.face) return;
  setBusy("face", true);
  const psi = state.psi;
  say(face ? "Drawing your face again…" : "Drawing your face…");
  let blob;
  try {
    blob = await ask("random", { seeds: [seed], psi, size: FACE_SIZE }, stillDrawing("drawing your face"));
  } catch (err) {
    setBusy("face", false);
    sayError(err, () => drawFace(seed, face));
    return;
  }
  const url = URL.createObjectURL(blob);
  const isNew = !face;
  if (face) {
    URL.revokeObjectURL(face.url);
    face.url = url;
    face.psi = psi;
  } else {
    face = { n: ++state.count, seed, psi, url };
    addToHistory(face);
  }
  state.main = face;
  setBusy("face", false);
  if (state.psi !== psi) {
    drawFace(seed, face); // the slider moved meanwhile: catch up
    return;
  }
  if (!isNew) say(`Here is ${faceName(face)}: ${sentenceEnd(psiWord(psi).toLowerCase())}`, "success");
  else if (state.b) say(`Say hello to ${faceName(face)}!`, "success");
  else say(`Say hello to ${faceName(face)}! Make one more face to mix them.`, "success");
}

function addToHistory(face) {
  state.faces.unshift(face);
  if (!state.a) state.a = face;
  else if (!state.b) state.b = face;
  while (state.faces.length > HISTORY_MAX) {
    let old = state.faces.length - 1;
    while (old >= 0 && inUse(state.faces[old])) old--;
    if (old <= 0) break; // (index 0 is the new face)
    URL.revokeObjectURL(state.faces[old].url);
    state.faces.splice(old, 1);
  }
}

function showBig(face) {
  if (state.busy.face) return; // a face is on its way: it will be the big one
  state.main = face;
  if (face.psi !== state.psi) {
    drawFace(face.seed, face);
  } else {
    say(`Here is ${faceName(face)}!`, "success");
    render();
  }
}

function pick(face, slot) {
  const other = slot === "a" ? "b" : "a";
  if (state[other] === face) state[other] = state[slot]; // picking B's face as A swaps them
  state[slot] = face;
  say(`${faceName(face)} is face ${slot.toUpperCase()}.`, "success");
  render();
}

// ---------------------------------------------------------------------------------------------
// Mixing and morphing

/** The cell (col, row) of a square grid picture of ``cells`` x ``cells`` faces, as a PNG. */
async function cutCell(blob, col, row, cells) {
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const side = Math.floor(img.naturalWidth / cells);
    const canvas = document.createElement("canvas");
    canvas.width = side;
    canvas.height = side;
    canvas.getContext("2d").drawImage(img, col * side, row * side, side, side, 0, 0, side, side);
    return await new Promise((done, fail) =>
      canvas.toBlob((png) => (png ? done(png) : fail(new ApiError("bug", "could not cut the picture"))), "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}

async function mix(layers) {
  const { a, b } = state;
  if (!a || !b || state.busy.mix) return;
  for (const btn of el.mixButtons) btn.setAttribute("aria-pressed", btn.dataset.layers === layers ? "true" : "false");
  setBusy("mix", true);
  say("Mixing the two faces…");
  const psi = state.psi;
  let cell;
  try {
    const grid = await ask("mix", { row_seeds: [a.seed], col_seeds: [b.seed], layers, psi, size: MIX_SIZE },
                           stillDrawing("mixing the faces"));
    cell = await cutCell(grid, 1, 1, 2); // bottom right: B with A's chosen layers
  } catch (err) {
    setBusy("mix", false);
    sayError(err, () => mix(layers));
    return;
  }
  if (state.mix) URL.revokeObjectURL(state.mix.url);
  state.mix = { url: URL.createObjectURL(cell), name: `anime-mix-${a.seed}-${b.seed}-${layers}.png`, layers };
  el.mixResult.src = state.mix.url;
  el.mixResult.alt = `Face ${b.n} with the ${LAYER_WORDS[layers]} of face ${a.n}`;
  setBusy("mix", false);
  say(`Here is face B with face A's ${LAYER_WORDS[layers]}!`, "success");
}

async function morph() {
  const { a, b } = state;
  if (!a || !b || state.busy.morph) return;
  setBusy("morph", true);
  say("Turning face A into face B…");
  let gif;
  try {
    gif = await ask("interpolate", { seed_a: a.seed, seed_b: b.seed, frames: MORPH_FRAMES, psi: state.psi,
                                     size: MORPH_SIZE, format: "gif" }, stillDrawing("morphing"));
  } catch (err) {
    setBusy("morph", false);
    sayError(err, morph);
    return;
  }
  if (state.morphUrl) URL.revokeObjectURL(state.morphUrl);
  state.morphUrl = URL.createObjectURL(gif);
  el.morphResult.src = state.morphUrl;
  el.morphResult.alt = `Face ${a.n} turning into face ${b.n} and back`;
  setBusy("morph", false);
  say("Abracadabra! Face A turns into face B.", "success");
}

function save(url, name) {
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  say("Saved! Look in your downloads.", "success");
}

// ---------------------------------------------------------------------------------------------
// The wild <-> safe slider

/** ``words`` with a full stop, unless they end in one already ("super wild!"). */
function sentenceEnd(words) {
  return /[.!?]$/.test(words) ? words : `${words}.`;
}

function psiWord(psi) {
  if (psi >= 0.9) return "Super wild!";
  if (psi >= 0.65) return "A little wild";
  if (psi >= 0.45) return "Nice and safe";
  return "Very safe";
}

function onPsiInput() {
  const psi = Number(el.psi.value);
  el.psiWord.textContent = psiWord(psi);
  el.psi.setAttribute("aria-valuetext", `${psiWord(psi)} (${psi.toFixed(2)})`);
}

function onPsiChange() {
  onPsiInput();
  state.psi = Number(el.psi.value);
  if (state.main && !state.busy.face) drawFace(state.main.seed, state.main);
  // (a face being drawn checks the slider when it arrives)
}

// ---------------------------------------------------------------------------------------------
// Drawing the page from the state

function render() {
  const { main, a, b, busy } = state;
  el.faceMain.hidden = !main;
  el.facePlaceholder.hidden = !!main || busy.face;
  if (main && el.faceMain.getAttribute("src") !== main.url) el.faceMain.src = main.url;
  el.faceMain.alt = main ? `A new anime face (${faceName(main)})` : "";
  el.newFace.disabled = busy.face;
  el.download.disabled = !main || busy.face;

  for (const [img, face] of [[el.faceA, a], [el.faceB, b]]) {
    img.hidden = !face;
    if (face && img.getAttribute("src") !== face.url) img.src = face.url;
    img.alt = face ? faceName(face) : "";
    img.nextElementSibling.hidden = !!face;
  }
  for (const btn of el.mixButtons) btn.disabled = !a || !b || busy.mix;
  el.morph.disabled = !a || !b || busy.morph;

  el.mixResult.hidden = !state.mix;
  el.mixPlaceholder.hidden = !!state.mix || busy.mix;
  el.downloadMix.disabled = !state.mix || busy.mix;
  el.morphResult.hidden = !state.morphUrl;
  el.morphPlaceholder.hidden = !!state.morphUrl || busy.morph;

  renderHistory();
}

/** The row of faces: one item per face, made once and then only updated (so a focused button
 *  keeps its focus and the pictures do not flicker). */
const historyItems = new Map(); // face.n -> {li, img, show, slots}

function historyItem(face) {
  const li = document.createElement("li");
  li.className = "pick";
  li.dataset.n = String(face.n);
  li.dataset.seed = String(face.seed);

  const show = document.createElement("button");
  show.type = "button";
  show.className = "pick-face";
  show.setAttribute("aria-label", `Show ${faceName(face)} big`);
  const img = document.createElement("img");
  img.alt = "";
  show.append(img);
  show.addEventListener("click", () => showBig(face));

  const ab = document.createElement("div");
  ab.className = "pick-ab";
  const slots = {};
  for (const slot of ["a", "b"]) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = `pick-slot pick-${slot}`;
    btn.textContent = slot.toUpperCase();
    btn.setAttribute("aria-label", `Use ${faceName(face)} as face ${slot.toUpperCase()}`);
    btn.addEventListener("click", () => pick(face, slot));
    slots[slot] = btn;
    ab.append(btn);
  }
  li.append(show, ab);
  return { li, img, show, slots };
}

function renderHistory() {
  const kept = new Set(state.faces.map((f) => f.n));
  for (const [n, item] of historyItems) {
    if (!kept.has(n)) {
      item.li.remove();
      historyItems.delete(n);
    }
  }
  state.faces.forEach((face, i) => {
    let item = historyItems.get(face.n);
    if (!item) {
      item = historyItem(face);
      historyItems.set(face.n, item);
    }
    if (item.img.getAttribute("src") !== face.url) item.img.src = face.url;
    item.li.classList.toggle("is-main", face === state.main);
    item.show.setAttribute("aria-current", face === state.main ? "true" : "false");
    for (const slot of ["a", "b"]) item.slots[slot].setAttribute("aria-pressed", state[slot] === face ? "true" : "false");
    if (el.history.children[i] !== item.li) el.history.insertBefore(item.li, el.history.children[i] || null);
  });
}

// ---------------------------------------------------------------------------------------------
// Wiring

el.newFace.addEventListener("click", newFace);
el.download.addEventListener("click", () => {
  if (state.main) save(state.main.url, `anime-face-${state.main.seed}.png`);
});
el.downloadMix.addEventListener("click", () => {
  if (state.mix) save(state.mix.url, state.mix.name);
});
for (const btn of el.mixButtons) btn.addEventListener("click", () => mix(btn.dataset.layers));
el.morph.addEventListener("click", morph);
el.psi.addEventListener("input", onPsiInput);
el.psi.addEventListener("change", onPsiChange);
el.retry.addEventListener("click", () => {
  const again = state.retry;
  el.retry.hidden = true;
  state.retry = null;
  if (again) again();
});

onPsiInput();
render();
document.body.dataset.ready = "true";
