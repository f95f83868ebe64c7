"""Photos of faces to anime faces, with ONNX Runtime and OpenCV, no torch: what the photo page and
``POST /api/v1/photo`` run. Everything happens in memory: a photo is never written anywhere.

1. ``open_photo`` reads the header only: it refuses what is not a JPEG, PNG or WebP (415) and
   pictures over ``max_pixels`` (a decompression bomb is refused from its header), and says about
   how much memory decoding will take (``cost``), so a caller can decode under a budget;
   ``decode_opened`` then decodes, shrinks to ``work_side`` first and applies the EXIF
   orientation (``decode_photo`` does both).
2. ``find_face``: OpenCV's Haar cascades for frontal faces (their weights ship inside the
   opencv-python wheel, so nothing is downloaded), the largest face, or None; each search
   borrows a detector of its own from a pool (``FaceDetectors``), so answers do not depend on
   how many photos are searched at once.
3. ``PhotoModel``: the face cropped the way the training photos frame a face (the manifest's
   ``crop_scale`` and ``crop_shift``, measured on them by the same detector), turned into an
   anime face by the exported generator, and
4. ``face_mask`` / ``composite``: a face-and-hair mask from GrabCut, seeded with the face box
   (sure face in its middle, sure background outside the widened crop), feathered, and the anime
   face blended back over the photo through it, as the paper's extension did.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.manifest import ModelManifest, PhotoInput
from core.runtime import open_session

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000     # decoded pixels of one photo (a 12-megapixel phone photo is fine)
WORK_SIDE = 1024            # photos are processed at most this many pixels on their longest side
MASK_SIDE = 256             # GrabCut cuts face and hair out of the crop scaled to at most this side


class PhotoError(ValueError):
    """A photo that cannot be used; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


#: Bytes of memory decoding takes per decoded pixel, measured (peak RSS over the start) on 40 MP
#: pictures with Pillow 13: lossless and lossy WebP about 15 (libwebp's buffers and Pillow's copy),
#: PNG about 4, JPEG about 8 per pixel of its reduced (draft) decode. Rounded up.
DECODE_BYTES_PER_PIXEL = {"JPEG": 10, "PNG": 6, "WEBP": 17}
#: Memory the rest of one photo's work takes (a ``work_side`` picture, its crop, mask, result).
WORK_BYTES = 48 * 1024 * 1024


@dataclass
class OpenedPhoto:
    """A photo whose header was read and checked, not yet decoded; ``cost`` is about how many
    bytes of memory decoding it and the work after will hold (see ``DECODE_BYTES_PER_PIXEL``)."""

    image: Image.Image
    orientation: int
    cost: int


def open_photo(data: bytes, *, max_pixels: int = MAX_PIXELS, work_side: int = WORK_SIDE) -> OpenedPhoto:
    """Read a photo's header: refuse what is not a JPEG, PNG or WebP (415) and pictures over
    ``max_pixels`` or under 32 px a side (422), before anything is decoded. Cheap."""
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own guard, for pictures far over any sane size
        raise PhotoError(f"the photo says it has more pixels than we can take (at most {max_pixels:,} pixels)", 422) from None
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a file that is not a picture
        raise PhotoError("this is not a photo we can read: send a JPEG, PNG or WebP picture", 415) from None
    if im.format not in FORMATS:
        raise PhotoError(f"{im.format or 'this'} pictures are not taken: send a JPEG, PNG or WebP photo", 415)
    w, h = im.size
    if w * h > max_pixels:
        raise PhotoError(f"the photo is {w} x {h} pixels; at most {max_pixels:,} pixels are taken", 422)
    if w < 32 or h < 32:
        raise PhotoError(f"the photo is only {w} x {h} pixels: send one at least 32 pixels on each side", 422)
    orientation = _orientation(im)
    try:
        im.draft("RGB", (work_side, work_side))  # JPEG: decode at a smaller scale when it is large
    except Exception:  # noqa: BLE001
        raise PhotoError("the photo could not be read: it may be damaged", 422) from None
    dw, dh = im.size
    return OpenedPhoto(im, orientation, dw * dh * DECODE_BYTES_PER_PIXEL[im.format] + WORK_BYTES)


#: After decoding a photo whose cost was over this, freed memory is handed back to the system.
TRIM_ABOVE_BYTES = 64 * 1024 * 1024


