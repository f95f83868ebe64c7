"""Data-set uploads that attack the checker rather than break a rule of the format: archives whose
images decode to far more pixels than their bytes suggest, zips whose headers lie, ndjson nested
deep enough to exhaust the parser, and error messages that must read as plain words. The app
here has no drawing model (uploads need none), so the module starts quickly."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

from backend import datasets as ds
from backend.app import create_app
from backend.settings import Settings

ADMIN = ("root", "a long enough password")
MPX = 1024 * 1024


def _png(side: int, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side)).save(buf, "PNG")  # zeros: megapixels in a few kB
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _lying_zip() -> bytes:
    """A zip whose central directory says its one image is 10 bytes shorter than it is: the
    entry reads back short and fails its CRC (zipfile's ``BadZipFile: Bad CRC-32``)."""
    data = bytearray(_zip({"a.png": _png(16)}))
    at = data.index(b"PK\x01\x02")  # the central directory entry; uncompressed size at +24
    (size,) = struct.unpack_from("<I", data, at + 24)
    struct.pack_into("<I", data, at + 24, size - 10)
    return bytes(data)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("uploads")
    settings = Settings(database_url=f"sqlite:///{base / 'app.db'}", models_dir=base / "no-models",
                        datasets_dir=base / "datasets", admin_username=ADMIN[0], admin_password=ADMIN[1],
                        model_poll_s=0, login_attempts_per_minute=1000, upload_max_bytes=2 * MPX,
                        upload_max_total_pixels=3 * MPX)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client, settings


def _upload(client, filename: str, data: bytes, name: str):
    return client.post("/api/v1/admin/datasets", files={"file": (filename, data)}, data={"name": name})


def test_an_archive_is_limited_in_its_decoded_pixels_as_a_whole(env):
    client, _ = env
    # each 1024² image is far under the per-image limit; four of them are over the 3 Mpx total
    r = _upload(client, "four.zip", _zip({f"{i}.png": _png(1024) for i in range(4)}), "four big")
    assert r.status_code == 413, r.text
    assert "pixels" in r.json()["detail"] and str(3 * MPX) in r.json()["detail"], r.text
    r = _upload(client, "three.zip", _zip({f"{i}.png": _png(1024) for i in range(3)}), "three big")
    assert r.status_code == 201, r.text  # control: at the limit is accepted
    assert r.json()["item_count"] == 3


def test_the_pixel_total_is_refused_before_the_image_that_passes_it_is_decoded(monkeypatch, tmp_path):
    decoded = []  # images whose data was decoded (a file image's tiles are emptied once it is)
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: (im.tile and decoded.append(im.size)) or real(im))
    limits = ds.Limits(max_bytes=10 * MPX, max_unpacked_bytes=100 * MPX, max_files=100, max_total_pixels=2 * MPX)
    path = tmp_path / "a.zip"
    path.write_bytes(_zip({f"{i}.png": _png(1024) for i in range(5)}))
    with pytest.raises(ds.UploadRejected) as err:
        ds.check_zip(path, limits)
    assert err.value.status == 413
    assert len(decoded) == 2, decoded


def test_checking_an_archive_keeps_small_previews_not_whole_images(tmp_path):
    """Sixteen 1024² RGB images decode to 48 MB; the check keeps only thumbnails of them."""
    path = tmp_path / "sixteen.zip"
    path.write_bytes(_zip({f"{i}.png": _png(1024, "RGB") for i in range(16)}))
    limits = ds.Limits(max_bytes=10 * MPX, max_unpacked_bytes=500 * MPX, max_files=100, max_total_pixels=100 * MPX)
    tracemalloc.start()
    try:
        checked = ds.check_zip(path, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked.item_count == 16 and len(checked.preview) == 16
    assert all(max(p.shape[:2]) <= ds.PREVIEW_CELL for p in checked.preview)
    assert peak < 16 * MPX, f"{peak / MPX:.0f} MB held at the peak"


CLEAR_422 = {
    "lying zip header": ("lies.zip", _lying_zip(), "damaged"),
    "ndjson nested 10^5 deep": ("deep.ndjson", b'{"drawing": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
                                "line 1: nested too deeply"),
}


@pytest.mark.parametrize("case", list(CLEAR_422))
def test_damaged_or_hostile_files_are_clear_422s(env, case):
    client, settings = env
    filename, data, words = CLEAR_422[case]
    r = _upload(client, filename, data, f"hostile {case}")
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"], r.text
    assert not list((settings.datasets_dir / ".incoming").glob("*"))


def test_an_ndjson_line_longer_than_any_drawing_is_refused_without_reading_it_whole(env):
    client, _ = env
    line = json.dumps({"drawing": [[[1, 2], [3, 4]]], "pad": "x" * (ds.MAX_NDJSON_LINE_BYTES + 10)}).encode()
    r = _upload(client, "long.ndjson", b'{"drawing": [[[1, 2], [3, 4]]]}\n' + line + b"\n", "long line")
    assert r.status_code == 422 and "line 2" in r.json()["detail"], r.text


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n garbage", b"GIF89a" + b"\0" * 20, b"just words"])
def test_an_image_that_does_not_decode_is_named_in_plain_words(env, data):
    client, _ = env
    r = _upload(client, "bad.zip", _zip({"ok.png": _png(8), "bad.png": data}), "undecodable")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("bad.png: ") and "object at" not in detail and "0x" not in detail, detail
