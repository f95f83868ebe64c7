"""The photo page in a real Chromium with the shipped photo model: a held-out photo picked from
a file, and one taken with the camera (Chromium's fake camera plays the held-out photo), become
an anime face composited over the photo; a photo without a face gets a friendly message; the
page says in plain words that nothing is kept, and passes axe-core.

Set D2A_SCREENSHOTS=1 to also save docs/img/photo_page.png."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from a11y import axe_violations
from conftest import CHROMIUM, ROOT, wait_for_function
from procs import env_for, start_api

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (set D2A_CHROMIUM to another binary)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

pytestmark = pytest.mark.browser
HELD_OUT = 1800  # a face photo no model trained on (photos [1700, 1924) are held out)


@pytest.fixture(scope="module")
def photo(data_dir) -> np.ndarray:
    from training.train_selfie import load_photos

    return load_photos(data_dir, 256)[HELD_OUT]


def y4m(image: np.ndarray, path) -> None:
    """A one-frame Y4M video (what Chromium's fake camera plays) of an RGB image."""
    rgb = image.astype(np.float32)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    u = (rgb[..., 2] - y) * 0.564 + 128
    v = (rgb[..., 0] - y) * 0.713 + 128
    h, w = y.shape
    small = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    planes = [np.clip(p, 0, 255).astype(np.uint8).tobytes() for p in (y, small(u), small(v))]
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + b"".join(planes))


@pytest.fixture(scope="module")
def camera_browser(tmp_path_factory, photo):
    video = tmp_path_factory.mktemp("camera") / "face.y4m"
    y4m(photo, video)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    assert (ROOT / "models" / "selfie2anime" / "manifest.json").is_file(), "the shipped photo model is missing"
    state = tmp_path_factory.mktemp("photo_page")
    env = env_for(state, D2A_PROVIDERS='["CPUExecutionProvider"]', D2A_MODEL_POLL_S="0", D2A_LOG_LEVEL="warning",
                  D2A_EMBEDDED_WORKER="0")
    proc, base = start_api(env, state / "api.log")
    try:
        yield base
    finally:
        proc.stop()


def _open(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1,
                                  permissions=["camera"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base_url + "/photo/")
    page.wait_for_selector("#start-camera")
    return context, page, errors


def _wait_done(page) -> None:
    wait_for_function(page, """() => document.getElementById('result-frame').getAttribute('aria-busy') === 'false'
        && document.getElementById('message').dataset.kind !== 'info'
           || /couldn't find a face/.test(document.getElementById('status').textContent)""", timeout=30000)


def _shown(page) -> np.ndarray:
    src = page.get_attribute("#result", "src")
    assert src and src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def test_a_picked_photo_becomes_an_anime_face_over_it(camera_browser, base_url, photo, tmp_path):
    context, page, errors = _open(camera_browser, base_url)
    try:
        privacy = page.inner_text("#privacy")
        assert "never save it" in privacy and "not written to disk" in privacy
        path = tmp_path / "me.jpg"
        Image.fromarray(photo).save(path, quality=92)
        page.set_input_files("#file", str(path))
        _wait_done(page)
        assert "Ta-da" in page.inner_text("#status")
        out = _shown(page)
        assert out.shape == photo.shape
        changed = np.abs(out.astype(int) - photo).mean(axis=2) > 30
        assert 0.1 < changed.mean() < 0.97     # the face painted over, the photo around it kept
        page.click("#view-anime")
        anime = _shown(page)
        assert anime.shape[0] == anime.shape[1] and anime.std() > 10
        assert not page.is_disabled("#download")
        if os.environ.get("D2A_SCREENSHOTS") == "1":  # docs/img/photo_page.png for the docs
            page.click("#view-composite")
            page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
            page.screenshot(path=str(ROOT / "docs" / "img" / "photo_page.png"), full_page=True)
        assert axe_violations(page) == []
    finally:
        context.close()
    assert not errors, errors


def test_a_photo_taken_with_the_camera(camera_browser, base_url):
    context, page, errors = _open(camera_browser, base_url)
    try:
        page.click("#start-camera")
        wait_for_function(page, "() => document.getElementById('camera').videoWidth > 0", timeout=10000)
        page.click("#snap")
        _wait_done(page)
        assert "Ta-da" in page.inner_text("#status"), page.inner_text("#status")
        assert _shown(page).shape[:2] == (256, 256)
    finally:
        context.close()
    assert not errors, errors


def test_no_face_gets_a_friendly_message(camera_browser, base_url, tmp_path):
    context, page, errors = _open(camera_browser, base_url)
    try:
        sky = np.zeros((300, 300, 3), np.uint8)
        sky[:150] = (120, 170, 230)
        sky[150:] = (60, 140, 60)
        path = tmp_path / "sky.jpg"
        Image.fromarray(sky).save(path)
        page.set_input_files("#file", str(path))
        _wait_done(page)
        status = page.inner_text("#status")
        assert "couldn't find a face" in status and "error" not in status.lower()
        assert page.is_hidden("#result")
    finally:
        context.close()
    assert not errors, errors
