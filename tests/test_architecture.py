"""The import directions: backend -> core <- training, with no arrow back.

- core (strokes, manifests, configs, the ONNX runtimes, the kinds registry) imports neither
  backend nor training;
- training never imports backend (it reports through core.progress; the worker turns that into
  job state);
- backend has no import statement of training: it reaches the training code through the
  registry's ``Ref``s, resolved when a worker task or a CLI verb runs;
- the API process, once its app is made, has imported neither torch nor training.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module's import statements name, wherever they stand (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {', '.join(sorted(hit))}"
            for path in sorted((ROOT / package).rglob("*.py"))
            if (hit := imported_packages(path.read_text()) & forbidden)]


def test_the_scanner_finds_imports_anywhere_in_a_module():
    source = ("import os\nfrom backend.db import crud\n"
              "def f():\n    import training.train_gan\n    from core import kinds\n    from . import sibling\n")
    assert imported_packages(source) == {"os", "backend", "training", "core"}
    assert imported_packages("x = 'training.export:export_run'  # a Ref is a string, not an import\n") == set()


@pytest.mark.parametrize("package, forbidden", [
    ("core", {"backend", "training"}),
    ("training", {"backend"}),
    ("backend", {"training"}),
])
def test_imports_point_one_way(package, forbidden):
    assert offenders(package, forbidden) == []


def test_the_api_process_imports_neither_torch_nor_training():
    code = (
        "import sys\n"
        "from backend.app import create_app\n"
        "def bad():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'training'))\n"
        "create_app()\n"
        "print(bad())\n"
        "import training.data  # the control: the same check sees an import when there is one\n"
        "print(bad())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    after_app, control = r.stdout.splitlines()
    assert after_app == "[]"
    assert "'training.data'" in control
