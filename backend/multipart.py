"""A ``multipart/form-data`` body parsed in memory, with caps that bound what one body can cost.

The photo route takes a handful of fields (the photo and two options). The standard library's
e-mail parser, which it used before, reads any MIME tree: a 5 MB body of 60,000 fields held one
core for 11 s, and a body nested 3,000 levels deep ran it out of stack. This parser reads one
level only (a part whose own type is multipart stays opaque bytes, never parsed), scans for the
boundary with ``bytes.find`` (linear, in C), and stops at the first cap it passes: how many parts,
how long a part's headers may be. Every body it cannot take is a ``FormError`` with the HTTP
status and a sentence saying what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Parts a form may have (the photo route has three fields; a few more are tolerated).
MAX_PARTS = 16
#: Bytes of one part's header block (browsers send about 100-200).
MAX_HEADER_BYTES = 4096
#: RFC 2046: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})")


class FormError(ValueError):
    """A body that cannot be read as the form asked for; ``status`` says how to answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="photo"; filename="a.jpg"`` -> ("form-data", {"name": "photo", ...}).
    Parameter names are lower-cased; quoted values are unquoted. Raises ValueError on anything
    after the main value that is not a well-formed parameter."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    pos = 0
    while pos < len(rest.rstrip()):
        m = _PARAM.match(rest, pos)
        if m is None:
            raise ValueError(f"cannot read the parameters {rest[pos:pos + 40]!r}")
        key, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(key, raw)
        pos = m.end()
    return main.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type (415 for another type, 422 for a
    missing or malformed boundary)."""
    try:
        kind, params = parse_header_value(content_type)
    except ValueError:
        raise FormError("the Content-Type header could not be read; send multipart/form-data") from None
    if kind != "multipart/form-data":
        raise FormError("send the form as multipart/form-data", 415)
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= MAX_BOUNDARY or not boundary.isascii() or boundary.endswith(" "):
        raise FormError("the multipart Content-Type needs a boundary of 1 to 70 characters")
    return boundary.encode("ascii")


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise FormError("a part of the multipart body has a header line that is not 'Name: value'")
        headers.setdefault(name.decode("latin-1").lower(), value.decode("utf-8", "replace").strip())
    return headers


def parse_form(body: bytes, content_type: str, *, max_parts: int = MAX_PARTS,
               max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, Part]:
    """The fields of a ``multipart/form-data`` body by name. Refused (``FormError``): another
    content type, no boundary, a body that does not start with it or never closes, more than
    ``max_parts`` parts, a part whose headers are longer than ``max_header_bytes`` or not
    ``Name: value`` lines, a part without ``Content-Disposition: form-data; name=...``, and a
    name sent twice."""
    delimiter = b"--" + boundary_of(content_type)
    # The body opens with the first delimiter (a preamble before it is allowed but ignored).
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise FormError("the multipart body does not contain its boundary")
        pos = start + 2 + len(delimiter)
    fields: dict[str, Part] = {}
    separator = b"\r\n" + delimiter
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter: the epilogue after it is ignored
            return fields
        line_end = body.find(b"\r\n", pos, pos + 256)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise FormError("the multipart body has text after a boundary where a line break belongs")
        if len(fields) >= max_parts:
            raise FormError(f"the form has more than {max_parts} parts; this route takes a few fields only")
        head_start = line_end + 2
        head_end = body.find(b"\r\n\r\n", head_start, head_start + max_header_bytes + 4)
        if head_end < 0:
            raise FormError(f"a part's headers are missing, unfinished or longer than {max_header_bytes} bytes")
        headers = _headers(body[head_start:head_end]) if head_end > head_start else {}
        data_start = head_end + 4
        data_end = body.find(separator, data_start)
        if data_end < 0:
            raise FormError("the multipart body ends before its closing boundary")
        try:
            disposition, params = parse_header_value(headers.get("content-disposition", ""))
        except ValueError:
            raise FormError("a part's Content-Disposition header could not be read") from None
        name = params.get("name")
        if disposition != "form-data" or not name:
            raise FormError("every part needs 'Content-Disposition: form-data; name=...'")
        if name in fields:
            raise FormError(f"the field {name!r} is sent twice")
        fields[name] = Part(name=name, data=body[data_start:data_end], filename=params.get("filename"),
                            content_type=headers.get("content-type"))
        pos = data_end + len(separator)