def _trim() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).
    Pillow decodes in 16 MB blocks that glibc keeps in the decoding thread's arena once freed:
    without this, a server that decoded four huge photos at once kept 1.7 GB it no longer used."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def decode_opened(opened: OpenedPhoto, *, work_side: int = WORK_SIDE) -> Image.Image:
    """An RGB image upright as the camera held it, at most ``work_side`` px on its longest side."""
    im = opened.image
    try:
        im.load()
        # Shrink first (a box average, cheap), so the copies that follow are small.
        factor = max(im.size) // work_side
        if factor >= 2:
            im = im.reduce(factor)
        im = im.convert("RGB")
    except Exception:  # noqa: BLE001 - a truncated or damaged file
        raise PhotoError("the photo could not be read to the end: it may be damaged", 422) from None
    finally:
        opened.image.close()
        if opened.cost > TRIM_ABOVE_BYTES:
            _trim()
    if opened.orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[opened.orientation])
    if max(im.size) > work_side:
        im.thumbnail((work_side, work_side), Image.Resampling.LANCZOS)
    return im


def decode_photo(data: bytes, *, max_pixels: int = MAX_PIXELS, work_side: int = WORK_SIDE) -> Image.Image:
    """``open_photo`` then ``decode_opened``: bytes to an upright RGB image."""
    return decode_opened(open_photo(data, max_pixels=max_pixels, work_side=work_side), work_side=work_side)


#: EXIF orientation -> the transpose that shows the picture upright.
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block: show the picture as stored
        return 1


_import_lock = threading.Lock()


def cv():
    """OpenCV, imported under a lock: its package swaps itself in ``sys.modules`` while it loads,
    and a second thread importing it then can see a half-made module ("module 'cv2' has no
    attribute 'data'"). Once imported, this is a dictionary lookup."""
    module = sys.modules.get("cv2")
    if module is not None and hasattr(module, "data"):
        return module
    with _import_lock:
        import cv2

        return cv2


#: The frontal-face cascades tried in turn, with the neighbours each needs to keep a detection.
CASCADES = (("haarcascade_frontalface_default.xml", 5), ("haarcascade_frontalface_alt2.xml", 3))


class FaceDetectors:
    """A pool of OpenCV face detectors. A cascade classifier keeps the image it is searching in
    its own state, so one detector used by two threads at once answers wrongly (the same 50
    selfies gave 11 "no face" answers one at a time and 8 or 10, in other sets, at eight at
    once). Each search borrows a detector of its own; at most ``size`` are made, and the first
    one is made by ``warm`` when the service starts."""

    def __init__(self, size: int = 4):
        self.size = size
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Semaphore(size)

    def _make(self) -> list:
        cv2 = cv()
        root = Path(cv2.data.haarcascades)
        made = [cv2.CascadeClassifier(str(root / name)) for name, _ in CASCADES]
        if any(c.empty() for c in made):
            raise RuntimeError(f"OpenCV's face cascades are missing from {root}")
        return made

    def warm(self) -> None:
        """Import OpenCV and make one detector now, not in the first request."""
        with self.borrow():
            pass

    @contextlib.contextmanager
    def borrow(self):
        self._room.acquire()
        try:
            try:
                detector = self._free.get_nowait()
            except queue.Empty:
                detector = self._make()
            try:
                yield detector
            finally:
                self._free.put(detector)
        finally:
            self._room.release()


DETECTORS = FaceDetectors()


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float


