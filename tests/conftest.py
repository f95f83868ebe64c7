from __future__ import annotations

import os
import tempfile
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helpers (cairo_reference)

# The suite never touches the project's own var/ (database, broker, runs, secret): everything
# stateful goes to one scratch folder per test session, set before any settings are read.
# Subprocesses started by tests inherit these variables.
_STATE = Path(tempfile.mkdtemp(prefix="d2a-tests-"))
os.environ.setdefault("D2A_DATABASE_URL", f"sqlite:///{_STATE / 'test.db'}")
os.environ.setdefault("D2A_BROKER_DB", str(_STATE / "broker.db"))
os.environ.setdefault("D2A_RUNS_DIR", str(_STATE / "runs"))
os.environ.setdefault("D2A_JOB_MODELS_DIR", str(_STATE / "models"))
os.environ.setdefault("D2A_DATASETS_DIR", str(_STATE / "datasets"))
os.environ.setdefault("D2A_SAMPLES_DIR", str(_STATE / "samples"))
os.environ.setdefault("D2A_SECRET_KEY", "test-secret-not-for-production")
os.environ.setdefault("D2A_MODEL_POLL_S", "0.5")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from backend.settings import get_settings

    d = Path(os.environ.get("D2A_DATA_DIR", get_settings().data_dir))
    if not (d / "quickdraw_smiley_face" / "smiley_face_28x28.npy").is_file():
        pytest.fail(f"the shared data folder is missing at {d}; set D2A_DATA_DIR")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def random_strokes(rng: np.random.Generator, n_strokes: int | None = None) -> list[list[list[float]]]:
    """A random scribble drawing in simplified format, in arbitrary units."""
    out = []
    for _ in range(n_strokes or int(rng.integers(1, 6))):
        n = int(rng.integers(1, 40))
        start = rng.uniform(0, 500, (2, 1))
        out.append((start + np.cumsum(rng.normal(0, 25, (2, n)), axis=1)).tolist())
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, data_dir) -> Path:
    """A tiny generator pair trained for 2 steps and exported (2 members) into a model folder."""
    from training.export import export_run
    from training.train_cyclegan import CycleGANConfig, CycleGANTrainer

    base = tmp_path_factory.mktemp("tiny")
    config = CycleGANConfig(image_size=32, ngf=8, ndf=8, n_blocks=1, batch_size=2, steps=2, decay_steps=1,
                            anime_limit=16, mix={"quickdraw": 0.5, "synthetic": 0.5, "edges": 0.0},
                            snapshot_every=1, checkpoint_every=1, sample_every=2, eval_count=4)
    CycleGANTrainer(config, base / "run", data_dir).run()
    out = base / "models" / "tiny"
    export_run(base / "run", out, name="tiny", snapshots=[1, 2], data_dir=data_dir)
    return out


CHROMIUM = Path(os.environ.get("D2A_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download is not used), one per module."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (set D2A_CHROMIUM to another binary)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


def wait_for_function(page, expression: str, arg=None, *, timeout: float = 30000, polling: float = 100) -> None:
    """Playwright's ``page.wait_for_function``, under the app's Content-Security-Policy.

    Playwright builds its in-page poller with eval, which the pages' policy forbids (no
    'unsafe-eval', rightly); ``page.evaluate`` goes through the DevTools protocol, which the
    policy does not cover. So poll with it, and the browser tests run under the real policy.
    """
    import time

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} ms for: {expression}")
        page.wait_for_timeout(polling)
