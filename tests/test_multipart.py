"""The photo route's multipart parser: what browsers and HTTP clients send is read exactly, and
every hostile body (too many parts, deep nesting, endless headers, no closing boundary) is a
4xx with a sentence, found in time linear in the body."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.multipart import FormError, parse_form, parse_header_value


def encoded(files=None, data=None) -> tuple[bytes, str]:
    """A body and its Content-Type as httpx (as a browser) would send them."""
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def form(*parts: bytes, boundary: bytes = b"XyZ", close: bool = True) -> tuple[bytes, str]:
    """A body made by hand from raw parts (headers, blank line and data each)."""
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    if close:
        body += b"--" + boundary + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary.decode()}"


def field(name: str, data: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n' + extra + b"\r\n" + data


def test_what_an_http_client_sends_is_read_exactly():
    photo = b"\xff\xd8--XyZ\r\n\r\n--" + bytes(range(256)) * 40
    body, ctype = encoded(files={"photo": ("me.jpg", photo, "image/jpeg")}, data={"output": "anime"})
    parts = parse_form(body, ctype)
    assert set(parts) == {"photo", "output"}
    assert parts["photo"].data == photo and parts["photo"].filename == "me.jpg"
    assert parts["photo"].content_type == "image/jpeg"
    assert parts["output"].data == b"anime" and parts["output"].filename is None


def test_preamble_epilogue_quoted_names_and_an_empty_field():
    body, ctype = form(b'Content-Disposition: form-data; name="a\\"b"; filename="x y.png"\r\n\r\nDATA',
                       field("empty", b""))
    parts = parse_form(b"some preamble\r\n" + body + b"an epilogue", ctype)
    assert parts['a"b'].data == b"DATA" and parts['a"b'].filename == "x y.png"
    assert parts["empty"].data == b""
    assert parse_header_value('form-data; name=photo ; FileName="a;b.jpg"') == (
        "form-data", {"name": "photo", "filename": "a;b.jpg"})


@given(values=st.lists(st.binary(max_size=200), min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_any_field_values_round_trip(values):
    """Data holding line breaks, dashes and pieces of the boundary comes back byte for byte."""
    data = {f"f{i}": v for i, v in enumerate(values)}
    files = {name: (None, value) for name, value in data.items()}
    body, ctype = encoded(files=files)
    assert {n: p.data for n, p in parse_form(body, ctype).items()} == data


def _refused(body: bytes, ctype: str, status: int = 422) -> str:
    with pytest.raises(FormError) as e:
        parse_form(body, ctype)
    assert e.value.status == status
    assert str(e.value) and str(e.value)[0].islower()   # a sentence, not an exception's repr
    return str(e.value)


def test_sixty_thousand_fields_stop_at_the_part_cap():
    body, ctype = form(*(field(f"f{i}", b"x" * 60) for i in range(60_000)))
    assert len(body) > 5_000_000
    assert "more than 16 parts" in _refused(body, ctype)


def test_deep_nesting_is_never_parsed():
    """A part whose own type is multipart stays bytes: 3,000 levels cost nothing and no recursion."""
    inner = b"the end"
    for depth in range(3000):
        b = f"b{depth}".encode()
        inner = (b"--" + b + b"\r\nContent-Type: multipart/mixed; boundary=b" + str(depth - 1).encode() +
                 b"\r\n\r\n" + inner + b"\r\n--" + b + b"--")
    body, ctype = form(field("photo", inner, b"Content-Type: multipart/mixed; boundary=b2999\r\n"))
    parts = parse_form(body, ctype)
    assert parts["photo"].data == inner and parts["photo"].content_type.startswith("multipart/mixed")


@pytest.mark.parametrize("case,status,words", [
    ("not multipart", 415, "multipart/form-data"),
    ("no boundary", 422, "boundary"),
    ("boundary too long", 422, "boundary"),
    ("no boundary in the body", 422, "does not contain its boundary"),
    ("never closed", 422, "closing boundary"),
    ("endless headers", 422, "headers"),
    ("not a header line", 422, "Name: value"),
    ("no name", 422, "form-data; name"),
    ("twice", 422, "sent twice"),
    ("junk after a boundary", 422, "line break"),
])
def test_malformed_bodies_say_what_is_wrong(case, status, words):
    ok_body, ok_type = form(field("photo", b"abc"))
    body, ctype = ok_body, ok_type
    if case == "not multipart":
        ctype = "application/x-www-form-urlencoded"
    elif case == "no boundary":
        ctype = "multipart/form-data"
    elif case == "boundary too long":
        ctype = "multipart/form-data; boundary=" + "x" * 71
    elif case == "no boundary in the body":
        ctype = "multipart/form-data; boundary=other"
    elif case == "never closed":
        body, ctype = form(field("photo", b"abc"), close=False)
        body = body[:-2]
    elif case == "endless headers":
        body, ctype = form(field("photo", b"abc", b"X-Pad: " + b"a" * 10_000 + b"\r\n"))
    elif case == "not a header line":
        body, ctype = form(b"this is not a header\r\n\r\nabc")
    elif case == "no name":
        body, ctype = form(b"Content-Disposition: form-data\r\n\r\nabc")
    elif case == "twice":
        body, ctype = form(field("photo", b"a"), field("photo", b"b"))
    elif case == "junk after a boundary":
        body = ok_body.replace(b"--XyZ\r\n", b"--XyZjunk\r\n", 1)
    assert words in _refused(body, ctype, status)
