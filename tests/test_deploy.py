"""The deployment files: docker-compose.yml (with its GPU override) and the Dockerfile's two images.

Checked as data, since CI has no Docker Compose: health-gated start order, restart policies, an
API image without torch, non-root users, the GPU given to the training worker only. Where the
``docker compose`` command exists, it validates the files too.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

APP_SERVICES = ("api", "worker", "sampler")


def compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def dockerfile_stages() -> dict[str, str]:
    """Stage name -> its lines, from the Dockerfile."""
    stages, current = {}, None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.I):
            current = m.group(1)
            stages[current] = ""
        elif current:
            stages[current] += line + "\n"
    return stages


def test_services_start_in_order_restart_and_are_health_checked():
    services = compose()["services"]
    for name in APP_SERVICES:
        s = services[name]
        assert s["restart"] == "unless-stopped", name
        assert s["depends_on"] == {"redis": {"condition": "service_healthy"},
                                   "postgres": {"condition": "service_healthy"}}, name
    for name in ("api", "redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped", name


def test_the_api_image_has_no_torch_and_no_image_runs_as_root():
    services = compose()["services"]
    assert services["api"]["build"]["target"] == "api" and services["sampler"]["build"]["target"] == "api"
    assert services["worker"]["build"]["target"] == "worker"
    stages = dockerfile_stages()
    assert "[train]" not in stages["api"] and "torch" not in stages["api"]
    assert "[train]" in stages["worker"]
    for stage in ("api", "worker"):
        users = re.findall(r"^USER\s+(\S+)", stages[stage], re.M)
        assert users and users[-1] not in ("root", "0"), stage
    assert "--no-worker" in services["api"]["command"]  # the API starts no torch-needing worker


def test_the_gpu_goes_to_the_training_worker_only():
    override = compose("docker-compose.gpu.yml")["services"]
    assert set(override) == {"worker"}
    devices = override["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker command here")
def test_docker_compose_accepts_the_files():
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker has no compose plugin here")
    r = subprocess.run(["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml", "config", "-q"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
