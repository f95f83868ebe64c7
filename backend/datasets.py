"""Data sets: the built-in ones from the data folder, and admins' uploads, checked before they stay.

An upload is written to a scratch file, checked there, and only when every rule passes moved
into the data sets folder; a refused upload leaves nothing behind. The rules, each with its own
message (the API answers 413 for size, 415 for a kind it does not take, 422 for bad content):

- the file is not larger than ``upload_max_bytes``;
- a zip: no entry with an absolute path, a drive letter or ``..``; no links; at most
  ``upload_max_files`` entries; the uncompressed total is at most ``upload_max_unpacked_bytes``
  (zip bombs); every file entry is an image that decodes fully, within Pillow's pixel limit
  (decompression bombs), and all of them together decode to at most ``upload_max_total_pixels``
  (counted from each image's header, before it is decoded); an entry whose data does not match
  its header (a damaged or forged zip) is refused;
- an ndjson file: every line is at most ``MAX_NDJSON_LINE_BYTES`` and a Quick, Draw! record whose
  ``drawing`` parses as strokes (a line nested too deeply for the JSON parser is refused);
- a ``.npy`` file: a numpy_bitmap array (N x 784 or N x 28 x 28, uint8), no pickles.

Checking keeps only a thumbnail of each previewed item, never a whole decoded image, so the
memory a check takes does not grow with the images' size. Messages are plain words: no Python
type names or object addresses.

No torch here: the API process runs it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import uuid
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from core.drawing import DrawingError, parse_strokes, rasterize
from core.manifest import sha256_file

#: Pillow's own decompression-bomb limit, made an error (not a warning) for uploads.
MAX_IMAGE_PIXELS = 4096 * 4096
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
PREVIEW_ITEMS = 16
#: Side of a preview grid's cell: previewed images are kept as thumbnails this size.
PREVIEW_CELL = 64
#: A Quick, Draw! record is a few kB; a longer line is refused before it is parsed.
MAX_NDJSON_LINE_BYTES = 1024 * 1024
#: An object's repr with its address (``<_io.BytesIO object at 0x7f...>``), as some library
#: messages carry: it means nothing to the admin who reads the message.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


class UploadRejected(Exception):
    """An upload broke a rule; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Limits:
    max_bytes: int
    max_unpacked_bytes: int
    max_files: int
    max_total_pixels: int


class _OverPixelBudget(Exception):
    """An image's header says it has more pixels than the archive has left to spend."""

    def __init__(self, pixels: int):
        super().__init__(pixels)
        self.pixels = pixels


def _plain(exc: BaseException, otherwise: str) -> str:
    """An exception's message in plain words: object reprs taken out, ``otherwise`` when empty."""
    return _OBJECT_REPR.sub("", str(exc)).strip() or otherwise


@dataclass
class Checked:
    kind: str            # image_zip | quickdraw_ndjson | quickdraw_bitmaps
    item_count: int
    sha256: str
    preview: list[np.ndarray]  # up to PREVIEW_ITEMS uint8 images (H, W) or (H, W, 3)


def kind_for(filename: str) -> str:
    name = filename.lower()
    if name.endswith(".zip"):
        return "image_zip"
    if name.endswith(".ndjson"):
        return "quickdraw_ndjson"
    if name.endswith(".npy"):
        return "quickdraw_bitmaps"
    raise UploadRejected(415, f"{filename!r}: upload a .zip of images, a Quick, Draw! .ndjson file or a "
                              "numpy_bitmap .npy file")


