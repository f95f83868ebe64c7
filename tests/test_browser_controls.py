"""The drawing page with the shipped default model (the doodle encoder on the StyleGAN prior), in
a real Chromium: the page shows the model's controls, "New colours" asks for another palette of
the same face, and the "Like my drawing / Prettier" slider sends ``follow`` and changes the face."""

from __future__ import annotations

import time

import pytest

from conftest import CHROMIUM
from procs import env_for, start_api

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (set D2A_CHROMIUM to another binary)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

from test_browser import WIDE, Page, draw_face  # noqa: E402 - after the skips

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The app serving the project's own models, on a scratch database."""
    state = tmp_path_factory.mktemp("controls")
    env = env_for(state, D2A_PROVIDERS='["CPUExecutionProvider"]', D2A_INTRA_OP_THREADS="1",
                  D2A_MODEL_POLL_S="0", D2A_LOG_LEVEL="warning", D2A_SECRET_KEY="browser-test-secret")
    proc, base = start_api(env, state / "api.log")
    try:
        yield base
    finally:
        proc.stop()


def _next_result(p: Page, before_requests: int, before_src: str, timeout: float = 20) -> tuple[dict, dict]:
    """Waits for a translate request after the first ``before_requests`` and for the picture
    it brings; returns (that request's body, the shown result)."""
    deadline = time.monotonic() + timeout
    while len(p.translates) <= before_requests:
        assert time.monotonic() < deadline, "no new translate request was sent"
        p.page.wait_for_timeout(50)
    body = p.translates[-1].post_data_json
    while True:
        result = p.wait_result()
        if result["src"] != before_src:
            return body, result
        assert time.monotonic() < deadline, "the picture did not change"
        p.page.wait_for_timeout(50)


def test_new_colours_and_the_follow_slider(browser, base_url):
    context = browser.new_context(viewport=WIDE, device_scale_factor=1)
    p = Page(context.new_page(), base_url)
    try:
        controls = p.page.locator("#controls")
        assert controls.is_visible() and p.page.locator("#new-colours").is_visible()
        slider = p.page.locator("#follow")
        assert slider.is_visible() and slider.get_attribute("aria-valuetext") == "mostly like my drawing"

        draw_face(p)
        first = p.wait_result()
        body = p.translates[-1].post_data_json
        assert body["follow"] == pytest.approx(0.75) and "seed" not in body and "model" not in body

        n = len(p.translates)
        p.page.locator("#new-colours").click()
        body, coloured = _next_result(p, n, first["src"])
        assert isinstance(body["seed"], int) and body["seed"] >= 0

        n = len(p.translates)
        slider.fill("100")  # all the way to "Prettier"
        body, prettier = _next_result(p, n, coloured["src"])
        assert body["follow"] == pytest.approx(0.0)
        assert slider.get_attribute("aria-valuetext") == "extra pretty"
        assert len({first["src"], coloured["src"], prettier["src"]}) == 3
    finally:
        context.close()
    assert not p.failed, p.failed
