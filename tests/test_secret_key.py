"""The key that signs admin sessions: from the settings, or generated once into a 0600 file."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backend import auth
from backend.settings import PROJECT_ROOT, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_key_from_the_settings_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("D2A_SECRET_KEY", "from-the-environment")
    settings = Settings(secret_key_file=tmp_path / "secret_key")
    assert settings.secret_key == "from-the-environment"
    assert auth.secret_key(settings) == b"from-the-environment"
    assert not (tmp_path / "secret_key").exists()
    assert "from-the-environment" not in repr(settings)


def test_an_empty_key_is_generated_once_and_kept_private(tmp_path):
    settings = Settings(secret_key="", secret_key_file=tmp_path / "var" / "secret_key")
    key = auth.secret_key(settings)
    path = tmp_path / "var" / "secret_key"
    assert path.is_file() and len(key) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.secret_key(settings) == key  # a restart reads the same key
    assert auth.secret_key(Settings(secret_key="", secret_key_file=path)) == key
    assert list(path.parent.iterdir()) == [path]  # no temporary files left
    token = auth.make_session_token(key, 7, 60)
    assert auth.read_session_token(auth.secret_key(settings), token).user_id == 7
    other = auth.secret_key(Settings(secret_key="", secret_key_file=tmp_path / "elsewhere"))
    assert other != key and auth.read_session_token(other, token) is None


def test_the_default_key_file_is_under_var_of_the_project(monkeypatch):
    monkeypatch.delenv("D2A_SECRET_KEY_FILE", raising=False)
    assert Settings().secret_key_file == PROJECT_ROOT / "var" / "secret_key"
    monkeypatch.setenv("D2A_SECRET_KEY_FILE", "var/other_key")
    assert Settings().secret_key_file == PROJECT_ROOT / "var" / "other_key"


def test_an_empty_key_file_is_refused(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("\n")
    with pytest.raises(RuntimeError, match="empty"):
        auth.secret_key(Settings(secret_key="", secret_key_file=path))


def test_processes_starting_at_once_share_one_key(tmp_path):
    path = tmp_path / "secret_key"
    code = ("import sys\n"
            "from backend import auth\n"
            "from backend.settings import Settings\n"
            "print(auth.secret_key(Settings(secret_key='', secret_key_file=sys.argv[1])).decode())\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    keys = {out.strip() for out, _ in outs}
    assert keys == {path.read_text().strip()}
