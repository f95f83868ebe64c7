"""What the API promises about bad input: ids out of range are a 404 or 422 on every route (never
a 500 from the database driver), drawing coordinates are JSON numbers only, and the published
OpenAPI schema describes the error bodies the routes really send. The app here has no drawing
model; these are answers given before any model would run."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings

ADMIN = ("root", "a long enough password")
FACE = [[[60, 40, 30, 40, 60, 90, 110, 100, 90, 60], [20, 30, 60, 90, 100, 95, 70, 40, 25, 20]],
        [[50, 52], [50, 52]], [[80, 82], [50, 52]], [[45, 65, 85], [75, 85, 75]]]
#: past SQLite's int64 (OverflowError), past int64 exactly, past PostgreSQL's 32-bit INTEGER
HUGE_IDS = [99999999999999999999, 18446744073709551617, 2**63, 2**31]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("contract")
    settings = Settings(database_url=f"sqlite:///{base / 'app.db'}", models_dir=base / "no-models",
                        datasets_dir=base / "datasets", admin_username=ADMIN[0], admin_password=ADMIN[1],
                        model_poll_s=0, login_attempts_per_minute=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        c.cookies.clear()  # the Bearer header logs in; a call without it is anonymous
        yield c


def _id_routes(client) -> list[tuple[str, str, str]]:
    """(method, path template, id parameter) of every operation with an integer path parameter,
    read from the app's OpenAPI schema (every route FastAPI serves is in it)."""
    out = []
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    out.append((method.upper(), template, param["name"]))
    return out


def _call(client, method: str, path: str):
    # a body every POST with an id takes (routes without a body ignore it)
    return client.request(method, path, json={"in_ensemble": False} if method == "POST" else None)


def test_every_integer_path_id_out_of_range_is_a_404_or_422(client):
    routes = _id_routes(client)
    assert len(routes) >= 10, routes  # the walk found the id routes (else this test proves nothing)
    for method, template, name in routes:
        for huge in HUGE_IDS:
            r = _call(client, method, template.replace("{" + name + "}", str(huge)))
            assert r.status_code in (404, 422), (method, template, huge, r.status_code, r.text)
            assert "detail" in r.json()
        # control: the largest id a row can have is looked up, and is not there
        r = _call(client, method, template.replace("{" + name + "}", str(2**31 - 1)))
        assert r.status_code == 404, (method, template, r.status_code, r.text)


@pytest.mark.parametrize("huge", HUGE_IDS)
def test_an_out_of_range_id_in_a_body_is_a_422(client, huge):
    r = client.post("/api/v1/admin/jobs", json={"kind": "cyclegan", "dataset_id": huge})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("coordinate", [True, False, "12", "1e3", None])
def test_drawing_coordinates_are_json_numbers_only(client, coordinate):
    strokes = [[[10, coordinate, 30], [10, 20, 30]], *FACE[1:]]
    r = client.post("/api/v1/translate", json={"strokes": strokes})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "strokes"], r.text


def test_integer_and_fractional_coordinates_are_accepted(client):
    # control: numbers pass validation (the model is missing here, hence 503 rather than a picture)
    strokes = [[[10, 20.5, 3e1], [10, 20, 30]], *FACE[1:]]
    assert client.post("/api/v1/translate", json={"strokes": strokes}).status_code == 503


# -- the documented error schema ------------------------------------------------------------------

