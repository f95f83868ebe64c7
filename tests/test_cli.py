"""The doodle2anime command, and the rule that the API process never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backend.cli import build_parser, main
from core.manifest import ModelManifest
from conftest import ROOT


def test_every_verb_has_examples_in_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "examples:" in p.format_help() and f"doodle2anime {name}" in p.format_help()


def test_train_then_export_through_the_cli(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", str(ROOT / "training/configs/tiny.json"), "--run-dir", str(run),
                 "--data-dir", str(data_dir), "--set", "steps=3", "--set", "decay_steps=1", "--quiet"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 3 and "holdout_cycle_l1" in out
    assert main(["export", "--run-dir", str(run), "--snapshots", "2,3", "--out", str(tmp_path / "m"),
                 "--name", "cli", "--data-dir", str(data_dir)]) == 0
    m = ModelManifest.load(tmp_path / "m")
    assert [x.source["step"] for x in m.graphs()] == [2, 3]
    m.verify(tmp_path / "m")


def test_a_bad_config_value_is_refused_with_its_name(tmp_path, data_dir):
    with pytest.raises(Exception, match="lambda_cycle"):
        main(["train", "--run-dir", str(tmp_path), "--set", "lambda_cycle=-1", "--quiet"])


def test_export_of_a_missing_snapshot_says_which(tmp_path):
    with pytest.raises(Exception, match="step_0000007.pt"):
        main(["export", "--run-dir", str(tmp_path), "--snapshots", "7", "--out", str(tmp_path / "m")])


def test_the_api_process_does_not_import_torch():
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from backend.app import create_app\n"
        "with TestClient(create_app()) as c:\n"
        "    r = c.post('/api/v1/translate', json={'strokes': [[[0, 50, 100], [0, 80, 0]]]})\n"
        "    assert r.status_code == 200, r.text\n"
        "import backend.cli, backend.serving, core.drawing\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('no torch')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "no torch" in r.stdout, r.stderr


def test_serve_starts_a_worker_only_on_one_machine_setups():
    from backend.cli import embedded_worker_wanted
    from backend.settings import Settings

    start, why = embedded_worker_wanted(Settings(redis_url="", embedded_worker=True))
    assert start, why  # torch is installed in the test environment
    start, why = embedded_worker_wanted(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert not start and "REDIS_URL" in why
    assert not embedded_worker_wanted(Settings(embedded_worker=False))[0]
    assert not embedded_worker_wanted(Settings(), no_worker=True)[0]


def test_serve_leaves_forwarded_headers_to_the_app(monkeypatch):
    """uvicorn would take X-Forwarded-For from any local peer as the client's address (a new
    one per try defeats per-address limits); the app believes it only from trusted_proxies."""
    import uvicorn

    from backend.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    assert main(["serve", "--no-worker"]) == 0
    assert seen["proxy_headers"] is False
