"""Random faces from an exported StyleGAN, with ONNX Runtime (no torch): the work of the
``sampling`` queue.

The model folder holds two graphs: mapping (z -> w) and synthesis (one w per style input ->
image). Truncation and style mixing happen between them, in numpy, as in StyleGAN:
``w' = w_avg + psi * (w - w_avg)``, and a mixed face takes the w of one face for some style
inputs and the w of another for the rest. A seed's z is drawn with numpy's ``RandomState(seed)``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.manifest import ModelManifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleSpec:
    z_dim: int
    w_dim: int
    num_ws: int
    w_avg: np.ndarray
    image_size: int


class FaceModel:
    """An exported StyleGAN, verified against its manifest, ready to sample."""

    def __init__(self, folder: Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        from backend.inference import session_providers

        self.folder = Path(folder)
        self.manifest = ModelManifest.load(self.folder)
        self.manifest.verify(self.folder)
        style = self.manifest.stylegan
        if style is None:
            raise ValueError(f"{self.folder} is not a StyleGAN export (its manifest has no stylegan block)")
        self.spec = StyleSpec(z_dim=style.z_dim, w_dim=style.w_dim, num_ws=style.num_ws,
                              w_avg=np.asarray(style.w_avg, np.float32), image_size=self.manifest.output.image_size)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        wanted = session_providers(providers)
        files = {m.label or m.file: self.folder / m.file for m in self.manifest.members}
        self.mapping = ort.InferenceSession(str(files[style.mapping]), sess_options=opts, providers=wanted)
        self.synthesis = ort.InferenceSession(str(files[style.synthesis]), sess_options=opts, providers=wanted)
        self.providers = self.synthesis.get_providers()

    # -- the steps -----------------------------------------------------------------------------

    def z(self, seeds: list[int]) -> np.ndarray:
        return np.stack([np.random.RandomState(s).randn(self.spec.z_dim) for s in seeds]).astype(np.float32)

    def w(self, seeds: list[int], psi: float) -> np.ndarray:
        """(N, w_dim) mapped and truncated."""
        z = self.z(seeds)
        w = self.mapping.run(None, {self.mapping.get_inputs()[0].name: z})[0]
        return self.spec.w_avg + psi * (w - self.spec.w_avg)

    def images(self, ws: np.ndarray) -> list[Image.Image]:
        """(N, num_ws, w_dim) -> PIL images."""
        out = self.synthesis.run(None, {self.synthesis.get_inputs()[0].name: ws.astype(np.float32)})[0]
        pixels = np.clip((out.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return [Image.fromarray(p) for p in pixels]

    def broadcast(self, w: np.ndarray) -> np.ndarray:
        return np.repeat(w[:, None, :], self.spec.num_ws, axis=1)

    def layer_range(self, layers: str | list[int] | tuple[int, int]) -> tuple[int, int]:
        """[first, last) style inputs for a group name or an explicit [first, last] pair."""
        from backend.faces import LAYER_GROUPS

        n = self.spec.num_ws
        if isinstance(layers, str):
            lo, hi = LAYER_GROUPS[layers]
            first, last = int(round(lo * n)), int(round(hi * n))
            return first, max(last, first + 1)
        first, last = int(layers[0]), int(layers[1])
        if not 0 <= first <= last < n:
            raise ValueError(f"layers [{first}, {last}] are outside 0..{n - 1}")
        return first, last + 1

    # -- the pictures ----------------------------------------------------------------------------

    def faces(self, seeds: list[int], psi: float, size: int) -> Image.Image:
        imgs = self.images(self.broadcast(self.w(seeds, psi)))
        return _row([im.resize((size, size), Image.Resampling.LANCZOS) for im in imgs], size)

    def mix(self, row_seeds: list[int], col_seeds: list[int], layers, psi: float, size: int) -> Image.Image:
        """A grid as in StyleGAN's figure: top row the column faces, left column the row faces,
        and inside, each column face with the chosen style inputs taken from the row face."""
        first, last = self.layer_range(layers)
        w_rows, w_cols = self.w(row_seeds, psi), self.w(col_seeds, psi)
        cols = self.images(self.broadcast(w_cols))
        rows = self.images(self.broadcast(w_rows))
        grid = Image.new("RGB", ((len(col_seeds) + 1) * size, (len(row_seeds) + 1) * size), "white")
        for j, im in enumerate(cols):
            grid.paste(im.resize((size, size), Image.Resampling.LANCZOS), ((j + 1) * size, 0))
        for i, im in enumerate(rows):
            grid.paste(im.resize((size, size), Image.Resampling.LANCZOS), (0, (i + 1) * size))
            ws = self.broadcast(w_cols).copy()
            ws[:, first:last, :] = w_rows[i]
            for j, mixed in enumerate(self.images(ws)):
                grid.paste(mixed.resize((size, size), Image.Resampling.LANCZOS), ((j + 1) * size, (i + 1) * size))
        return grid

    def interpolate(self, seed_a: int, seed_b: int, frames: int, psi: float, size: int) -> list[Image.Image]:
        """Frames along the straight line between the two faces' w (w space is the smooth one)."""
        wa, wb = self.w([seed_a, seed_b], psi)
        t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None]
        imgs = self.images(self.broadcast(wa[None] * (1 - t) + wb[None] * t))
        return [im.resize((size, size), Image.Resampling.LANCZOS) for im in imgs]