def _decode_image(data: bytes, name: str, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an image whole (one that does not decode is refused) and return a thumbnail of it
    (at most PREVIEW_CELL a side, RGB) and its pixel count. An image over ``max_pixels`` is not
    decoded: ``_OverPixelBudget``, decided from its header alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            with Image.open(io.BytesIO(data)) as im:
                pixels = im.width * im.height
                if max_pixels is not None and pixels > max_pixels:
                    raise _OverPixelBudget(pixels)
                im.load()
                im.thumbnail((PREVIEW_CELL, PREVIEW_CELL))
                return np.asarray(im.convert("RGB")), pixels
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UploadRejected(422, f"{name}: the image is too large to decode safely (over "
                                      f"{MAX_IMAGE_PIXELS} pixels; a decompression bomb?)") from None
        except _OverPixelBudget:
            raise
        except Image.UnidentifiedImageError:
            raise UploadRejected(422, f"{name}: not an image that decodes (its format is not recognised)") from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "not an image we take"
            raise UploadRejected(422, f"{name}: not an image that decodes "
                                      f"({_plain(exc, 'it is damaged or cut short')})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _safe_entry(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
        raise UploadRejected(422, f"zip entry {info.filename!r} points outside the archive (absolute path or '..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UploadRejected(422, f"zip entry {info.filename!r} is a symbolic link; links are not accepted")
    return path


def check_zip(path: Path, limits: Limits) -> Checked:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise UploadRejected(422, "the file is not a readable zip archive") from None
    with zf:
        infos = zf.infolist()
        files = [i for i in infos if not i.is_dir()]
        for info in infos:
            _safe_entry(info)
        if len(files) > limits.max_files:
            raise UploadRejected(413, f"the archive holds {len(files)} files; at most {limits.max_files} are accepted")
        declared = sum(i.file_size for i in files)
        if declared > limits.max_unpacked_bytes:
            raise UploadRejected(413, f"the archive unpacks to {declared} bytes; at most {limits.max_unpacked_bytes} "
                                      "are accepted (zip bomb?)")
        images = [i for i in files if not PurePosixPath(i.filename).name.startswith(".")
                  and "__MACOSX" not in PurePosixPath(i.filename).parts]
        if not images:
            raise UploadRejected(422, "the archive holds no images")
        preview: list[np.ndarray] = []
        unpacked = pixels = 0
        for info in images:
            if PurePosixPath(info.filename).suffix.lower() not in IMAGE_SUFFIXES:
                raise UploadRejected(422, f"{info.filename}: not an image file (accepted: "
                                          f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            # Read at most the declared size + 1: a lying header cannot make us unpack more.
            try:
                with zf.open(info) as f:
                    data = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                # data that does not match its header (size, CRC), an unknown method, encryption
                raise UploadRejected(422, f"{info.filename}: the archive is damaged or cannot be read "
                                          f"({_plain(exc, 'its data does not match its header')})") from None
            unpacked += len(data)
            if len(data) > info.file_size or unpacked > limits.max_unpacked_bytes:
                raise UploadRejected(413, f"{info.filename}: unpacks to more than the archive declares (zip bomb?)")
            try:
                img, n = _decode_image(data, info.filename, max_pixels=limits.max_total_pixels - pixels)
            except _OverPixelBudget as exc:
                raise UploadRejected(413, f"{info.filename}: the archive's images decode to more than "
                                          f"{limits.max_total_pixels} pixels in all ({pixels + exc.pixels} with this "
                                          "one); split it, or make the images smaller") from None
            pixels += n
            if len(preview) < PREVIEW_ITEMS:
                preview.append(img)
    return Checked("image_zip", len(images), sha256_file(path), preview)


def check_ndjson(path: Path, limits: Limits) -> Checked:
    preview: list[np.ndarray] = []
    count = 0
    with open(path, "rb") as f:
        lineno = 0
        while raw := f.readline(MAX_NDJSON_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_NDJSON_LINE_BYTES:
                raise UploadRejected(422, f"line {lineno}: longer than {MAX_NDJSON_LINE_BYTES} bytes; a Quick, Draw! "
                                          "record is a few kB")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                strokes = record["drawing"] if isinstance(record, dict) else None
                if strokes is None:
                    raise KeyError("drawing")
                drawing = parse_strokes(strokes)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UploadRejected(422, f"line {lineno}: not JSON") from None
            except RecursionError:
                raise UploadRejected(422, f"line {lineno}: nested too deeply to be a Quick, Draw! record") from None
            except KeyError:
                raise UploadRejected(422, f"line {lineno}: a Quick, Draw! record needs a 'drawing' field") from None
            except DrawingError as exc:
                raise UploadRejected(422, f"line {lineno}: the drawing is invalid: {exc}") from None
            count += 1
            if count > limits.max_files:
                raise UploadRejected(413, f"more than {limits.max_files} drawings; split the file")
            if len(preview) < PREVIEW_ITEMS:
                preview.append(255 - rasterize(drawing, 28))  # dark ink on white
    if count == 0:
        raise UploadRejected(422, "the file holds no drawings")
    return Checked("quickdraw_ndjson", count, sha256_file(path), preview)


def check_npy(path: Path, limits: Limits) -> Checked:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise UploadRejected(422, f"not a plain numpy array file ({_plain(exc, 'its header is not valid')})") from None
    except Exception:  # noqa: BLE001
        raise UploadRejected(422, "not a readable .npy file (damaged or cut short)") from None
    if arr.dtype != np.uint8:
        raise UploadRejected(422, f"numpy_bitmap arrays are uint8; this one is {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 784:
        arr = arr.reshape(-1, 28, 28)
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise UploadRejected(422, f"numpy_bitmap arrays are N x 784 or N x 28 x 28; this one is {tuple(arr.shape)}")
    if len(arr) == 0:
        raise UploadRejected(422, "the array holds no bitmaps")
    if len(arr) > limits.max_files * 10:
        raise UploadRejected(413, f"{len(arr)} bitmaps is more than the {limits.max_files * 10} accepted")
    preview = [255 - np.asarray(arr[i]) for i in range(min(PREVIEW_ITEMS, len(arr)))]
    return Checked("quickdraw_bitmaps", int(len(arr)), sha256_file(path), preview)


CHECKS = {"image_zip": check_zip, "quickdraw_ndjson": check_ndjson, "quickdraw_bitmaps": check_npy}


def preview_grid(items: list[np.ndarray], out: Path, cell: int = PREVIEW_CELL, columns: int = 8) -> Path:
    rows = max(1, -(-len(items) // columns))
    grid = Image.new("RGB", (columns * cell, rows * cell), "white")
    for k, item in enumerate(items):
        im = Image.fromarray(item).convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR)
        grid.paste(im, ((k % columns) * cell, (k // columns) * cell))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    grid.save(tmp)
    tmp.replace(out)
    return out


def store_upload(scratch: Path, filename: str, datasets_dir: Path, limits: Limits) -> tuple[Checked, Path, Path]:
    """Check ``scratch`` (the uploaded bytes) and move it into its own folder under
    ``datasets_dir``. Returns (checks, stored file, preview). On any refusal nothing stays."""
    kind = kind_for(filename)
    size = scratch.stat().st_size
    if size > limits.max_bytes:
        raise UploadRejected(413, f"the file is {size} bytes; uploads are limited to {limits.max_bytes}")
    checked = CHECKS[kind](scratch, limits)
    folder = datasets_dir / f"upload-{uuid.uuid4().hex[:12]}"
    staging = datasets_dir / f".staging-{folder.name}"
    try:
        staging.mkdir(parents=True)
        suffix = Path(filename).suffix.lower()
        shutil.move(str(scratch), staging / f"data{suffix}")
        preview_grid(checked.preview, staging / "preview.png")
        staging.rename(folder)  # the folder appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return checked, folder / f"data{Path(filename).suffix.lower()}", folder / "preview.png"


#: The data folder's own sets: (name, kind, file inside the data folder).
BUILTIN = (
    ("anime_faces_64", "image_zip", "anime_faces_64/anime_faces_64.zip"),
    ("anime_faces_selfie2anime_128", "image_zip", "anime_faces_selfie2anime/selfie2anime_trainB_128.zip"),
    ("face_photos_256", "image_zip", "face_photos/face_photos_selfie2anime_trainA.zip"),
    ("quickdraw_smiley_face", "quickdraw_bitmaps", "quickdraw_smiley_face/smiley_face_28x28.npy"),
)


def _builtin_preview(kind: str, path: Path) -> tuple[int, list[np.ndarray]]:
    if kind == "quickdraw_bitmaps":
        arr = np.load(path, mmap_mode="r", allow_pickle=False).reshape(-1, 28, 28)
        return int(len(arr)), [255 - np.asarray(arr[i]) for i in range(PREVIEW_ITEMS)]
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
        return len(names), [_decode_image(zf.read(n), n)[0] for n in names[:PREVIEW_ITEMS]]


def register_builtin(session, data_dir: Path, datasets_dir: Path) -> list[str]:
    """Register the data folder's sets that are present (once; a changed file is registered
    again). The files stay where they are; only a preview grid is written under ``datasets_dir``."""
    from backend.db import crud

    done = []
    for name, kind, rel in BUILTIN:
        path = Path(data_dir) / rel
        if not path.is_file():
            continue
        existing = crud.get_dataset_by_name(session, name=name)
        preview = datasets_dir / "builtin" / f"{name}.png"
        if existing is not None and existing.location == str(path) and existing.preview \
                and Path(existing.preview).is_file() and Path(existing.preview).stat().st_mtime >= path.stat().st_mtime:
            continue  # registered, and the file has not changed since
        count, items = _builtin_preview(kind, path)
        preview_grid(items, preview)
        crud.register_dataset(session, name=name, kind=kind, location=str(path), content_sha256=sha256_file(path),
                              item_count=count, preview=str(preview), builtin=True)
        done.append(name)
    return done