def _conforms(value, schema: dict, spec: dict) -> bool:
    """Whether ``value`` fits ``schema``: the JSON-schema subset FastAPI's schemas use."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _conforms(value, spec["components"]["schemas"][name], spec)
    if "anyOf" in schema:
        return any(_conforms(value, s, spec) for s in schema["anyOf"])
    kinds = {"string": str, "integer": int, "number": (int, float), "array": list, "object": dict, "boolean": bool}
    kind = schema.get("type")
    if kind is not None and (not isinstance(value, kinds[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return False
    if isinstance(value, list):
        return all(_conforms(v, schema.get("items", {}), spec) for v in value)
    if isinstance(value, dict):
        return all(k in value for k in schema.get("required", [])) and all(
            _conforms(value[k], s, spec) for k, s in schema.get("properties", {}).items() if k in value)
    return True


def _documented(spec: dict, method: str, template: str, status: int) -> dict:
    responses = spec["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} sends {status}, which its schema does not list"
    return responses[str(status)]["content"]["application/json"]["schema"]


REAL_ERRORS = [  # (method, path sent, path template, JSON body or None, status the route sends)
    ("GET", "/api/v1/faces/requests/12345", "/api/v1/faces/requests/{request_id}", None, 404),
    ("GET", f"/api/v1/faces/requests/{2**70}", "/api/v1/faces/requests/{request_id}", None, 422),
    ("POST", "/api/v1/translate", "/api/v1/translate", {"strokes": FACE, "model": "nope"}, 422),
    ("POST", "/api/v1/translate", "/api/v1/translate", {"strokes": "a face"}, 422),
    ("POST", "/api/v1/admin/jobs", "/api/v1/admin/jobs", {"kind": "cyclegan", "config": {"lr": -1}}, 422),
    ("POST", "/api/v1/admin/jobs/12345/cancel", "/api/v1/admin/jobs/{job_id}/cancel", None, 404),
    ("DELETE", "/api/v1/admin/api-keys/12345", "/api/v1/admin/api-keys/{key_id}", None, 404),
    ("POST", "/api/v1/admin/datasets", "/api/v1/admin/datasets", None, 422),
]


def test_the_published_error_schema_matches_what_routes_send(client):
    spec = client.get("/openapi.json").json()
    assert not _conforms({"detail": 3}, _documented(spec, "POST", "/api/v1/translate", 422), spec)  # control
    for method, path, template, body, status in REAL_ERRORS:
        r = client.request(method, path, json=body)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        schema = _documented(spec, method, template, status)
        assert _conforms(r.json(), schema, spec), (method, path, r.json(), schema)
    bitmaps = io.BytesIO()
    np.save(bitmaps, np.zeros((2, 784), np.uint8))
    for status in (201, 409):  # the second upload of a name is refused
        r = client.post("/api/v1/admin/datasets", files={"file": ("b.npy", bitmaps.getvalue())}, data={"name": "twice"})
        assert r.status_code == status, r.text
    assert _conforms(r.json(), _documented(spec, "POST", "/api/v1/admin/datasets", 409), spec)


def test_anonymous_admin_calls_and_oversized_bodies_are_documented(client):
    spec = client.get("/openapi.json").json()
    anonymous = client.get("/api/v1/admin/jobs", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert _conforms(anonymous.json(), _documented(spec, "GET", "/api/v1/admin/jobs", 401), spec)
    big = client.post("/api/v1/translate", content=b"[" + b"1," * 3_000_000 + b"1]",
                      headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert _conforms(big.json(), _documented(spec, "POST", "/api/v1/translate", 413), spec)


@pytest.mark.parametrize("path, content, content_type", [
    ("/api/v1/translate", b"\x0f\xff not json", "application/json"),
    ("/api/v1/admin/api-keys", b"{\"name\": \"\xff\"}", "application/json"),
    ("/api/v1/admin/datasets", b"--b\r\n[]--b--\r\n", "multipart/form-data; boundary=b"),
])
def test_an_unreadable_body_is_a_documented_400(client, path, content, content_type):
    """FastAPI and Starlette refuse a body they cannot read (bytes that are not UTF-8, broken
    multipart) with 400 before any validation; the schema lists it for every operation with a
    body (the fuzz run, tests/test_fuzz.py, found it undocumented)."""
    spec = client.get("/openapi.json").json()
    r = client.post(path, content=content, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    assert _conforms(r.json(), _documented(spec, "POST", path, 400), spec)
    assert "400" not in spec["paths"]["/api/v1/admin/jobs"]["get"]["responses"]  # only where there is a body


def test_a_nul_character_in_a_stored_name_is_a_422(client):
    """PostgreSQL cannot keep NUL in text (psycopg raises, which was a 500 there; SQLite stores it),
    so the names an admin gives an API key or a data set refuse it on every database."""
    r = client.post("/api/v1/admin/api-keys", json={"name": "partner\x00app"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    bitmaps = io.BytesIO()
    np.save(bitmaps, np.zeros((2, 784), np.uint8))
    r = client.post("/api/v1/admin/datasets", files={"file": ("b.npy", bitmaps.getvalue())}, data={"name": "set\x00"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"], r.text
    assert client.post("/api/v1/admin/api-keys", json={"name": "partner app"}).status_code == 201  # the control
    r = client.post("/api/v1/admin/login", json={"username": "root\x00", "password": "x"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "username"], r.text