def find_face(image: np.ndarray) -> Box | None:
    """The largest frontal face in an RGB image (uint8 HxWx3), or None."""
    cv2 = cv()
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    side = min(gray.shape)
    with DETECTORS.borrow() as cascades:
        for cascade, (_, neighbours) in zip(cascades, CASCADES):
            faces = cascade.detectMultiScale(gray, 1.1, neighbours, minSize=(max(24, side // 10),) * 2)
            if len(faces):
                x, y, w, h = max(faces, key=lambda r: r[2] * r[3])
                return Box(float(x), float(y), float(w), float(h))
    return None


def crop_box(face: Box, scale: float, shift: float) -> tuple[int, int, int]:
    """(left, top, side) of the square crop around a face box: ``scale`` box widths on a side,
    its centre ``shift`` box widths below the box's centre."""
    side = int(round(face.w * scale))
    cx, cy = face.x + face.w / 2, face.y + face.h / 2 + shift * face.w
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def cut(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """A square of the image, the parts outside it filled by repeating its edge."""
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + side - w, top + side - h)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else image
    return padded[top + pad: top + pad + side, left + pad: left + pad + side]


def face_mask(image: np.ndarray, face: Box, left: int, top: int, side: int, feather: float = 0.04,
              work: int = MASK_SIDE) -> np.ndarray:
    """A soft mask (float32 in [0, 1], the crop's size) of the face and hair inside the crop.
    GrabCut runs on the crop scaled to at most ``work`` px (its cost grows with the pixels; the
    mask is feathered anyway), and the mask is scaled back."""
    cv2 = cv()
    crop = np.ascontiguousarray(cut(image, left, top, side))
    k = min(1.0, work / side)
    n = max(8, int(round(side * k)))
    if n != side:
        crop = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)
    mask = np.full((n, n), cv2.GC_PR_BGD, np.uint8)
    fx, fy, fw, fh = (face.x - left) * k, (face.y - top) * k, face.w * k, face.h * k
    # Probably face or hair: the face box widened to the sides and up, where the hair is.
    x0, x1 = int(fx - 0.25 * fw), int(fx + 1.25 * fw)
    y0, y1 = int(fy - 0.45 * fh), int(fy + 1.1 * fh)
    mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = cv2.GC_PR_FGD
    # Surely face: the middle of the box.
    mask[int(fy + 0.2 * fh):int(fy + 0.85 * fh), int(fx + 0.2 * fw):int(fx + 0.8 * fw)] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means from OpenCV's random generator, one per thread
    # and never reset: without a fixed seed the same photo's mask depends on which thread cut
    # it and what that thread cut before.
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(crop, mask, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a flat picture gives GrabCut nothing to learn: keep the starting guess
        pass
    hard = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    if n != side:
        hard = cv2.resize(hard, (side, side), interpolation=cv2.INTER_LINEAR)
    blur = max(3, int(side * feather) | 1)
    return np.clip(cv2.GaussianBlur(hard, (blur, blur), 0), 0.0, 1.0)


def composite(image: np.ndarray, anime: np.ndarray, mask: np.ndarray, left: int, top: int) -> np.ndarray:
    """The photo with the anime face blended in through ``mask`` at (left, top)."""
    out = image.astype(np.float32).copy()
    side = mask.shape[0]
    h, w = image.shape[:2]
    ys, xs = slice(max(0, top), min(h, top + side)), slice(max(0, left), min(w, left + side))
    my, mx = slice(ys.start - top, ys.stop - top), slice(xs.start - left, xs.stop - left)
    a = mask[my, mx, None]
    out[ys, xs] = a * anime[my, mx] + (1.0 - a) * out[ys, xs]
    return np.rint(out).astype(np.uint8)


@dataclass(frozen=True)
class PhotoResult:
    face: Box
    anime: np.ndarray        # the anime face at the model's size
    composite: np.ndarray    # the photo with the anime face blended over its face and hair
    crop: tuple[int, int, int]


class PhotoModel:
    """An exported photo -> anime generator, verified against its manifest, ready to run."""

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0):
        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        if not isinstance(self.manifest.input, PhotoInput):
            raise ValueError(f"{self.folder} does not turn photos into faces (its input is not a photo)")
        self.manifest.verify(self.folder)
        self.spec: PhotoInput = self.manifest.input
        self.session = open_session(self.folder / self.manifest.graphs()[0].file, providers, threads)
        self.providers = self.session.get_providers()
        #: the upscaler (``core.upscale.Upscaler``) that enlarges the anime face onto the photo; None: Lanczos
        self.upscaler = None

    @property
    def name(self) -> str:
        return self.manifest.name

    def anime(self, crops: np.ndarray) -> np.ndarray:
        """Face crops (N, S, S, 3) uint8 at the model's size -> anime faces (N, S, S, 3) uint8."""
        x = np.ascontiguousarray(crops.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)
        y = self.session.run(None, {self.session.get_inputs()[0].name: x})[0]
        return np.rint(np.clip((y + 1.0) * 127.5, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)

    def transform(self, photo: Image.Image) -> PhotoResult | None:
        """The anime version of the photo's face and the composite; None when no face is found."""
        image = np.asarray(photo.convert("RGB"))
        face = find_face(image)
        if face is None:
            return None
        left, top, side = crop_box(face, self.spec.crop_scale, self.spec.crop_shift)
        size = self.spec.image_size
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(cut(image, left, top, side)))
                          .resize((size, size), Image.Resampling.BILINEAR))
        anime = self.anime(crop[None])[0]
        if self.upscaler is not None:
            big = np.asarray(self.upscaler.resize(anime[None], side)[0]).astype(np.float32)
        else:
            big = np.asarray(Image.fromarray(anime).resize((side, side), Image.Resampling.LANCZOS)).astype(np.float32)
        mask = face_mask(image, face, left, top, side)
        return PhotoResult(face=face, anime=anime, composite=composite(image, big, mask, left, top),
                           crop=(left, top, side))
