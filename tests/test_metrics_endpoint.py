"""GET /metrics: what an operator's Prometheus scrapes."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings

FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]


def _value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix} in the scrape"
    return float(lines[0].rsplit(" ", 1)[1])


def test_metrics_count_requests_by_route_inference_jobs_and_queue(tmp_path, tiny_model):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "sketch2anime")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", models_dir=models, model_poll_s=0,
                        default_model="sketch2anime", drawing_models=["sketch2anime"], datasets_dir=tmp_path / "ds",
                        providers=["CPUExecutionProvider"], anonymous_requests_per_minute=3)
    with TestClient(create_app(settings)) as client:
        for _ in range(3):
            assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 200
        client.get("/api/v1/faces/requests/12345")   # a templated route: one series, not one per id
        assert client.post("/api/v1/translate", json={"strokes": FACE, "size": 64}).status_code == 429
        client.get("/no/such/page")
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    ok = 'd2a_http_request_duration_seconds_count{method="POST",route="/api/v1/translate",status="200"}'
    assert _value(text, ok) == 3
    assert 'route="/api/v1/faces/requests/{request_id}"' in text and "12345" not in text
    assert 'route="unmatched",status="404"' in text
    assert _value(text, 'd2a_model_inference_seconds_count{model="sketch2anime"}') == 3
    assert _value(text, 'd2a_jobs{status="queued"}') == 0
    assert 'd2a_queue_depth{queue="sampling"}' in text
    assert _value(text, 'd2a_rate_limited_total{route="/api/v1/translate"}') == 1
