// doodle2anime admin dashboard: one page, hash routes, plain DOM. No framework, no build step.
//
// Every call goes to /api/v1/admin with the session cookie (HttpOnly, set by POST /login). Any 401
// from the API ends the session on this page and sends the admin to the login form, which then
// returns to the page that was open.
//
// Each route renders into <main id="view"> and gets a context whose `alive()` turns false as soon
// as another route renders; timers and observers registered with the context are stopped then,
// and answers that arrive late are dropped instead of drawn over the new page.

const API = "/api/v1/admin";
const ACTIVE_STATUSES = new Set(["queued", "running"]);
const JOB_POLL_MS = 1500;
const LIST_POLL_MS = 3000;
const QUEUE_POLL_MS = 3000;

const state = {
  me: null,            // {id, username} once known
  next: "#/jobs",      // where to go after logging in
  routeGen: 0,
  cleanups: [],
  lastPath: null,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

/** h("div", {class: "x", onclick: fn, "data-id": 3}, "text", child) -> element */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "hidden") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function parseDate(value) {
  if (!value) return null;
  let s = String(value);
  // The API writes UTC; a time without an offset is UTC too, not the browser's local time.
  if (/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(s)) s = s.replace(" ", "T") + "Z";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

const numberFmt = new Intl.NumberFormat("en");
function fmtInt(n) {
  return n === null || n === undefined ? "–" : numberFmt.format(n);
}

/** 200 -> "3 min 20 s"; 7260 -> "2 h 1 min"; 9 -> "9 s". */
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  let s = Math.max(0, Math.round(seconds));
  if (s < 1) return "under 1 s";
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    s -= m * 60;
    return s ? `${m} min ${s} s` : `${m} min`;
  }
  if (s < 86400) {
    const hours = Math.floor(s / 3600);
    const m = Math.floor((s - hours * 3600) / 60);
    return m ? `${hours} h ${m} min` : `${hours} h`;
  }
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s - days * 86400) / 3600);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

function fmtAgo(value) {
  const d = parseDate(value);
  if (!d) return "–";
  const s = (Date.now() - d.getTime()) / 1000;
  if (s < 5) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtDate(value);
}

