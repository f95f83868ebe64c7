"""The admin dashboard (frontend/admin/) in a real Chromium, against the real API and a real
Celery worker, each started as its own process (tests/procs.py).

- an anonymous visit ends on the login form; a wrong password shows an error and stays there;
- the main run: log in, fill the "New training job" form generated from the JSON Schema (a bad
  value first, to see the 422 next to its field), queue a tiny job, and watch the job page
  update itself to 100 %, a loaded sample grid, a drawn loss chart and "succeeded"; then
  promote the model version it registered, put it in the ensemble and roll back (the second
  roll back is refused and its 409 detail shown);
- data sets: an upload with the progress bar, and a refused one with the API's reason;
- the queue page sees the worker and refreshes by itself;
- API keys: create (shown once), revoke with confirmation.

Set D2A_SCREENSHOTS=1 to also save docs/img/dashboard_*.png.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest

from a11y import assert_focus_ring, axe_violations, tab_through, unnamed_buttons
from conftest import CHROMIUM, ROOT, wait_for_function
from procs import env_for, start_api, start_worker

SHOTS_DIR = ROOT / "docs" / "img"
SHOTS = os.environ.get("D2A_SCREENSHOTS") == "1"

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (set D2A_CHROMIUM to another binary)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
expect = sync_api.expect

pytestmark = pytest.mark.browser

ADMIN = ("admin", "correct horse battery")
WIDE = {"width": 1280, "height": 860}
TINY = {"image_size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1, "batch_size": 1, "steps": 6, "decay_steps": 2,
        "checkpoint_every": 2, "sample_every": 2, "anime_limit": 32, "eval_count": 4, "log_every": 1}
TINY_MIX = {"quickdraw": 0.5, "synthetic": 0.5, "edges": 0}
JOB_TIMEOUT_S = 300

expect.set_options(timeout=15_000)


# ---------------------------------------------------------------------------------------------
# Processes, browser, helpers


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The API and one worker, with their state in a scratch folder; yields (base URL, api, worker)."""
    state = tmp_path_factory.mktemp("dashboard")
    env = env_for(state, D2A_ADMIN_USERNAME=ADMIN[0], D2A_ADMIN_PASSWORD=ADMIN[1])
    api, base = start_api(env, state / "api.log")
    worker = start_worker(env, state / "worker.log", "dash")  # boots while the first tests run
    try:
        yield base, api, worker
    finally:
        worker.discard()
        api.stop()