def _row(images: list[Image.Image], size: int) -> Image.Image:
    strip = Image.new("RGB", (size * len(images), size))
    for k, im in enumerate(images):
        strip.paste(im, (k * size, 0))
    return strip


def render(model: FaceModel, kind: str, params: dict) -> tuple[bytes, str]:
    """The picture of a request, encoded: (bytes, media type)."""
    buf = io.BytesIO()
    if kind == "faces":
        model.faces(params["seeds"], params["psi"], params["size"]).save(buf, "PNG")
        return buf.getvalue(), "image/png"
    if kind == "mix":
        model.mix(params["row_seeds"], params["col_seeds"], params["layers"], params["psi"], params["size"]).save(buf, "PNG")
        return buf.getvalue(), "image/png"
    if kind == "interpolate":
        frames = model.interpolate(params["seed_a"], params["seed_b"], params["frames"], params["psi"], params["size"])
        if params.get("format") == "strip":
            _row(frames, params["size"]).save(buf, "PNG")
            return buf.getvalue(), "image/png"
        loop = frames + frames[-2:0:-1]  # there and back again
        loop[0].save(buf, "GIF", save_all=True, append_images=loop[1:], duration=120, loop=0)
        return buf.getvalue(), "image/gif"
    raise ValueError(f"unknown sample kind {kind!r}; valid: faces, mix, interpolate")


_models: dict[str, FaceModel] = {}


def model_for(folder: str) -> FaceModel:
    """One loaded model per folder and process (the worker keeps it between requests); a folder
    whose manifest changed is loaded again. It runs on the settings' providers and threads."""
    from backend.settings import get_settings

    manifest = Path(folder) / "manifest.json"
    key = f"{folder}:{manifest.stat().st_mtime_ns}"
    if key not in _models:
        _models.clear()
        settings = get_settings()
        _models[key] = FaceModel(Path(folder), settings.providers, settings.intra_op_threads)
    return _models[key]


def run_sample_request(request_id: int) -> str:
    """The sampling task: make the request's picture, store it under its cache key."""
    from backend.db.models import SampleRequest, utcnow
    from backend.jobs.service import session_factory
    from backend.settings import get_settings

    settings = get_settings()
    with session_factory()() as db:
        req = db.get(SampleRequest, request_id)
        if req is None or req.status not in ("queued", "running"):
            return "skipped"
        req.status = "running"
        db.commit()
        try:
            data, media_type = render(model_for(req.model_folder), req.kind, req.params)
            suffix = ".gif" if media_type == "image/gif" else ".png"
            out = Path(settings.samples_dir) / f"{req.cache_key}{suffix}"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(out)
            req.status, req.result_path, req.media_type = "done", str(out), media_type
        except Exception as exc:  # noqa: BLE001 - the request says what went wrong
            log.exception("sample request %d failed", request_id)
            req.status, req.error = "failed", f"{type(exc).__name__}: {exc}"
        req.finished_at = utcnow()
        db.commit()
        return req.status
