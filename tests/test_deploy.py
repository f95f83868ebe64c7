"""The deployment files: docker-compose.yml (with its GPU override), the Dockerfile's two images
and the load balancer's deploy/haproxy.cfg.

Checked as data, since CI has no Docker Compose: health-gated start order, restart policies, an
API image without torch, non-root users, the GPU given to the training worker only, one balancer
in front of two identical API replicas. Where the ``docker compose`` command exists, it validates
the files too; where haproxy does, it checks the balancer's config with the compose file's
addresses. (tests/test_replicas.py runs that topology as processes.)
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

APP_SERVICES = ("api", "api2", "worker", "sampler")
REPLICAS = ("api", "api2")
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


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
    for name in (*REPLICAS, "redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "unless-stopped", name


def test_the_api_image_has_no_torch_and_no_image_runs_as_root():
    services = compose()["services"]
    assert all(services[name]["build"]["target"] == "api" for name in (*REPLICAS, "sampler"))
    assert services["worker"]["build"]["target"] == "worker"
    stages = dockerfile_stages()
    assert "[train]" not in stages["api"] and "torch" not in stages["api"]
    assert "[train]" in stages["worker"]
    for stage in ("api", "worker"):
        users = re.findall(r"^USER\s+(\S+)", stages[stage], re.M)
        assert users and users[-1] not in ("root", "0"), stage
    assert all("--no-worker" in services[name]["command"] for name in REPLICAS)  # no torch-needing worker


def test_one_balancer_in_front_of_two_identical_replicas():
    """Only the balancer is published; it starts once both replicas are healthy, and its config's
    addresses (``"${VAR}"`` in deploy/haproxy.cfg) all come from its environment, naming the two
    replicas. The replicas are one service twice: the same image, command and environment, so
    one database, one Redis and one secret key file on the shared volume."""
    services = compose()["services"]
    lb = services["lb"]
    assert lb["image"].startswith("haproxy:") and lb["restart"] == "unless-stopped"
    assert lb["ports"] == ["8000:8000"]
    assert [name for name, s in services.items() if s.get("ports") and name != "lb"] == []
    assert f"./{HAPROXY_CFG.relative_to(ROOT)}:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert lb["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    assert set(re.findall(r'"\$\{(\w+)\}"', HAPROXY_CFG.read_text())) == set(lb["environment"])
    # each server line points at the service of its own name (the name X-Replica gives)
    servers = dict(re.findall(r'^\s*server\s+(\S+)\s+"\$\{(\w+)\}"', HAPROXY_CFG.read_text(), re.M))
    pointed_at = {name: lb["environment"][var] for name, var in servers.items()}
    assert pointed_at == {name: f"{name}:8000" for name in REPLICAS}
    assert lb["environment"]["LB_BIND"] == ":8000"

    api, api2 = (services[name] for name in REPLICAS)
    assert api == api2
    assert "D2A_SECRET_KEY" not in api["environment"]   # else the file below is not read
    assert api["environment"]["D2A_SECRET_KEY_FILE"].startswith("/app/var/") and "var:/app/var" in api["volumes"]


def test_the_replicas_believe_forwarded_addresses_from_the_project_network_only():
    """X-Forwarded-For is believed from the network the balancer is on (its fixed subnet), and
    from nowhere wider: else any client could pick the address its rate limit is counted on."""
    c = compose()
    subnets = [ipaddress.ip_network(cfg["subnet"]) for cfg in c["networks"]["default"]["ipam"]["config"]]
    for name in REPLICAS:
        trusted = json.loads(c["services"][name]["environment"]["D2A_TRUSTED_PROXIES"])
        assert [ipaddress.ip_network(n) for n in trusted] == subnets, name
    assert "networks" not in c["services"]["lb"]   # the balancer is on that default network


@pytest.mark.skipif(shutil.which("haproxy") is None and not os.access("/usr/sbin/haproxy", os.X_OK),
                    reason="no haproxy here (scripts/setup.sh dev installs Debian's)")
def test_haproxy_accepts_its_config_with_the_compose_addresses():
    """Valid with the compose file's values, and the replicas' names not resolving (as before
    their containers exist) does not stop the balancer: they wait in maintenance."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    env = dict(os.environ, **compose()["services"]["lb"]["environment"])
    r = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


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