@pytest.fixture
def page(browser, deployment):
    """A fresh context (no cookie) and page; fails the test on any uncaught script error."""
    context = browser.new_context(viewport=WIDE, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    try:
        yield pg
        assert not errors, f"script errors on the page: {errors}"
    finally:
        context.close()


def admin_url(base: str, route: str = "") -> str:
    return f"{base}/admin/{route}"


def log_in(page, base: str, route: str) -> None:
    """Open ``route`` logged out, log in on the form it sends to, and land back on ``route``."""
    page.goto(admin_url(base, route))
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#login-username", ADMIN[0])
    page.fill("#login-password", ADMIN[1])
    page.click("#login-submit")
    wait_for_function(page, "(r) => location.hash === r", arg=route)
    expect(page.locator("#main-nav")).to_be_visible()
    expect(page.locator("#who-name")).to_have_text(ADMIN[0])


def shot(page, name: str) -> None:
    if SHOTS:
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the sticky bar at the top of a full-page shot
        page.screenshot(path=str(SHOTS_DIR / f"dashboard_{name}.png"), full_page=True)


# ---------------------------------------------------------------------------------------------
# Login


def test_anonymous_visit_ends_on_the_login_page(page, deployment):
    base, _, _ = deployment
    page.goto(admin_url(base, "#/jobs"))
    wait_for_function(page, "location.hash === '#/login'")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#main-nav")).to_be_hidden()
    expect(page.locator("#jobs-table")).to_have_count(0)


def test_wrong_password_shows_an_error_and_stays_on_login(page, deployment):
    base, _, _ = deployment
    page.goto(admin_url(base, "#/login"))
    page.fill("#login-username", ADMIN[0])
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
    assert page.evaluate("location.hash") == "#/login"
    expect(page.locator("#main-nav")).to_be_hidden()
    expect(page.locator("#login-password")).to_have_value("")
    shot(page, "login")


# ---------------------------------------------------------------------------------------------
# A training job from the form to a promoted model


def _first_field(schema: dict, want) -> str | None:
    for name, prop in schema["properties"].items():
        if want(prop):
            return name
    return None


def test_new_job_form_runs_a_job_live_to_a_model(page, browser, deployment):
    base, _, worker = deployment
    log_in(page, base, "#/jobs")
    page.click("#new-job-link")
    wait_for_function(page, "location.hash === '#/jobs/new'")
    form = page.locator("#new-job-form")
    expect(form).to_be_visible()

    # The form is the schema: limits, defaults, checkboxes, selects and the nested mix group.
    schema = page.request.get(f"{base}/api/v1/admin/job-kinds").json()["cyclegan"]
    size = schema["properties"]["image_size"]
    image_size = page.locator("#cfg-image_size")
    assert image_size.get_attribute("type") == "number"
    assert image_size.get_attribute("min") == str(size["minimum"])
    assert image_size.get_attribute("max") == str(size["maximum"])
    assert image_size.get_attribute("step") == "1"
    expect(image_size).to_have_value(str(size["default"]))
    boolean = _first_field(schema, lambda p: p.get("type") == "boolean")
    if boolean:
        box = page.locator(f"#cfg-{boolean}")
        assert box.get_attribute("type") == "checkbox"
        assert box.is_checked() == schema["properties"][boolean]["default"]
    enum = _first_field(schema, lambda p: "enum" in p)
    if enum:
        options = page.locator(f"#cfg-{enum} option").all_inner_texts()
        assert options == schema["properties"][enum]["enum"]
    expect(page.locator("fieldset#cfg-mix #cfg-mix-quickdraw")).to_have_value("0.5")
    expect(page.locator("#job-dataset option").first).to_have_attribute("value", "")

    # A value under the minimum: the API's 422 is shown next to that field, and nothing is queued.
    image_size.fill("8")
    page.click("#new-job-submit")
    error = page.locator("#err-image_size")
    expect(error).to_be_visible()
    expect(error).to_contain_text(str(size["minimum"]))
    expect(image_size).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#new-job-error")).to_be_visible()
    assert page.evaluate("location.hash") == "#/jobs/new"
    assert page.request.get(f"{base}/api/v1/admin/jobs").json() == []
    shot(page, "new_job")

    # The tiny config, through the form.
    for name, value in TINY.items():
        page.fill(f"#cfg-{name}", str(value))
    for name, value in TINY_MIX.items():
        page.fill(f"#cfg-mix-{name}", str(value))
    page.click("#new-job-submit")
    wait_for_function(page, "/^#\\/jobs\\/\\d+$/.test(location.hash)")
    job_id = int(page.evaluate("location.hash").rsplit("/", 1)[1])
    submitted = page.request.get(f"{base}/api/v1/admin/jobs/{job_id}").json()
    assert {k: submitted["config"][k] for k in TINY} == TINY
    assert submitted["config"]["mix"] == {k: float(v) for k, v in TINY_MIX.items()}

    # The job page follows the job by itself: no reload (the marker survives), and the status
    # seen moves from queued/running to a finished one.
    page.evaluate("window.__no_reload = true")
    status = page.locator("#job-status")
    seen: list[str] = []
    etas: set[str] = set()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        # Both read in one go: the page may move on between two separate reads.
        text, eta = page.evaluate("[document.querySelector('#job-status').innerText.trim(),"
                                  " document.querySelector('#job-eta').innerText]")
        if not seen or seen[-1] != text:
            seen.append(text)
        if text == "running":
            etas.add(eta)
        if text in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the job page did not reach a finished status in {JOB_TIMEOUT_S} s; seen {seen}\n{worker.tail()}")
    assert seen[-1] == "succeeded", f"{seen}: {page.locator('#job-error').inner_text()}\n{worker.tail()}"
    assert set(seen[:-1]) & {"queued", "running"}, seen
    assert page.evaluate("window.__no_reload === true"), "the job page reloaded itself"
    duration = r"(\d+ h )?(\d+ min ?)?(\d+ s)?"
    assert all(re.fullmatch(rf"about {duration} left|estimating the time left…|finishing…", e) for e in etas), sorted(etas)
    assert re.fullmatch(rf"succeeded after ({duration}|under 1 s)", page.locator("#job-eta").inner_text())

    # 100 %, step 6 / 6, the sample grid loaded, losses and the chart drawn, the log and the model link.
    expect(page.locator("#job-progress-text")).to_have_text("100 %")
    assert page.locator("#job-progress").evaluate("p => p.value") == 100
    expect(page.locator("#job-progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#job-step")).to_have_text("6 / 6")
    wait_for_function(page, "() => { const i = document.querySelector('#job-sample');"
                           " return i && i.complete && i.naturalWidth > 0 && !i.hidden; }")
    assert "/sample?" in page.locator("#job-sample").get_attribute("src")
    assert page.locator("#job-losses th").count() >= 3
    chart = page.locator("#loss-chart")
    assert int(chart.get_attribute("data-points")) >= 2
    assert {"G", "cycle", "D_A", "D_B"} <= set(chart.get_attribute("data-series").split(","))
    pink = chart.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] > 200 && Math.abs(d[i] - 0xd6) < 30 && Math.abs(d[i + 1] - 0x30) < 30 && Math.abs(d[i + 2] - 0x7f) < 30) n++;
        return n; }""")
    assert pink > 30, f"the G line is not on the chart ({pink} pixels of its colour)"
    expect(page.locator("#job-log")).to_contain_text("registered")
    expect(page.locator("#job-cancel")).to_be_hidden()
    expect(page.locator("#job-retry")).to_be_hidden()
    expect(page.locator("#job-error")).to_be_hidden()
    model_link = page.locator("#job-model-link")
    expect(model_link).to_be_visible()

    # Polling stops once the job is finished.
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if re.search(rf"/jobs/{job_id}$", r.url) else None)
    page.wait_for_timeout(3500)
    assert polls == [], f"the finished job is still polled: {polls}"
    shot(page, "job")

    # On a 2x screen the chart's backing store is twice its CSS size (sharp lines).
    hi = browser.new_context(viewport=WIDE, device_scale_factor=2, storage_state=page.context.storage_state())
    try:
        p2 = hi.new_page()
        p2.goto(admin_url(base, f"#/jobs/{job_id}"))
        wait_for_function(p2, "() => Number(document.querySelector('#loss-chart')?.dataset.points) >= 2")
        width, css = p2.locator("#loss-chart").evaluate("c => [c.width, c.getBoundingClientRect().width]")
        assert width == round(css * 2), (width, css)
    finally:
        hi.close()

    # The model version: promote, ensemble, roll back; the refused second roll back says why.
    model_link.click()
    wait_for_function(page, "/^#\\/models\\/\\d+$/.test(location.hash)")
    version_id = page.evaluate("location.hash").rsplit("/", 1)[1]
    card = page.locator(f'[data-model-id="{version_id}"]')
    expect(card).to_be_visible()
    expect(card).to_contain_text(f"job{job_id}")
    card.locator('[data-testid="model-samples"]').scroll_into_view_if_needed()
    wait_for_function(page, "(id) => { const i = document.querySelector(`[data-model-id=\"${id}\"] img`);"
                           " return i && i.complete && i.naturalWidth > 0; }", arg=version_id)
    expect(card.locator('[data-testid="badge-active"]')).to_have_count(0)
    card.locator('[data-action="promote"]').click()
    expect(card.locator('[data-testid="badge-active"]')).to_have_text("Active")
    expect(card.locator('[data-action="promote"]')).to_be_disabled()
    card.locator('[data-action="ensemble"]').click()
    expect(card.locator('[data-testid="badge-ensemble"]')).to_have_text("In ensemble")
    expect(card.locator('[data-action="ensemble"]')).to_have_text("Remove from ensemble")
    expect(page.locator("#models-message")).to_be_hidden()
    shot(page, "models")
    card.locator('[data-action="rollback"]').click()  # this model's roll back
    expect(card.locator('[data-testid="badge-active"]')).to_have_count(0)
    expect(page.locator("#models-serving")).to_contain_text("bundled")
    page.click("#rollback")  # the default drawing model's: nothing was promoted
    expect(page.locator("#models-message")).to_be_visible()
    expect(page.locator("#models-message")).to_contain_text("nothing to roll back")

    # The jobs list: the job with its badge and a full progress bar.
    page.click('[data-testid="nav-jobs"]')
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row.locator(".badge")).to_have_text("succeeded")
    assert row.locator("progress").evaluate("p => p.value") == 100
    expect(row).to_contain_text("6 / 6")
    shot(page, "jobs")


# ---------------------------------------------------------------------------------------------
# Data sets, queue, API keys


def test_dataset_upload_with_progress_and_refusal(page, deployment, tmp_path):
    base, _, _ = deployment
    log_in(page, base, "#/datasets")
    wait_for_function(page, "document.querySelector('#datasets-list')?.children.length > 0")  # listed
    before = page.locator('[data-testid="dataset-card"]').count()

    bad = tmp_path / "notes.txt"
    bad.write_text("not a data set")
    page.fill("#dataset-name", "notes")
    page.set_input_files("#dataset-file", str(bad))
    page.click("#dataset-submit")
    expect(page.locator("#dataset-error")).to_be_visible()
    expect(page.locator("#dataset-error")).to_contain_text(".npy")
    assert page.locator('[data-testid="dataset-card"]').count() == before

    rng = np.random.default_rng(0)
    good = tmp_path / "scribbles.npy"
    np.save(good, rng.integers(0, 256, (3000, 784), dtype=np.uint8))  # about 2.4 MB
    page.fill("#dataset-name", "")
    page.set_input_files("#dataset-file", str(good))
    expect(page.locator("#dataset-name")).to_have_value("scribbles")  # named after the file
    page.click("#dataset-submit")
    expect(page.locator("#dataset-ok")).to_contain_text("3,000 items")
    expect(page.locator("#upload-progress")).to_be_visible()
    assert page.locator("#upload-progress").evaluate("p => p.value") == 100
    expect(page.locator("#upload-percent")).to_contain_text("100 %")
    expect(page.locator("#dataset-error")).to_be_hidden()
    card = page.locator('[data-testid="dataset-card"]', has_text="scribbles")
    expect(card).to_be_visible()
    expect(card.locator('[data-testid="dataset-count"]')).to_have_text("3,000")
    wait_for_function(page, "() => [...document.querySelectorAll('[data-testid=dataset-preview]')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "datasets")

    # the same name again: refused, with the API's reason
    page.fill("#dataset-name", "scribbles")
    page.set_input_files("#dataset-file", str(good))
    page.click("#dataset-submit")
    expect(page.locator("#dataset-error")).to_contain_text("exists already")


def test_queue_page_shows_the_worker_and_refreshes(page, deployment):
    base, _, worker = deployment
    log_in(page, base, "#/queue")
    row = page.locator('[data-testid="worker-row"]', has_text="dash@")
    expect(row).to_be_visible(timeout=60_000)
    expect(row).to_contain_text("training")
    for key in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert re.fullmatch(r"\d+", page.locator(f"#count-{key}").inner_text()), key
    first = page.locator("#queue-updated").inner_text()
    wait_for_function(page, "(t) => document.querySelector('#queue-updated').textContent !== t", arg=first,
                           timeout=8000)
    shot(page, "queue")

    # logging out ends the session: the login form, no nav, and the API says 401
    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#main-nav")).to_be_hidden()
    assert page.request.get(f"{base}/api/v1/admin/me").status == 401


def test_api_keys_create_once_and_revoke_with_confirmation(page, deployment):
    base, _, _ = deployment
    log_in(page, base, "#/keys")
    page.fill("#key-name", "school tablet app")
    page.fill("#key-rate", "30")
    page.click("#key-submit")
    box = page.locator("#new-key-box")
    expect(box).to_be_visible()
    expect(box).to_contain_text("will not be shown again")
    key = page.locator("#new-key-value").input_value()
    assert len(key) >= 20
    row = page.locator('[data-testid="key-row"]', has_text="school tablet app")
    expect(row).to_be_visible()
    expect(row).to_contain_text("30/min")
    prefix = row.locator("code").inner_text().rstrip("…")
    assert prefix and key.startswith(prefix)
    # the list never has the key itself
    assert key not in page.locator("#keys-table").inner_text()
    shot(page, "keys")

    page.click("#new-key-dismiss")
    expect(box).to_be_hidden()
    assert page.locator("#new-key-value").input_value() == ""

    row.locator('[data-action="revoke"]').click()
    row.locator('[data-action="cancel-revoke"]').click()  # changed my mind: nothing happens
    expect(row).to_be_visible()
    expect(row.locator('[data-action="revoke"]')).to_be_visible()
    row.locator('[data-action="revoke"]').click()
    expect(row).to_contain_text("Apps using it stop working")
    row.locator('[data-action="confirm-revoke"]').click()
    expect(page.locator('[data-testid="key-row"]', has_text="school tablet app")).to_have_count(0)
    page.check("#keys-show-revoked")
    revoked = page.locator('[data-testid="key-row"]', has_text="school tablet app")
    expect(revoked).to_be_visible()
    expect(revoked.locator(".badge")).to_have_text("revoked")
    listed = page.request.get(f"{base}/api/v1/admin/api-keys?include_revoked=true").json()
    assert [k["revoked_at"] is not None for k in listed if k["name"] == "school tablet app"] == [True]


# ---------------------------------------------------------------------------------------------
# Accessibility


def test_the_dashboard_passes_axe(page, deployment):
    """No serious or critical axe-core violation on the login form and the jobs list."""
    base, _, _ = deployment
    page.goto(admin_url(base, "#/login"))
    expect(page.locator("#login-form")).to_be_visible()
    assert axe_violations(page) == []
    log_in(page, base, "#/jobs")
    expect(page.locator("#view h1, #view h2").first).to_be_visible()
    assert axe_violations(page) == []


def test_the_dashboard_names_its_buttons_and_works_from_the_keyboard(page, deployment):
    """The jobs list: named buttons, and the keyboard reaches the sections and Log out, with a
    focus ring."""
    base, _, _ = deployment
    log_in(page, base, "#/jobs")
    expect(page.locator("#view h1, #view h2").first).to_be_visible()
    assert unnamed_buttons(page) == []
    reached = tab_through(page)
    assert "logout" in reached, reached
    assert len(reached) >= 7, reached  # the brand, five sections, Log out
    page.locator("#logout").focus()
    assert_focus_ring(page, "#logout")  # (which takes the focus away again)
    page.locator("#logout").focus()
    page.keyboard.press("Enter")  # Log out, from the keyboard
    wait_for_function(page, "location.hash === '#/login'")