function fmtDate(value) {
  const d = parseDate(value);
  if (!d) return "–";
  return d.toLocaleString(undefined, {year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
}

/** A time element showing "3 min ago", with the full date as its tooltip. */
function timeAgo(value) {
  const d = parseDate(value);
  if (!d) return h("span", {class: "muted", text: "–"});
  return h("time", {datetime: d.toISOString(), title: d.toLocaleString(), text: fmtAgo(value)});
}

function fmtValue(v) {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return fmtInt(v);
    const abs = Math.abs(v);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

function capitalize(s) {
  s = String(s || "").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function sentence(s) {
  s = capitalize(s);
  return s && !/[.!?]$/.test(s) ? s + "." : s;
}

function badge(status, text) {
  return h("span", {class: `badge badge-${status}`, "data-status": status, text: text || status});
}

function progressBar(fraction, attrs = {}) {
  const pct = percent(fraction);
  return h("span", {class: "progress-cell"},
    h("progress", {max: 100, value: pct, "aria-label": `${pct} %`, ...attrs}),
    h("span", {class: "progress-num", text: `${pct} %`}));
}

/** 0..1 -> whole percent; 100 only when the work is really done. */
function percent(fraction) {
  const f = Number(fraction) || 0;
  if (f >= 1) return 100;
  return Math.max(0, Math.min(99, Math.floor(f * 100)));
}

let flashTimer = null;
function flash(message, kind = "ok") {
  const el = $("#flash");
  el.textContent = message;
  el.className = `flash flash-${kind}`;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 4000);
}

function notice(kind, attrs = {}) {
  return h("p", {class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status", hidden: true, ...attrs});
}

function showNotice(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, message, fields = [], silent = false) {
    super(message);
    this.status = status;
    this.fields = fields;   // [{field, msg}] from a 422
    this.silent = silent;   // already handled (a 401 that went to the login page)
  }
}

/** The `detail` of an error answer as one sentence, and its field list when it has one. */
function readDetail(status, data, fallback) {
  const detail = data && data.detail;
  if (typeof detail === "string") return {message: sentence(detail), fields: []};
  if (Array.isArray(detail)) {
    const fields = detail.map((d) => {
      let field = d.field;
      if (!field && Array.isArray(d.loc)) {
        const loc = d.loc.filter((p) => p !== "body");
        field = loc.join(".");
      }
      return {field: field || "", msg: d.msg || "is not valid"};
    });
    const message = fields.map((f) => (f.field ? `${f.field}: ${f.msg}` : f.msg)).join("; ");
    return {message: sentence(message), fields};
  }
  return {message: fallback || `The server answered ${status}.`, fields: []};
}

function sessionEnded() {
  state.me = null;
  const here = location.hash;
  if (here && !here.startsWith("#/login")) state.next = here;
  if (!location.hash.startsWith("#/login")) location.hash = "#/login";
  else route();
}

async function api(path, {method = "GET", body, auth = true} = {}) {
  const opts = {method, credentials: "same-origin", headers: {Accept: "application/json"}};
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, opts);
  } catch (err) {
    throw new ApiError(0, "The server could not be reached. Check that it is running and try again.");
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.status === 401 && auth) {
    sessionEnded();
    throw new ApiError(401, "Your session ended; log in again.", [], true);
  }
  if (!res.ok) {
    const {message, fields} = readDetail(res.status, data, `${res.status} ${res.statusText}`.trim());
    throw new ApiError(res.status, message, fields);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Routing

const ROUTES = [
  [/^\/login$/, viewLogin, {public: true}],
  [/^\/jobs$/, viewJobs, {section: "jobs"}],
  [/^\/jobs\/new$/, viewNewJob, {section: "jobs"}],
  [/^\/jobs\/(\d+)$/, viewJob, {section: "jobs"}],
  [/^\/models(?:\/(\d+))?$/, viewModels, {section: "models"}],
  [/^\/datasets$/, viewDatasets, {section: "datasets"}],
  [/^\/queue$/, viewQueue, {section: "queue"}],
  [/^\/keys$/, viewKeys, {section: "keys"}],
];

function makeContext() {
  const gen = ++state.routeGen;
  for (const fn of state.cleanups.splice(0)) {
    try { fn(); } catch (err) { console.error(err); }
  }
  const ctx = {
    alive: () => gen === state.routeGen,
    onCleanup: (fn) => state.cleanups.push(fn),
    /** Run fn now and then again `ms` after each run ends, while it returns true and the page is open. */
    poll(fn, ms) {
      let timer = null;
      let stopped = false;
      let busy = false;     // a run is under way
      let rerun = false;    // restart() was called meanwhile: run again as soon as it ends
      const tick = async () => {
        clearTimeout(timer);
        timer = null;
        if (stopped || !ctx.alive()) return;
        if (busy) { rerun = true; return; }
        busy = true;
        let again = false;
        try { again = await fn(); } catch (err) { again = !err.silent; if (!err.silent) console.error(err); }
        busy = false;
        if (stopped || !ctx.alive()) return;
        if (rerun) { rerun = false; tick(); return; }
        if (again) timer = setTimeout(tick, ms);
      };
      ctx.onCleanup(() => { stopped = true; clearTimeout(timer); });
      tick();
      return {
        restart: tick,
        stop() { stopped = true; clearTimeout(timer); },
      };
    },
  };
  return ctx;
}

function showChrome(loggedIn, section) {
  $("#main-nav").hidden = !loggedIn;
  $("#who").hidden = !loggedIn;
  $("#who-name").textContent = loggedIn && state.me ? state.me.username : "";
  for (const a of $$("#main-nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.classList.toggle("logged-out", !loggedIn);
}

function setTitle(title) {
  document.title = `${title} · doodle2anime admin`;
}

async function route() {
  const ctx = makeContext();
  const path = (location.hash || "").replace(/^#/, "") || "/jobs";
  let match = null;
  let entry = null;
  for (const candidate of ROUTES) {
    match = candidate[0].exec(path);
    if (match) { entry = candidate; break; }
  }
  if (!entry) {
    location.replace("#/jobs");
    return;
  }
  const [, view, opts] = entry;
  const root = $("#view");
  if (path !== state.lastPath) window.scrollTo(0, 0);  // a new page starts at its top
  state.lastPath = path;
  if (!opts.public && !state.me) {
    root.replaceChildren(h("p", {class: "loading", text: "Loading…"}));
    try {
      state.me = await api("/me");
    } catch (err) {
      if (!ctx.alive() || err.silent) return;
      showChrome(false);
      root.replaceChildren(h("div", {class: "card narrow"},
        h("h1", {text: "The dashboard cannot start"}),
        h("p", {class: "notice notice-error", role: "alert", text: err.message}),
        h("button", {class: "btn", type: "button", onclick: () => route(), text: "Try again"})));
      return;
    }
    if (!ctx.alive()) return;
  }
  showChrome(!opts.public && !!state.me, opts.section);
  root.replaceChildren();
  root.dataset.route = path.split("/")[1] || "";
  try {
    await view(ctx, root, ...match.slice(1));
  } catch (err) {
    if (err.silent || !ctx.alive()) return;
    console.error(err);
    root.append(h("p", {class: "notice notice-error", role: "alert", text: err.message || String(err)}));
  }
}

// ---------------------------------------------------------------------------------------------
// Login

async function viewLogin(ctx, root) {
  setTitle("Log in");
  // Already logged in (a reload of #/login): go on.
  if (!state.me) {
    try {
      state.me = await api("/me", {auth: false});
    } catch {
      state.me = null;
    }
    if (!ctx.alive()) return;
  }
  if (state.me) {
    location.replace(state.next || "#/jobs");
    return;
  }
  showChrome(false);
  const error = notice("error", {id: "login-error", "data-testid": "login-error"});
  const user = h("input", {id: "login-username", name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false"});
  const pass = h("input", {id: "login-password", name: "password", type: "password", autocomplete: "current-password",
    required: true});
  const submit = h("button", {class: "btn btn-primary btn-block", id: "login-submit", type: "submit", text: "Log in"});
  const form = h("form", {id: "login-form", class: "stack"},
    h("label", {class: "field"}, h("span", {class: "field-label", text: "User name"}), user),
    h("label", {class: "field"}, h("span", {class: "field-label", text: "Password"}), pass),
    error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showNotice(error, "");
    submit.disabled = true;
    submit.textContent = "Logging in…";
    try {
      const out = await api("/login", {method: "POST", auth: false,
        body: {username: user.value.trim(), password: pass.value}});
      state.me = {username: out.username};
      const next = state.next && !state.next.startsWith("#/login") ? state.next : "#/jobs";
      state.next = "#/jobs";
      location.hash = next;
    } catch (err) {
      if (!ctx.alive()) return;
      showNotice(error, err.status === 401 ? "Wrong user name or password." : err.message);
      pass.value = "";
      pass.focus();
      submit.disabled = false;
      submit.textContent = "Log in";
    }
  });
  root.append(h("section", {class: "login card", "aria-labelledby": "login-title"},
    h("div", {class: "login-mark", "aria-hidden": "true", text: "d2a"}),
    h("h1", {id: "login-title", text: "Admin log in"}),
    h("p", {class: "muted", text: "Train models, manage data sets and API keys."}),
    form));
  user.focus();
}

async function logout() {
  try {
    await api("/logout", {method: "POST", auth: false});
  } catch (err) {
    flash(err.message, "error");
  }
  state.me = null;
  state.next = "#/jobs";
  location.hash = "#/login";
}

// ---------------------------------------------------------------------------------------------
// Jobs list

async function viewJobs(ctx, root) {
  setTitle("Jobs");
  const filter = h("select", {id: "jobs-filter", "aria-label": "Show jobs"},
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) =>
      h("option", {value: s, text: s ? capitalize(s) : "All jobs"})));
  const tbody = h("tbody");
  const table = h("table", {class: "table", id: "jobs-table", "data-testid": "jobs-table"},
    h("thead", {}, h("tr", {},
      ["Job", "Status", "Progress", "Step", "Created", "Time", "Worker"].map((t) => h("th", {scope: "col", text: t})))),
    tbody);
  const empty = h("div", {class: "empty", id: "jobs-empty", hidden: true},
    h("p", {text: "No training jobs yet."}),
    h("a", {class: "btn btn-primary", href: "#/jobs/new", text: "Start the first one"}));
  const error = notice("error");
  root.append(
    h("div", {class: "page-head"},
      h("h1", {text: "Training jobs"}),
      h("div", {class: "page-actions"}, filter,
        h("a", {class: "btn btn-primary", href: "#/jobs/new", id: "new-job-link", "data-testid": "new-job-link",
          text: "New training job"}))),
    error,
    h("div", {class: "card card-flush table-wrap"}, table, empty));

  const poller = ctx.poll(async () => {
    const q = filter.value ? `?status=${encodeURIComponent(filter.value)}` : "";
    let jobs;
    try {
      jobs = await api(`/jobs${q}`);
    } catch (err) {
      if (!err.silent && ctx.alive()) showNotice(error, err.message);
      throw err;
    }
    if (!ctx.alive()) return false;
    showNotice(error, "");
    tbody.replaceChildren(...jobs.map(jobRow));
    empty.hidden = jobs.length > 0;
    table.hidden = jobs.length === 0;
    if (filter.value) empty.firstChild.textContent = `No ${filter.value} jobs.`;
    else empty.firstChild.textContent = "No training jobs yet.";
    return true;
  }, LIST_POLL_MS);
  filter.addEventListener("change", () => poller.restart());
}

function jobTime(job) {
  if (job.status === "running" && job.eta_seconds !== null && job.eta_seconds !== undefined) {
    return job.eta_seconds < 1 ? "finishing" : `${fmtDuration(job.eta_seconds)} left`;
  }
  const start = parseDate(job.started_at);
  const end = parseDate(job.finished_at);
  if (start && end) return `took ${fmtDuration((end - start) / 1000)}`;
  if (job.status === "queued") return "waiting";
  return "–";
}

function jobRow(job) {
  const href = `#/jobs/${job.id}`;
  return h("tr", {"data-job-id": job.id, "data-testid": "job-row", class: "row-link",
      onclick: (e) => { if (!e.target.closest("a")) location.hash = href; }},
    h("td", {}, h("a", {href, class: "strong", text: `#${job.id}`}), " ", h("span", {class: "muted", text: job.kind})),
    h("td", {}, badge(job.status), job.cancel_requested && job.status === "running"
      ? h("span", {class: "muted small", text: " stopping…"}) : null),
    h("td", {}, progressBar(job.progress)),
    h("td", {class: "num", text: `${fmtInt(job.step)} / ${fmtInt(job.total_steps)}`}),
    h("td", {}, timeAgo(job.created_at)),
    h("td", {text: jobTime(job)}),
    h("td", {class: "muted", text: job.worker || "–"}));
}

// ---------------------------------------------------------------------------------------------
// New job: a form made from the job kind's JSON Schema

const FIELD_LABELS = {
  image_size: "Image size (px)",
  raster_size: "Raster size (px)",
  ngf: "Generator width (ngf)",
  ndf: "Discriminator width (ndf)",
  n_blocks: "Residual blocks",
  batch_size: "Batch size",
  steps: "Training steps",
  decay_steps: "Decay steps",
  lr: "Learning rate",
  lr_d: "Learning rate of D",
  beta1: "Adam β1",
  beta2: "Adam β2",
  lambda_cycle: "Cycle loss weight",
  lambda_identity: "Identity loss weight",
  pool_size: "Image pool size",
  flip: "Random flips",
  mix: "Sketch mix",
  quickdraw: "Quick, Draw! doodles",
  synthetic: "Synthetic sketches",
  edges: "Edge maps of anime faces",
  anime_limit: "Anime faces used",
  seed: "Random seed",
  log_every: "Log losses every",
  sample_every: "Sample grid every",
  checkpoint_every: "Checkpoint every",
  snapshot_every: "Snapshot every",
  eval_count: "Evaluation doodles",
  minibatch_discrimination: "Minibatch discrimination",
  minibatch_kind: "Minibatch features",
  fuzzy_labels: "Fuzzy labels",
  gan_loss: "Adversarial loss",
  unet_depth: "U-Net levels",
  reconstruction: "Reconstruction distance",
  n_res: "Own residual blocks",
  n_shared: "Shared residual blocks",
  lambda_gan: "Adversarial loss weight",
  lambda_kl: "KL weight",
  lambda_rec: "Reconstruction weight",
  lambda_cycle_kl: "Cycle KL weight",
  lambda_l1: "L1 weight",
  line_diameter: "Pen width",
  padding: "Margin",
  edge_keep: "Ink share of edge sketches",
  thicken: "Thicker lines (probability)",
};

const FIELD_GROUPS = [
  ["Network", ["image_size", "raster_size", "ngf", "ndf", "n_blocks", "unet_depth", "n_res", "n_shared"]],
  ["Schedule", ["steps", "decay_steps", "batch_size", "schedule", "cycle_steps"]],
  ["Optimiser", ["optimizer", "lr", "lr_d", "beta1", "beta2", "momentum", "weight_decay"]],
  ["Losses", ["gan_loss", "lambda_gan", "lambda_cycle", "reconstruction", "lambda_identity", "lambda_kl", "lambda_rec",
              "lambda_cycle_kl", "lambda_l1", "pool_size", "fuzzy_labels", "minibatch_discrimination", "minibatch_kind"]],
  ["Data", ["mix", "anime_limit", "flip", "sharpness", "line_diameter", "padding", "edge_keep", "thicken", "seed"]],
  ["Logging and checkpoints", ["log_every", "sample_every", "checkpoint_every", "snapshot_every", "eval_count"]],
];

function humanize(name) {
  return capitalize(String(name).replace(/_/g, " ").replace(/\s+/g, " "));
}

/** The schema of a property with $ref and "X or null" resolved: {schema, nullable}. */
function resolveSchema(prop, root) {
  let s = prop || {};
  if (s.$ref) {
    const target = s.$ref.split("/").pop();
    s = {...((root.$defs || root.definitions || {})[target] || {}), ...s};
    delete s.$ref;
  }
  let nullable = false;
  const alternatives = s.anyOf || s.oneOf;
  if (Array.isArray(alternatives)) {
    const real = alternatives.filter((a) => a.type !== "null");
    nullable = real.length < alternatives.length;
    if (real.length === 1) {
      const inner = resolveSchema(real[0], root).schema;
      s = {...inner, ...s};
      delete s.anyOf;
      delete s.oneOf;
    } else if (real.every((a) => "const" in a)) {
      s = {...s, enum: real.map((a) => a.const), type: typeof real[0].const === "number" ? "number" : "string"};
    }
  }
  if ("const" in s && !s.enum) s = {...s, enum: [s.const]};
  if (Array.isArray(s.type)) {
    nullable = nullable || s.type.includes("null");
    s = {...s, type: s.type.find((t) => t !== "null")};
  }
  return {schema: s, nullable};
}

function rangeText(s) {
  const lo = s.minimum !== undefined ? {v: s.minimum, open: false}
    : s.exclusiveMinimum !== undefined ? {v: s.exclusiveMinimum, open: true} : null;
  const hi = s.maximum !== undefined ? {v: s.maximum, open: false}
    : s.exclusiveMaximum !== undefined ? {v: s.exclusiveMaximum, open: true} : null;
  if (lo && hi && !lo.open && !hi.open) return `${fmtValue(lo.v)} – ${fmtValue(hi.v)}`;
  const parts = [];
  if (lo) parts.push(`${lo.open ? ">" : "≥"} ${fmtValue(lo.v)}`);
  if (hi) parts.push(`${hi.open ? "<" : "≤"} ${fmtValue(hi.v)}`);
  return parts.join(", ");
}

/**
 * Build the inputs of one JSON Schema object. Returns the elements, and adds one control per leaf
 * field to `controls`: {path, type, nullable, input, wrap, error, initial}.
 */
function schemaFields(objSchema, root, path, controls) {
  const props = objSchema.properties || {};
  const out = [];
  for (const [name, rawProp] of Object.entries(props)) {
    out.push([name, schemaField(name, rawProp, root, [...path, name], controls)]);
  }
  return out;
}

function schemaField(name, rawProp, root, path, controls) {
  const {schema: s, nullable} = resolveSchema(rawProp, root);
  const key = path.join(".");
  const idPart = path.join("-");
  // pydantic's made-up titles are Title Case of the name; a title set on purpose is kept.
  const label = FIELD_LABELS[name] ||
    (s.title && s.title.toLowerCase() !== humanize(name).toLowerCase() ? s.title : humanize(name));
  const hintText = [s.description || "", rangeText(s)].filter(Boolean).join(" · ");
  const error = h("span", {class: "field-error", id: `err-${idPart}`, "data-testid": "field-error",
    "data-field": key, role: "alert", hidden: true});

  if (s.type === "object" && s.properties) {
    const defaults = s.default || {};
    const inner = [];
    for (const [childName, childProp] of Object.entries(s.properties)) {
      const prop = {...childProp};
      if (defaults[childName] !== undefined) prop.default = defaults[childName];
      inner.push(schemaField(childName, prop, s, [...path, childName], controls));
    }
    return h("fieldset", {class: "field-group", id: `cfg-${idPart}`, "data-field": key},
      h("legend", {text: label}),
      hintText ? h("p", {class: "field-hint", text: hintText}) : null,
      h("div", {class: "field-grid"}, inner),
      error);
  }

  const id = `cfg-${idPart}`;
  const hintId = `hint-${idPart}`;
  const hint = hintText ? h("span", {class: "field-hint", id: hintId, text: hintText}) : null;
  const describedBy = [hint ? hintId : null, `err-${idPart}`].filter(Boolean).join(" ");
  let input;
  let type;
  const initial = s.default !== undefined ? s.default : null;

  if (s.type === "boolean") {
    type = "boolean";
    input = h("input", {type: "checkbox", id, name: key, checked: !!initial, "aria-describedby": describedBy});
    const wrap = h("div", {class: "field field-check", "data-field": key},
      h("label", {class: "check"}, input, h("span", {class: "field-label", text: label})),
      hint, error);
    controls.push({path, key, type, nullable, input, wrap, error, initial});
    return wrap;
  }
  if (Array.isArray(s.enum)) {
    type = "enum";
    input = h("select", {id, name: key, "aria-describedby": describedBy},
      nullable ? h("option", {value: "", text: "(none)"}) : null,
      s.enum.map((v, i) => h("option", {value: String(i), text: String(v)})));
    input.dataset.values = JSON.stringify(s.enum);
    const idx = s.enum.findIndex((v) => v === initial);
    input.value = idx >= 0 ? String(idx) : (nullable ? "" : "0");
  } else if (s.type === "integer" || s.type === "number") {
    type = s.type;
    const min = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
    const max = s.maximum !== undefined ? s.maximum : s.exclusiveMaximum;
    input = h("input", {type: "number", id, name: key, inputmode: s.type === "integer" ? "numeric" : "decimal",
      min, max, step: s.type === "integer" ? 1 : "any",
      placeholder: nullable ? "empty: none" : null, "aria-describedby": describedBy,
      value: initial === null || initial === undefined ? "" : String(initial)});
  } else if (s.type === "string") {
    type = "string";
    input = h("input", {type: "text", id, name: key, maxlength: s.maxLength, "aria-describedby": describedBy,
      placeholder: nullable ? "empty: none" : null, value: initial ?? ""});
  } else {
    type = "json";
    input = h("input", {type: "text", id, name: key, class: "mono", "aria-describedby": describedBy,
      value: initial === null || initial === undefined ? "" : JSON.stringify(initial)});
  }
  const wrap = h("div", {class: "field", "data-field": key},
    h("label", {class: "field-label", for: id, text: label}), input, hint, error);
  controls.push({path, key, type, nullable, input, wrap, error, initial});
  return wrap;
}

function controlValue(c) {
  const el = c.input;
  switch (c.type) {
    case "boolean": return {value: el.checked};
    case "enum": {
      if (el.value === "") return {value: null};
      return {value: JSON.parse(el.dataset.values)[Number(el.value)]};
    }
    case "integer":
    case "number": {
      const raw = el.value.trim();
      if (raw === "") return c.nullable ? {value: null} : {omit: true};
      const n = Number(raw);
      return {value: Number.isFinite(n) ? n : raw};
    }
    case "string": {
      if (el.value === "" && c.nullable) return {value: null};
      return {value: el.value};
    }
    default: {
      const raw = el.value.trim();
      if (raw === "") return c.nullable ? {value: null} : {omit: true};
      try { return {value: JSON.parse(raw)}; } catch { return {value: raw}; }
    }
  }
}

function resetControl(c) {
  const el = c.input;
  if (c.type === "boolean") el.checked = !!c.initial;
  else if (c.type === "enum") {
    const values = JSON.parse(el.dataset.values);
    const idx = values.findIndex((v) => v === c.initial);
    el.value = idx >= 0 ? String(idx) : (c.nullable ? "" : "0");
  } else if (c.type === "json") el.value = c.initial === null ? "" : JSON.stringify(c.initial);
  else el.value = c.initial === null || c.initial === undefined ? "" : String(c.initial);
}

async function viewNewJob(ctx, root) {
  setTitle("New training job");
  root.append(h("p", {class: "loading", text: "Loading the job settings…"}));
  const [kinds, datasets] = await Promise.all([api("/job-kinds"), api("/datasets").catch((err) => {
    if (err.silent) throw err;
    return [];
  })]);
  if (!ctx.alive()) return;
  root.replaceChildren();

  const kindNames = Object.keys(kinds);
  const kindSelect = h("select", {id: "job-kind", name: "kind"}, kindNames.map((k) => h("option", {value: k, text: kinds[k].title || k})));
  const datasetSelect = h("select", {id: "job-dataset", name: "dataset_id"},
    h("option", {value: "", text: "The default training data"}),
    datasets.map((d) => h("option", {value: String(d.id),
      text: `${d.name} (${d.kind.replace(/_/g, " ")}, ${fmtInt(d.item_count)} items)`})));
  const formError = notice("error", {id: "new-job-error", "data-testid": "new-job-error"});
  const fieldsBox = h("div", {class: "schema-fields", id: "job-config-fields"});
  const submit = h("button", {class: "btn btn-primary", type: "submit", id: "new-job-submit", text: "Queue the job"});
  const reset = h("button", {class: "btn btn-ghost", type: "button", id: "new-job-reset", text: "Reset to defaults"});
  let controls = [];

  function build() {
    controls = [];
    const root = kinds[kindSelect.value];
    const byName = new Map(schemaFields(root, root, [], controls));
    const used = new Set();
    const groups = [];
    for (const [title, names] of FIELD_GROUPS) {
      const items = names.filter((n) => byName.has(n)).map((n) => { used.add(n); return byName.get(n); });
      if (items.length) groups.push([title, items]);
    }
    const rest = [...byName.keys()].filter((n) => !used.has(n)).map((n) => byName.get(n));
    if (rest.length) groups.push([groups.length ? "Other settings" : "Settings", rest]);
    fieldsBox.replaceChildren(...groups.map(([title, items]) =>
      h("section", {class: "config-group card"}, h("h2", {text: title}), h("div", {class: "field-grid"}, items))));
    if (root.description) fieldsBox.prepend(h("p", {class: "muted", text: root.description}));
  }

  function clearErrors() {
    showNotice(formError, "");
    for (const el of $$(".field-error", form)) { el.hidden = true; el.textContent = ""; }
    for (const el of $$(".invalid", form)) el.classList.remove("invalid");
    for (const el of $$("[aria-invalid]", form)) el.removeAttribute("aria-invalid");
  }

  function showErrors(err) {
    const unplaced = [];
    let first = null;
    for (const {field, msg} of err.fields) {
      let key = field.replace(/^config\./, "");
      if (key === "dataset_id") {
        unplaced.push(`Data set: ${msg}`);
        continue;
      }
      // the nearest control or group named by the field path
      let target = null;
      while (key && !target) {
        target = form.querySelector(`.field-error[data-field="${CSS.escape(key)}"]`);
        if (!target) key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
      }
      if (!target) {
        unplaced.push(field && field !== "config" ? `${field}: ${msg}` : sentence(msg));
        continue;
      }
      target.textContent = target.textContent ? `${target.textContent}; ${msg}` : sentence(msg);
      target.hidden = false;
      const wrap = target.parentElement.closest("[data-field]") || target.parentElement;
      wrap.classList.add("invalid");
      const input = wrap.querySelector("input, select");
      if (input && wrap.tagName !== "FIELDSET") input.setAttribute("aria-invalid", "true");
      first = first || input || wrap;
    }
    const placed = err.fields.length - unplaced.length;
    const lines = [];
    if (placed) lines.push(`${placed === 1 ? "One setting needs" : `${placed} settings need`} a change; see the marked field${placed === 1 ? "" : "s"}.`);
    lines.push(...unplaced);
    if (!err.fields.length) lines.push(err.message);
    showNotice(formError, lines.join(" "));
    if (first && first.focus) first.focus();
    else formError.scrollIntoView({block: "center"});
  }

  const form = h("form", {id: "new-job-form", "data-testid": "new-job-form", novalidate: true, class: "stack"},
    h("section", {class: "card"},
      h("div", {class: "field-grid job-basics"},
        h("div", {class: "field"}, h("label", {class: "field-label", for: "job-kind", text: "Job kind"}), kindSelect),
        h("div", {class: "field"}, h("label", {class: "field-label", for: "job-dataset", text: "Data set"}), datasetSelect,
          h("span", {class: "field-hint", text: "the sketches to learn from"}),
          h("span", {class: "field-error", "data-field": "dataset_id", role: "alert", hidden: true})))),
    fieldsBox,
    formError,
    h("div", {class: "form-actions"}, submit, reset,
      h("a", {class: "btn btn-ghost", href: "#/jobs", text: "Cancel"})));

  kindSelect.addEventListener("change", () => { clearErrors(); build(); });
  reset.addEventListener("click", () => { clearErrors(); controls.forEach(resetControl); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const config = {};
    for (const c of controls) {
      const v = controlValue(c);
      if (v.omit) continue;
      let obj = config;
      for (const part of c.path.slice(0, -1)) obj = obj[part] ||= {};
      obj[c.path[c.path.length - 1]] = v.value;
    }
    const body = {kind: kindSelect.value, config,
      dataset_id: datasetSelect.value === "" ? null : Number(datasetSelect.value)};
    submit.disabled = true;
    submit.textContent = "Queueing…";
    try {
      const job = await api("/jobs", {method: "POST", body});
      if (!ctx.alive()) return;
      flash(`Job #${job.id} is queued.`);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      if (err.silent || !ctx.alive()) return;
      submit.disabled = false;
      submit.textContent = "Queue the job";
      if (err.status === 422) showErrors(err);
      else showNotice(formError, err.message);
    }
  });

  build();
  root.append(
    h("div", {class: "page-head"},
      h("div", {}, h("a", {class: "back", href: "#/jobs", text: "← Jobs"}), h("h1", {text: "New training job"}))),
    form);
}

// ---------------------------------------------------------------------------------------------
// One job, live

const LOSS_SERIES = [
  {key: "G", label: "G", color: "#d6307f"},
  {key: "cycle", label: "cycle", color: "#2f6fde"},
  {key: "identity", label: "identity", color: "#1f9d6b"},
  {key: "D_A", label: "D_A", color: "#e08a00"},
  {key: "D_B", label: "D_B", color: "#7a4cc2"},
];

function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * mag;
}

function tickLabel(v, step) {
  if (Math.abs(v) < step / 1e6) return "0";
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  if (Math.abs(v) >= 10000) return numberFmt.format(Math.round(v));
  return v.toFixed(Math.min(decimals, 6));
}

/** Draw the loss history on a canvas, sharp on any screen (device-pixel-ratio aware). */
function drawLossChart(canvas, history) {
  const rect = canvas.getBoundingClientRect();
  const cssW = Math.max(200, Math.round(rect.width || canvas.clientWidth || 600));
  const cssH = Math.max(160, Math.round(rect.height || canvas.clientHeight || 280));
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const font = getComputedStyle(document.body).fontFamily || "sans-serif";
  const styles = getComputedStyle(canvas);
  const ink = styles.getPropertyValue("--chart-ink").trim() || "#1f2433";
  const soft = styles.getPropertyValue("--chart-soft").trim() || "#6b7186";
  const grid = styles.getPropertyValue("--chart-grid").trim() || "#e6e8ef";

  const points = (history || []).filter((p) => Number.isFinite(p.step));
  const series = LOSS_SERIES.map((s) => ({...s,
    pts: points.filter((p) => Number.isFinite(p[s.key])).map((p) => [p.step, p[s.key]])}))
    .filter((s) => s.pts.length);
  canvas.dataset.points = String(points.length);
  canvas.dataset.series = series.map((s) => s.key).join(",");

  if (!series.length) {
    g.fillStyle = soft;
    g.font = `14px ${font}`;
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText("No losses yet: the chart fills in as the job trains.", cssW / 2, cssH / 2);
    canvas.setAttribute("aria-label", "Loss chart: no losses yet");
    return;
  }

  // Legend, top row (wraps when narrow).
  g.font = `12px ${font}`;
  g.textBaseline = "middle";
  g.textAlign = "left";
  let lx = 56;
  let ly = 14;
  for (const s of series) {
    const w = 26 + g.measureText(s.label).width + 16;
    if (lx + w > cssW - 8) { lx = 56; ly += 18; }
    g.strokeStyle = s.color;
    g.lineWidth = 3;
    g.beginPath();
    g.moveTo(lx, ly);
    g.lineTo(lx + 18, ly);
    g.stroke();
    g.fillStyle = ink;
    g.fillText(s.label, lx + 24, ly);
    lx += w;
  }

  const pad = {left: 56, right: 18, top: ly + 18, bottom: 38};
  const plotW = cssW - pad.left - pad.right;
  const plotH = cssH - pad.top - pad.bottom;
  let xMin = Infinity, xMax = -Infinity, yMin = 0, yMax = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.pts) {
      xMin = Math.min(xMin, x); xMax = Math.max(xMax, x);
      yMin = Math.min(yMin, y); yMax = Math.max(yMax, y);
    }
  }
  if (xMax === xMin) { xMin -= 1; xMax += 1; }
  if (yMax <= yMin) yMax = yMin + 1;
  const yStep = niceStep(yMax - yMin, 5);
  yMax = Math.ceil(yMax / yStep) * yStep;
  yMin = Math.floor(yMin / yStep) * yStep;
  const xStep = Math.max(1, niceStep(xMax - xMin, Math.max(2, Math.floor(plotW / 90))));
  const X = (x) => pad.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const Y = (y) => pad.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;

  // Grid and axes.
  g.lineWidth = 1;
  g.font = `11px ${font}`;
  g.fillStyle = soft;
  g.textAlign = "right";
  for (let v = yMin; v <= yMax + yStep / 2; v += yStep) {
    const y = Math.round(Y(v)) + 0.5;
    g.strokeStyle = grid;
    g.beginPath(); g.moveTo(pad.left, y); g.lineTo(pad.left + plotW, y); g.stroke();
    g.fillText(tickLabel(v, yStep), pad.left - 8, y);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep) {
    const x = Math.round(X(v)) + 0.5;
    g.strokeStyle = grid;
    g.beginPath(); g.moveTo(x, pad.top); g.lineTo(x, pad.top + plotH); g.stroke();
    g.strokeStyle = soft;
    g.beginPath(); g.moveTo(x, pad.top + plotH); g.lineTo(x, pad.top + plotH + 4); g.stroke();
    g.fillText(tickLabel(v, xStep), x, pad.top + plotH + 7);
  }
  g.strokeStyle = soft;
  g.beginPath();
  g.moveTo(pad.left + 0.5, pad.top);
  g.lineTo(pad.left + 0.5, pad.top + plotH + 0.5);
  g.lineTo(pad.left + plotW, pad.top + plotH + 0.5);
  g.stroke();
  g.fillStyle = soft;
  g.textAlign = "right";
  g.textBaseline = "bottom";
  g.fillText("step", pad.left + plotW, cssH - 2);
  g.save();
  g.translate(12, pad.top + plotH / 2);
  g.rotate(-Math.PI / 2);
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText("loss", 0, 0);
  g.restore();

  // The lines (dots too while there are few points).
  g.save();
  g.beginPath();
  g.rect(pad.left, pad.top - 4, plotW + 4, plotH + 8);
  g.clip();
  g.lineJoin = "round";
  g.lineCap = "round";
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = 2;
    g.beginPath();
    s.pts.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke();
    if (s.pts.length <= 40) {
      for (const [x, y] of s.pts) {
        g.beginPath();
        g.arc(X(x), Y(y), 2.6, 0, Math.PI * 2);
        g.fill();
      }
    }
  }
  g.restore();
  const last = points[points.length - 1];
  canvas.setAttribute("aria-label", `Loss chart over ${points.length} logged steps; at step ${last.step}: ` +
    series.map((s) => `${s.label} ${fmtValue(s.pts[s.pts.length - 1][1])}`).join(", "));
}

async function viewJob(ctx, root, idText) {
  const id = Number(idText);
  setTitle(`Job #${id}`);
  const status = h("span", {class: "badge", id: "job-status", "data-testid": "job-status", text: "…"});
  const cancelBtn = h("button", {class: "btn btn-danger", type: "button", id: "job-cancel", hidden: true, text: "Cancel job"});
  const retryBtn = h("button", {class: "btn btn-primary", type: "button", id: "job-retry", hidden: true, text: "Retry"});
  const note = h("span", {class: "muted small", id: "job-note"});
  const errorBox = h("div", {class: "notice notice-error", id: "job-error", role: "alert", hidden: true});
  const actionError = notice("error", {id: "job-action-error"});
  const modelLink = h("p", {class: "notice notice-ok", id: "job-model", hidden: true});
  const progress = h("progress", {id: "job-progress", "data-testid": "job-progress", max: 100, value: 0,
    "aria-label": "Training progress"});
  const pctText = h("span", {class: "big-num", id: "job-progress-text", text: "0 %"});
  const eta = h("span", {class: "muted", id: "job-eta"});
  const facts = h("dl", {class: "facts", id: "job-facts"});
  const losses = h("table", {class: "table table-compact", id: "job-losses", "data-testid": "job-losses"});
  const canvas = h("canvas", {id: "loss-chart", "data-testid": "loss-chart", class: "chart", role: "img",
    "aria-label": "Loss chart"});
  const sample = h("img", {id: "job-sample", "data-testid": "job-sample", class: "sample", alt: "The newest sample grid",
    hidden: true});
  const sampleEmpty = h("p", {class: "placeholder", id: "job-sample-empty", text: "No sample grid yet."});
  const sampleCaption = h("p", {class: "muted small", id: "job-sample-caption"});
  const log = h("pre", {class: "log", id: "job-log", "data-testid": "job-log", tabindex: "0"});
  const configPre = h("pre", {class: "log log-light", id: "job-config"});

  root.append(
    h("div", {class: "page-head"},
      h("div", {},
        h("a", {class: "back", href: "#/jobs", text: "← Jobs"}),
        h("h1", {}, `Job #${id} `, status, " ", note)),
      h("div", {class: "page-actions"}, cancelBtn, retryBtn)),
    errorBox, actionError, modelLink,
    h("div", {class: "job-grid"},
      h("section", {class: "card job-progress-card"},
        h("div", {class: "progress-head"}, pctText, eta),
        progress,
        facts),
      h("section", {class: "card job-losses-card"}, h("h2", {text: "Latest losses"}), losses),
      h("section", {class: "card job-chart-card"}, h("h2", {text: "Losses over training"}),
        h("div", {class: "chart-box"}, canvas)),
      h("section", {class: "card job-sample-card"}, h("h2", {text: "Latest samples"}),
        h("div", {class: "sample-box"}, sample, sampleEmpty), sampleCaption),
      h("section", {class: "card job-log-card"}, h("h2", {text: "Log"}), log),
      h("details", {class: "card job-config-card"}, h("summary", {text: "Configuration"}), configPre)));

  let job = null;
  let sampleKey = null;

  const observer = new ResizeObserver(() => { if (job) drawLossChart(canvas, job.metrics_history); });
  observer.observe(canvas.parentElement);
  ctx.onCleanup(() => observer.disconnect());

  sample.addEventListener("load", () => {
    sample.hidden = false;
    sampleEmpty.hidden = true;
    sample.classList.toggle("pixelated", sample.naturalWidth < 480);
  });
  sample.addEventListener("error", () => {
    if (!sample.naturalWidth) { sample.hidden = true; sampleEmpty.hidden = false; }
    sampleKey = null;  // try again on the next poll
  });

  function render(j) {
    const first = job === null;
    job = j;
    status.textContent = j.status;
    status.className = `badge badge-${j.status}`;
    status.dataset.status = j.status;
    note.textContent = j.cancel_requested && j.status === "running" ? "stopping at the next step…" : "";
    cancelBtn.hidden = !ACTIVE_STATUSES.has(j.status);
    cancelBtn.disabled = j.cancel_requested;
    retryBtn.hidden = !(j.status === "failed" || j.status === "cancelled");

    const pct = percent(j.progress);
    progress.value = pct;
    progress.setAttribute("aria-valuenow", String(pct));
    progress.setAttribute("aria-valuetext", `${pct} %`);
    pctText.textContent = `${pct} %`;
    const start = parseDate(j.started_at);
    const end = parseDate(j.finished_at);
    if (j.status === "running") {
      if (j.eta_seconds === null || j.eta_seconds === undefined) eta.textContent = "estimating the time left…";
      else if (j.eta_seconds < 1) eta.textContent = "finishing…";
      else eta.textContent = `about ${fmtDuration(j.eta_seconds)} left`;
    }
    else if (j.status === "queued") eta.textContent = "waiting for a worker";
    else if (start && end) eta.textContent = `${j.status} after ${fmtDuration((end - start) / 1000)}`;
    else eta.textContent = j.status;

    const fact = (label, value, attrs = {}) => [h("dt", {text: label}), h("dd", attrs, value)];
    facts.replaceChildren(...[
      fact("Step", `${fmtInt(j.step)} / ${fmtInt(j.total_steps)}`, {id: "job-step"}),
      fact("Epoch", fmtValue(j.epoch)),
      fact("Worker", j.worker || "–"),
      fact("Attempts", fmtInt(j.attempts)),
      fact("Created", timeAgo(j.created_at)),
      fact("Started", timeAgo(j.started_at)),
      end ? fact("Finished", timeAgo(j.finished_at)) : null,
      fact("Data set", j.dataset_id === null || j.dataset_id === undefined ? "default" : `#${j.dataset_id}`),
    ].flat().filter(Boolean));

    const entries = Object.entries(j.latest_losses || {});
    losses.replaceChildren(entries.length
      ? h("tbody", {}, entries.map(([k, v]) => h("tr", {}, h("th", {scope: "row", text: k}),
          h("td", {class: "num", text: fmtValue(v)}))))
      : h("tbody", {}, h("tr", {}, h("td", {class: "muted", text: "No losses yet."}))));

    drawLossChart(canvas, j.metrics_history);

    if (j.has_sample) {
      const key = `${j.step}-${j.attempts}-${j.status === "succeeded"}`;
      if (key !== sampleKey) {
        sampleKey = key;
        sample.src = `${API}/jobs/${id}/sample?step=${j.step}&t=${Date.now()}`;
        sampleCaption.textContent = `Updated at step ${fmtInt(j.step)} of ${fmtInt(j.total_steps)}.`;
      }
    } else {
      sampleEmpty.textContent = j.status === "queued" ? "No sample grid yet: the job is waiting for a worker."
        : "No sample grid yet.";
    }

    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.textContent = j.log_tail || "(nothing logged yet)";
    if (atBottom || first) log.scrollTop = log.scrollHeight;

    if (j.status === "failed" && j.error) {
      errorBox.replaceChildren(h("strong", {text: "The job failed. "}), j.error);
      errorBox.hidden = false;
    } else errorBox.hidden = true;

    if (j.model_version_id) {
      modelLink.replaceChildren("A model version was registered from this job. ",
        h("a", {href: `#/models/${j.model_version_id}`, id: "job-model-link", "data-testid": "job-model-link",
          text: "See it on the Models page →"}));
      modelLink.hidden = false;
    } else modelLink.hidden = true;

    configPre.textContent = JSON.stringify(j.config, null, 2);
  }

  const poller = ctx.poll(async () => {
    const j = await api(`/jobs/${id}`);
    if (!ctx.alive()) return false;
    render(j);
    return ACTIVE_STATUSES.has(j.status);
  }, JOB_POLL_MS);

  async function act(button, path, done) {
    button.disabled = true;
    showNotice(actionError, "");
    try {
      const j = await api(`/jobs/${id}/${path}`, {method: "POST"});
      if (!ctx.alive()) return;
      render(j);
      flash(done);
      poller.restart();
    } catch (err) {
      if (err.silent || !ctx.alive()) return;
      showNotice(actionError, err.message);
      poller.restart();
    } finally {
      button.disabled = false;
    }
  }
  cancelBtn.addEventListener("click", () => act(cancelBtn, "cancel", "Cancel requested."));
  retryBtn.addEventListener("click", () => act(retryBtn, "retry", "The job is queued again; it resumes from its last checkpoint."));
}

// ---------------------------------------------------------------------------------------------
// Models

function flattenMetrics(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flattenMetrics(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

async function viewModels(ctx, root, focusText) {
  setTitle("Models");
  const focus = focusText ? Number(focusText) : null;
  const message = notice("error", {id: "models-message", "data-testid": "models-message"});
  const rollbackBtn = h("button", {class: "btn", type: "button", id: "rollback", "data-testid": "rollback",
    text: "Roll back", title: "Serve the previously promoted version of the default drawing model again"});
  const serving = h("p", {class: "muted", id: "models-serving"});
  const list = h("div", {class: "model-list", id: "models-list"});
  root.append(
    h("div", {class: "page-head"},
      h("div", {}, h("h1", {text: "Model versions"}), serving),
      h("div", {class: "page-actions"}, rollbackBtn)),
    message, list);

  async function load() {
    const versions = await api("/models");
    if (!ctx.alive()) return;
    const active = versions.filter((v) => v.active);
    const ensemble = versions.filter((v) => v.in_ensemble);
    serving.textContent = (active.length ? `Serving ${active.map((v) => `${v.name} ${v.version}`).join(", ")}` +
      "; the bundled version of every other model." : "Serving the bundled models.") +
      (ensemble.length ? ` ${ensemble.length} version${ensemble.length === 1 ? "" : "s"} in the ensemble.` : "");
    if (!versions.length) {
      list.replaceChildren(h("div", {class: "empty card"},
        h("p", {text: "No model versions yet. A training job that succeeds registers one."}),
        h("a", {class: "btn btn-primary", href: "#/jobs/new", text: "New training job"})));
      return;
    }
    list.replaceChildren(...versions.map(modelCard));
    if (focus) {
      const card = list.querySelector(`[data-model-id="${focus}"]`);
      if (card) {
        card.classList.add("focused");
        card.scrollIntoView({block: "nearest"});
      }
    }
  }

  async function act(button, path, body, done) {
    showNotice(message, "");
    const buttons = $$("button", root);
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const out = await api(path, {method: "POST", body});
      if (!ctx.alive()) return;
      let text = done(out);
      if (out.loaded_here === false && out.serving_error) text += ` The API could not load it: ${out.serving_error}`;
      flash(text, out.serving_error ? "error" : "ok");
    } catch (err) {
      if (err.silent || !ctx.alive()) return;
      showNotice(message, err.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
    await load();
  }

  function modelCard(v) {
    const metrics = flattenMetrics(v.metrics);
    const promote = h("button", {class: "btn btn-primary btn-small", type: "button", "data-action": "promote",
      disabled: v.active, text: v.active ? "Serving" : "Promote"});
    promote.addEventListener("click", () => act(promote, `/models/${v.id}/promote`, undefined,
      () => `${v.name} ${v.version} is promoted.`));
    // Translation networks (CycleGAN, DiscoGAN, UNIT, line art) make ensembles; a doodle encoder's variations are its palettes.
    const ens = v.kind.endsWith("-sketch2anime") || v.in_ensemble
      ? h("button", {class: "btn btn-small", type: "button", "data-action": "ensemble",
          text: v.in_ensemble ? "Remove from ensemble" : "Add to ensemble"})
      : null;
    if (ens) ens.addEventListener("click", () => act(ens, `/models/${v.id}/ensemble`, {in_ensemble: !v.in_ensemble},
      () => (v.in_ensemble ? `${v.version} left the ensemble.` : `${v.version} joined the ensemble.`)));
    const back = v.active
      ? h("button", {class: "btn btn-small", type: "button", "data-action": "rollback",
          text: "Roll back", title: `Serve the version of ${v.name} promoted before this one`})
      : null;
    if (back) back.addEventListener("click", () => act(back, `/models/rollback?name=${encodeURIComponent(v.name)}`,
      undefined, (out) => (out.promoted ? `Rolled back: ${out.promoted.name} ${out.promoted.version} serves again.`
        : `Rolled back: the bundled ${v.name} serves again.`)));
    return h("article", {class: `card model-card${v.active ? " is-active" : ""}`, "data-model-id": v.id,
        "data-testid": "model-card"},
      h("header", {class: "model-head"},
        h("div", {},
          h("h2", {}, `${v.name} `, h("span", {class: "version", text: v.version})),
          h("p", {class: "muted small"}, `${v.kind} · ${v.members} member${v.members === 1 ? "" : "s"} · `,
            v.job_id ? h("a", {href: `#/jobs/${v.job_id}`, text: `job #${v.job_id}`}) : "uploaded",
            " · created ", timeAgo(v.created_at),
            v.promoted_at ? [" · promoted ", timeAgo(v.promoted_at)] : null)),
        h("div", {class: "badges"},
          v.active ? h("span", {class: "badge badge-active", "data-testid": "badge-active", text: "Active"}) : null,
          v.in_ensemble ? h("span", {class: "badge badge-ensemble", "data-testid": "badge-ensemble", text: "In ensemble"}) : null)),
      h("div", {class: "model-body"},
        h("div", {class: "model-metrics"},
          h("h3", {text: "Metrics"}),
          metrics.length
            ? h("dl", {class: "facts facts-metrics"}, metrics.slice(0, 18).map(([k, val]) =>
                [h("dt", {text: k, title: k}), h("dd", {class: "num", text: fmtValue(val)})]))
            : h("p", {class: "muted", text: "No metrics recorded."})),
        h("div", {class: "model-samples"},
          v.has_samples
            ? h("img", {class: "sample pixelated", loading: "lazy", alt: `Samples of ${v.name} ${v.version}`,
                src: `${API}/models/${v.id}/samples`, "data-testid": "model-samples"})
            : h("p", {class: "placeholder", text: "No sample grid."}))),
      h("footer", {class: "model-actions"}, promote, ens, back));
  }

  rollbackBtn.addEventListener("click", () => act(rollbackBtn, "/models/rollback", undefined,
    (out) => (out.promoted ? `Rolled back: ${out.promoted.name} ${out.promoted.version} serves again.`
      : "Rolled back: the bundled model serves again.")));
  await load();
}

// ---------------------------------------------------------------------------------------------
// Data sets

async function viewDatasets(ctx, root) {
  setTitle("Data sets");
  const nameInput = h("input", {id: "dataset-name", name: "name", required: true, maxlength: 200,
    placeholder: "e.g. smileys-2024", autocomplete: "off"});
  const fileInput = h("input", {id: "dataset-file", name: "file", type: "file", required: true,
    accept: ".zip,.ndjson,.npy"});
  const submit = h("button", {class: "btn btn-primary", type: "submit", id: "dataset-submit", text: "Upload"});
  const abortBtn = h("button", {class: "btn btn-ghost", type: "button", id: "upload-cancel", hidden: true, text: "Stop upload"});
  const bar = h("progress", {id: "upload-progress", "data-testid": "upload-progress", max: 100, value: 0});
  const barText = h("span", {class: "muted small", id: "upload-percent", text: ""});
  const barBox = h("div", {class: "upload-status", id: "upload-status", hidden: true}, bar, barText);
  const error = notice("error", {id: "dataset-error", "data-testid": "dataset-error"});
  const ok = notice("ok", {id: "dataset-ok"});
  const list = h("div", {class: "dataset-list", id: "datasets-list"});
  const form = h("form", {id: "dataset-form", class: "upload-form", novalidate: true},
    h("div", {class: "field-grid"},
      h("div", {class: "field"}, h("label", {class: "field-label", for: "dataset-name", text: "Name"}), nameInput),
      h("div", {class: "field"}, h("label", {class: "field-label", for: "dataset-file", text: "File"}), fileInput,
        h("span", {class: "field-hint", text: "a .zip of images, a Quick, Draw! .ndjson file or a numpy_bitmap .npy file"}))),
    h("div", {class: "form-actions"}, submit, abortBtn, barBox),
    error, ok);

  root.append(
    h("div", {class: "page-head"}, h("h1", {text: "Data sets"})),
    h("section", {class: "card"}, h("h2", {text: "Upload a data set"}), form),
    list);

  fileInput.addEventListener("change", () => {
    const f = fileInput.files[0];
    if (f && !nameInput.value.trim()) nameInput.value = f.name.replace(/\.[^.]+$/, "");
  });

  let xhr = null;
  ctx.onCleanup(() => { if (xhr) xhr.abort(); });
  abortBtn.addEventListener("click", () => { if (xhr) xhr.abort(); });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    showNotice(error, "");
    showNotice(ok, "");
    const file = fileInput.files[0];
    const name = nameInput.value.trim();
    if (!name) { showNotice(error, "Give the data set a name."); nameInput.focus(); return; }
    if (!file) { showNotice(error, "Choose a file to upload."); fileInput.focus(); return; }
    const body = new FormData();
    body.append("name", name);
    body.append("file", file, file.name);

    xhr = new XMLHttpRequest();
    const req = xhr;
    req.open("POST", `${API}/datasets`);
    req.withCredentials = true;
    req.setRequestHeader("Accept", "application/json");
    bar.value = 0;
    barText.textContent = `0 % of ${fmtBytes(file.size)}`;
    barBox.hidden = false;
    submit.disabled = true;
    abortBtn.hidden = false;
    req.upload.onprogress = (e) => {
      const total = e.lengthComputable ? e.total : file.size;
      const pct = total ? Math.min(100, Math.floor((e.loaded / total) * 100)) : 0;
      bar.value = pct;
      barText.textContent = `${pct} % · ${fmtBytes(Math.min(e.loaded, total))} of ${fmtBytes(total)}`;
    };
    req.upload.onload = () => {
      bar.value = 100;
      barText.textContent = "100 % · uploaded; checking the file…";
    };
    const finish = () => {
      submit.disabled = false;
      abortBtn.hidden = true;
      if (xhr === req) xhr = null;
    };
    req.onload = async () => {
      finish();
      if (!ctx.alive()) return;
      let data = null;
      try { data = JSON.parse(req.responseText); } catch { data = null; }
      if (req.status === 401) { sessionEnded(); return; }
      if (req.status >= 200 && req.status < 300) {
        bar.value = 100;
        barText.textContent = "100 % · done";
        showNotice(ok, `Data set “${data.name}” added: ${fmtInt(data.item_count)} items.`);
        form.reset();
        await load();
        return;
      }
      barBox.hidden = true;
      const what = {413: "Too large", 415: "Not a file kind that is accepted", 409: "Name taken", 422: "Refused"}[req.status]
        || `Refused (${req.status})`;
      showNotice(error, `${what}: ${readDetail(req.status, data, req.statusText || "the upload was refused").message}`);
    };
    req.onerror = () => {
      finish();
      barBox.hidden = true;
      showNotice(error, "The upload broke off: the server could not be reached, or it closed the connection.");
    };
    req.onabort = () => {
      finish();
      barBox.hidden = true;
      if (ctx.alive()) showNotice(error, "Upload stopped.");
    };
    req.send(body);
  });

  async function load() {
    const sets = await api("/datasets");
    if (!ctx.alive()) return;
    if (!sets.length) {
      list.replaceChildren(h("div", {class: "empty card"}, h("p", {text: "No data sets yet."})));
      return;
    }
    list.replaceChildren(...sets.map((d) => h("article", {class: "card dataset-card", "data-dataset-id": d.id,
        "data-testid": "dataset-card"},
      h("div", {class: "dataset-preview"},
        d.has_preview
          ? h("img", {class: "sample pixelated", loading: "lazy", alt: `The first items of ${d.name}`,
              src: `${API}/datasets/${d.id}/preview`, "data-testid": "dataset-preview"})
          : h("p", {class: "placeholder", text: "No preview"})),
      h("div", {class: "dataset-info"},
        h("h2", {}, d.name, " ", d.builtin ? h("span", {class: "badge badge-builtin", text: "built in"})
          : h("span", {class: "badge badge-uploaded", text: "uploaded"})),
        h("p", {class: "dataset-count"}, h("strong", {"data-testid": "dataset-count", text: fmtInt(d.item_count)}),
          ` item${d.item_count === 1 ? "" : "s"}`),
        h("p", {class: "muted small"}, d.kind.replace(/_/g, " "), " · ", timeAgo(d.created_at)),
        h("p", {class: "muted small mono", title: d.content_sha256, text: `sha256 ${d.content_sha256.slice(0, 12)}…`})))));
  }
  await load();
}

// ---------------------------------------------------------------------------------------------
// Queue

async function viewQueue(ctx, root) {
  setTitle("Queue");
  const counts = h("div", {class: "counts", id: "queue-counts"});
  const workers = h("tbody");
  const workersTable = h("table", {class: "table", id: "queue-workers", "data-testid": "queue-workers"},
    h("thead", {}, h("tr", {}, ["Worker", "Queues", "Last seen", "Running", "Up since"].map((t) => h("th", {scope: "col", text: t})))),
    workers);
  const noWorkers = h("p", {class: "empty", id: "queue-no-workers", hidden: true},
    "No worker has been seen lately. Start one with ", h("code", {text: "doodle2anime worker"}), ".");
  const running = h("div", {id: "queue-running"});
  const updated = h("span", {class: "muted small", id: "queue-updated"});
  const error = notice("error");
  root.append(
    h("div", {class: "page-head"}, h("h1", {text: "Queue"}), updated),
    error, counts,
    h("section", {class: "card card-flush"}, h("h2", {class: "card-title", text: "Workers"}),
      h("div", {class: "table-wrap"}, workersTable), noWorkers),
    h("section", {class: "card"}, h("h2", {text: "Running jobs"}), running));

  const COUNT_LABELS = [["queued", "Waiting"], ["running", "Running"], ["succeeded", "Succeeded"],
    ["failed", "Failed"], ["cancelled", "Cancelled"]];

  ctx.poll(async () => {
    let q;
    try {
      q = await api("/queue");
    } catch (err) {
      if (!err.silent && ctx.alive()) showNotice(error, err.message);
      throw err;
    }
    if (!ctx.alive()) return false;
    showNotice(error, "");
    counts.replaceChildren(...COUNT_LABELS.map(([key, label]) =>
      h("a", {class: `count count-${key}`, href: "#/jobs", "data-testid": `count-${key}`},
        h("span", {class: "count-num", id: `count-${key}`, text: fmtInt(q.counts[key] || 0)}),
        h("span", {class: "count-label", text: label}))));
    workers.replaceChildren(...q.workers.map((w) => h("tr", {"data-testid": "worker-row"},
      h("td", {class: "strong", text: w.name}),
      h("td", {}, (w.queues || []).map((name) => h("span", {class: "chip", text: name}))),
      h("td", {}, timeAgo(w.last_seen)),
      h("td", {}, w.current_job_id ? h("a", {href: `#/jobs/${w.current_job_id}`, text: `job #${w.current_job_id}`})
        : h("span", {class: "muted", text: "idle"})),
      h("td", {}, timeAgo(w.started_at)))));
    workersTable.hidden = q.workers.length === 0;
    noWorkers.hidden = q.workers.length > 0;
    running.replaceChildren(q.running.length
      ? h("ul", {class: "running-list"}, q.running.map((r) => h("li", {},
          h("a", {href: `#/jobs/${r.id}`, class: "strong", text: `Job #${r.id}`}),
          h("span", {class: "muted", text: r.worker || "–"}),
          progressBar(r.progress),
          h("span", {class: "muted small"}, "heartbeat ", timeAgo(r.heartbeat_at)))))
      : h("p", {class: "muted", text: "Nothing is running."}));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${QUEUE_POLL_MS / 1000} s`;
    return true;
  }, QUEUE_POLL_MS);
}

// ---------------------------------------------------------------------------------------------
// API keys

async function viewKeys(ctx, root) {
  setTitle("API keys");
  const nameInput = h("input", {id: "key-name", name: "name", required: true, maxlength: 200,
    placeholder: "e.g. school tablet app", autocomplete: "off"});
  const rateInput = h("input", {id: "key-rate", name: "rate_limit_per_minute", type: "number", min: 1, max: 100000,
    step: 1, value: "60", inputmode: "numeric"});
  const submit = h("button", {class: "btn btn-primary", type: "submit", id: "key-submit", text: "Create key"});
  const error = notice("error", {id: "key-error", "data-testid": "key-error"});
  const keyValue = h("input", {id: "new-key-value", "data-testid": "new-key-value", class: "mono", readonly: true,
    "aria-label": "The new API key", spellcheck: "false"});
  const copyBtn = h("button", {class: "btn", type: "button", id: "new-key-copy", text: "Copy"});
  const doneBtn = h("button", {class: "btn", type: "button", id: "new-key-dismiss", text: "I have copied it"});
  const keyBox = h("div", {class: "key-box", id: "new-key-box", "data-testid": "new-key-box", role: "alert", hidden: true},
    h("p", {class: "key-warning"}, h("strong", {text: "Copy this key now. "}),
      "It will not be shown again: only a hash of it is stored."),
    h("div", {class: "key-row"}, keyValue, copyBtn),
    h("div", {class: "form-actions"}, doneBtn));
  const showRevoked = h("input", {type: "checkbox", id: "keys-show-revoked"});
  const tbody = h("tbody");
  const table = h("table", {class: "table", id: "keys-table", "data-testid": "keys-table"},
    h("thead", {}, h("tr", {}, ["Name", "Key starts with", "Limit", "Created", "Last used", "Status", ""].map((t) =>
      h("th", {scope: "col", text: t})))), tbody);
  const empty = h("p", {class: "empty", id: "keys-empty", hidden: true, text: "No API keys yet."});
  const listError = notice("error", {id: "keys-list-error"});
  const form = h("form", {id: "key-form", class: "inline-form", novalidate: true},
    h("div", {class: "field"}, h("label", {class: "field-label", for: "key-name", text: "Name"}), nameInput),
    h("div", {class: "field field-narrow"}, h("label", {class: "field-label", for: "key-rate", text: "Requests per minute"}), rateInput),
    submit);

  root.append(
    h("div", {class: "page-head"}, h("h1", {text: "API keys"})),
    h("section", {class: "card"},
      h("h2", {text: "Create a key"}),
      h("p", {class: "muted", text: "Other apps send it in the X-API-Key header to call the drawing API."}),
      form, error, keyBox),
    h("section", {class: "card card-flush"},
      h("div", {class: "card-title-row"}, h("h2", {class: "card-title", text: "Keys"}),
        h("label", {class: "check small"}, showRevoked, h("span", {text: "Show revoked keys"}))),
      listError,
      h("div", {class: "table-wrap"}, table), empty));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showNotice(error, "");
    const name = nameInput.value.trim();
    if (!name) { showNotice(error, "Give the key a name, e.g. the app that will use it."); nameInput.focus(); return; }
    const rate = Number(rateInput.value || 60);
    submit.disabled = true;
    try {
      const created = await api("/api-keys", {method: "POST", body: {name, rate_limit_per_minute: rate}});
      if (!ctx.alive()) return;
      keyValue.value = created.key;
      copyBtn.textContent = "Copy";
      keyBox.hidden = false;
      keyValue.focus();
      keyValue.select();
      form.reset();
      rateInput.value = "60";
      await load();
    } catch (err) {
      if (!err.silent && ctx.alive()) showNotice(error, err.message);
    } finally {
      submit.disabled = false;
    }
  });

  copyBtn.addEventListener("click", async () => {
    keyValue.select();
    let copied = false;
    try {
      await navigator.clipboard.writeText(keyValue.value);
      copied = true;
    } catch {
      try { copied = document.execCommand("copy"); } catch { copied = false; }
    }
    copyBtn.textContent = copied ? "Copied ✓" : "Select and copy it by hand";
  });
  doneBtn.addEventListener("click", () => {
    keyValue.value = "";
    keyBox.hidden = true;
  });
  ctx.onCleanup(() => { keyValue.value = ""; });
  showRevoked.addEventListener("change", () => load());

  function revokeCell(k) {
    const cell = h("td", {class: "actions"});
    const ask = () => {
      cell.replaceChildren(h("span", {class: "confirm"},
        h("span", {class: "small", text: `Revoke “${k.name}”? Apps using it stop working.`}),
        h("button", {class: "btn btn-danger btn-small", type: "button", "data-action": "confirm-revoke",
          onclick: revoke, text: "Yes, revoke"}),
        h("button", {class: "btn btn-ghost btn-small", type: "button", "data-action": "cancel-revoke",
          onclick: idle, text: "Keep it"})));
      cell.querySelector("[data-action=cancel-revoke]").focus();
    };
    const idle = () => cell.replaceChildren(h("button", {class: "btn btn-small btn-danger-ghost", type: "button",
      "data-action": "revoke", onclick: ask, text: "Revoke"}));
    const revoke = async () => {
      $$("button", cell).forEach((b) => { b.disabled = true; });
      try {
        await api(`/api-keys/${k.id}`, {method: "DELETE"});
        if (!ctx.alive()) return;
        flash(`Key “${k.name}” is revoked.`);
        await load();
      } catch (err) {
        if (err.silent || !ctx.alive()) return;
        showNotice(listError, err.message);
        idle();
      }
    };
    if (k.revoked_at) cell.append(h("span", {class: "muted small", text: "revoked " + fmtAgo(k.revoked_at)}));
    else idle();
    return cell;
  }

  async function load() {
    const keys = await api(`/api-keys${showRevoked.checked ? "?include_revoked=true" : ""}`);
    if (!ctx.alive()) return;
    showNotice(listError, "");
    tbody.replaceChildren(...keys.map((k) => h("tr", {"data-key-id": k.id, "data-testid": "key-row"},
      h("td", {class: "strong", text: k.name}),
      h("td", {}, h("code", {text: `${k.prefix}…`})),
      h("td", {class: "num", text: `${fmtInt(k.rate_limit_per_minute)}/min`}),
      h("td", {}, timeAgo(k.created_at)),
      h("td", {}, k.last_used_at ? timeAgo(k.last_used_at) : h("span", {class: "muted", text: "never"})),
      h("td", {}, k.revoked_at ? badge("revoked") : badge("live", "active")),
      revokeCell(k))));
    table.hidden = keys.length === 0;
    empty.hidden = keys.length > 0;
  }
  await load();
}

// ---------------------------------------------------------------------------------------------
// Start

$("#logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
