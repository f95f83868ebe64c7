// doodle2anime: the photo page. A photo from the camera (getUserMedia) or a file goes to
// POST /api/v1/photo; the anime face and the composite come back and are shown, and saved only
// when the kid presses "Save picture" (to their own device). The page keeps the photo in memory
// only while it is shown; nothing is stored by the page or the server.

const API_PHOTO = "../api/v1/photo";
const MAX_BYTES = 10 * 1024 * 1024; // the server's photo_max_bytes; bigger files are shrunk first
const SEND_SIDE = 1024; // a larger photo is scaled down in the browser before it is sent
const REQUEST_TIMEOUT_MS = 30000;

const el = {
  status: document.getElementById("status"),
  message: document.getElementById("message"),
  camera: document.getElementById("camera"),
  original: document.getElementById("original"),
  photoPlaceholder: document.getElementById("photo-placeholder"),
  startCamera: document.getElementById("start-camera"),
  snap: document.getElementById("snap"),
  file: document.getElementById("file"),
  result: document.getElementById("result"),
  resultPlaceholder: document.getElementById("result-placeholder"),
  resultFrame: document.getElementById("result-frame"),
  busy: document.getElementById("busy"),
  download: document.getElementById("download"),
  viewComposite: document.getElementById("view-composite"),
  viewAnime: document.getElementById("view-anime"),
};

const state = { stream: null, pictures: null, view: "composite", busy: false, originalUrl: null };

function say(text, kind = "info") {
  el.status.textContent = text;
  el.message.dataset.kind = kind;
}

function setBusy(on) {
  state.busy = on;
  el.busy.hidden = !on;
  el.resultFrame.setAttribute("aria-busy", String(on));
  el.startCamera.disabled = on;
  el.snap.disabled = on;
  el.download.disabled = on || !state.pictures;
}

// -- the photo ---------------------------------------------------------------------------------

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser can't use the camera here. Pick a photo instead!", "error");
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
  } catch {
    say("We couldn't use the camera. Say yes when the browser asks, or pick a photo instead!", "error");
    return;
  }
  el.camera.srcObject = state.stream;
  el.camera.hidden = false;
  el.original.hidden = true;
  el.photoPlaceholder.hidden = true;
  el.startCamera.hidden = true;
  el.snap.hidden = false;
  await el.camera.play().catch(() => {});
  say("Look at the camera and press Snap!");
  el.snap.focus();
}

function stopCamera() {
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  el.camera.srcObject = null;
  el.camera.hidden = true;
  el.snap.hidden = true;
  el.startCamera.hidden = false;
}

function snap() {
  const v = el.camera;
  if (!v.videoWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.translate(canvas.width, 0); // the photo as the kid saw it: mirrored
  ctx.scale(-1, 1);
  ctx.drawImage(v, 0, 0);
  stopCamera();
  canvas.toBlob((blob) => blob && usePhoto(blob), "image/jpeg", 0.92);
}

/** A photo too big to send is drawn smaller first (the EXIF orientation applied by the browser). */
async function shrunk(file) {
  if (file.size <= MAX_BYTES) return file;
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, SEND_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function usePhoto(blob) {
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(blob);
  el.original.src = state.originalUrl;
  el.original.hidden = false;
  el.photoPlaceholder.hidden = true;
  await send(blob);
}

// -- the anime picture ---------------------------------------------------------------------------

function friendly(status, detail) {
  if (status === 422 && /no face/i.test(detail)) {
    return "Hmm, we couldn't find a face in that photo. Try one where you look straight at the camera, in good light, with your face big in the picture!";
  }
  if (status === 413) return "That photo is too big. Try a smaller one!";
  if (status === 415) return "That isn't a photo we can read. Try a JPEG or PNG picture!";
  if (status === 422) return "We couldn't use that photo. Try another one!";
  if (status === 429) return "Whoa, lots of pictures! Wait a moment and try again.";
  if (status === 503) return "The anime artist is taking a nap. Try again in a little while.";
  return "Something went wrong. Try again!";
}

async function send(blob) {
  setBusy(true);
  say("Making you anime…");
  const form = new FormData();
  form.append("photo", await shrunk(blob), "photo.jpg");
  form.append("response", "json");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(API_PHOTO, { method: "POST", body: form, signal: controller.signal });
    if (!response.ok) {
      let detail = "";
      try { detail = (await response.json()).detail || ""; } catch { /* not JSON */ }
      state.pictures = null;
      showPicture();
      say(friendly(response.status, String(detail)), response.status === 422 ? "info" : "error");
      return;
    }
    const data = await response.json();
    state.pictures = {
      composite: `data:image/png;base64,${data.composite_png_base64}`,
      anime: `data:image/png;base64,${data.anime_png_base64}`,
    };
    showPicture();
    say("Ta-da! Here you are, anime style! Press Save picture to keep it.", "success");
  } catch {
    say("We couldn't reach the anime artist. Check the connection and try again!", "error");
  } finally {
    clearTimeout(timer);
    setBusy(false);
  }
}

function showPicture() {
  const p = state.pictures;
  el.result.hidden = !p;
  el.resultPlaceholder.hidden = !!p;
  if (p) {
    el.result.src = p[state.view];
    el.result.alt = state.view === "composite" ? "Your photo with an anime face" : "Your anime face";
  } else {
    el.result.removeAttribute("src");
  }
  el.download.disabled = !p || state.busy;
}

function setView(view) {
  state.view = view;
  el.viewComposite.setAttribute("aria-pressed", String(view === "composite"));
  el.viewAnime.setAttribute("aria-pressed", String(view === "anime"));
  showPicture();
}

function save() {
  if (!state.pictures) return;
  const link = document.createElement("a");
  link.href = state.pictures[state.view];
  link.download = state.view === "composite" ? "me-anime.png" : "my-anime-face.png";
  document.body.append(link);
  link.click();
  link.remove();
  say("Saved! Look in your downloads.", "success");
}

el.startCamera.addEventListener("click", startCamera);
el.snap.addEventListener("click", snap);
el.file.addEventListener("change", () => {
  const file = el.file.files && el.file.files[0];
  el.file.value = "";
  if (!file) return;
  stopCamera();
  usePhoto(file);
});
el.viewComposite.addEventListener("click", () => setView("composite"));
el.viewAnime.addEventListener("click", () => setView("anime"));
el.download.addEventListener("click", save);
window.addEventListener("pagehide", stopCamera);
