"""FID and KID of generated images against a real set, and the features they are computed on.

Two feature extractors, never to be confused:

- ``InceptionFeatures``: the 2048-d pool features of the FID Inception-v3, the network that
  pytorch-fid loads from ``pt_inception-2015-12-05-6726825d.pth`` (TensorFlow's 2015-12-05
  Inception graph ported to PyTorch). The protocol is pytorch-fid's: uint8 RGB images scaled
  to [0, 1], resized to 299x299 by bilinear interpolation (``align_corners=False``, no
  antialiasing), scaled to [-1, 1], features taken after the final average pool. The weights
  cannot be downloaded here: the operator sets their path (``D2A_INCEPTION_WEIGHTS`` or
  ``--inception-weights``) and the file is refused unless its sha256 is the published one.
  Metric names: ``fid``, ``kid``.
- ``RandomConvFeatures`` (``rand-conv-v1``): a seeded, randomly initialised conv net that needs
  no download, deterministic across runs and machines on the CPU. It ranks our own models
  against each other and nothing more; its metrics are named ``fid_randconv`` and
  ``kid_randconv`` and every metrics dict made with it says so in ``feature_extractor``.

Real-set features are cached on disk (``Settings.metrics_cache_dir``), keyed by the real set's
sha256, image count, image size and extractor id; a corrupt cache file is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: sha256 of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (95,628,359 bytes); the
#: file name carries its first 8 hex digits. The same file is published by torch-fidelity as
#: ``weights-inception-2015-12-05-6726825d.pth``.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_ID = "inception-v3-pt_inception-2015-12-05"
INCEPTION_LABEL = "inception-v3 pytorch-fid (pt_inception-2015-12-05)"
RANDCONV_ID = "rand-conv-v1"
RANDCONV_LABEL = "rand-conv-v1 (substitute; NOT comparable to published FID)"

#: Version of the cache file layout; part of every cache key.
CACHE_FORMAT = 1


class InceptionWeightsError(RuntimeError):
    """The Inception weights file is missing or is not the published one."""


# ---------------------------------------------------------------------------------------------
# The two distances.


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a set of feature vectors (float64)."""

    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> "FeatureStats":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {f.shape}")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False))


def frechet_distance(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    The square root of the product is ``scipy.linalg.sqrtm``. When the covariances are
    (near-)singular (fewer samples than dimensions) the root can come out non-finite or with a
    sizeable imaginary part; then ``eps`` is added to both diagonals and the root taken again.
    A small imaginary part left by rounding is dropped; a large one is an error.
    """
    from scipy import linalg

    mu_a, mu_b = np.atleast_1d(a.mu), np.atleast_1d(b.mu)
    s_a, s_b = np.atleast_2d(a.sigma), np.atleast_2d(b.sigma)
    if mu_a.shape != mu_b.shape or s_a.shape != s_b.shape or s_a.shape != (len(mu_a), len(mu_a)):
        raise ValueError(f"statistics of different shapes: {mu_a.shape}/{s_a.shape} and {mu_b.shape}/{s_b.shape}")

    def root(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular products are handled below
            return linalg.sqrtm(x @ y)

    def usable(m: np.ndarray) -> bool:
        return bool(np.isfinite(m).all()) and (not np.iscomplexobj(m) or np.allclose(np.diagonal(m).imag, 0, atol=1e-3))

    covmean = root(s_a, s_b)
    if not usable(covmean):
        log.warning("Fréchet distance: singular product of covariances; adding %g to their diagonals", eps)
        offset = np.eye(len(mu_a)) * eps
        covmean = root(s_a + offset, s_b + offset)
        if not usable(covmean):
            worst = np.abs(np.diagonal(covmean).imag).max() if np.iscomplexobj(covmean) else float("nan")
            raise ValueError(f"the square root of the covariance product is not real (imaginary part {worst:.3g})")
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))


# ---------------------------------------------------------------------------------------------
# Fine texture: sliced Wasserstein distance of Laplacian-pyramid patches.

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _blur5(x: np.ndarray) -> np.ndarray:
    """Separable 5-tap binomial blur of (N, H, W, C) images, edges reflected."""
    pad = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    rows = sum(k * pad[:, i : i + h] for i, k in enumerate(_BINOMIAL))
    return sum(k * rows[:, :, i : i + w] for i, k in enumerate(_BINOMIAL))


def laplacian_bands(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """uint8 (N, S, S, 3) -> ``levels`` band-pass images, finest first: each level is the image
    minus its binomial blur (what lives at that scale and only there), and the next level is the
    blur at half the side."""
    x = images.astype(np.float32) / 127.5 - 1.0
    bands = []
    for _ in range(levels):
        low = _blur5(x)
        bands.append(x - low)
        x = low[:, ::2, ::2]
    return bands


def _patches(band: np.ndarray, count: int, rng: np.random.Generator, size: int = 7) -> np.ndarray:
    """``count`` random size x size patches of a band (N, H, W, C), flattened."""
    n, h, w, _ = band.shape
    i = rng.integers(0, n, count)
    y = rng.integers(0, h - size + 1, count)
    x = rng.integers(0, w - size + 1, count)
    offsets = np.arange(size)
    rows = (y[:, None] + offsets)[:, :, None]
    cols = (x[:, None] + offsets)[:, None, :]
    return band[i[:, None, None], rows, cols].reshape(count, -1)


class LaplacianSWD:
    """How real the fine texture of a set of images is: the sliced Wasserstein distance (as in
    ProGAN's multi-scale SWD) between 7x7 patches of the images' Laplacian bands and those of a
    reference set. The pooled-pixel and random-conv distances hardly see a face grown grainy or
    blotchy at 1-2 px; this does. Every set gives the same number of patches (drawn with a fixed
    seed), normalised with the reference's per-channel mean and spread, projected on the same
    random unit directions; the distance is the mean over directions of the mean absolute gap
    between the sorted projections. Level 0 is the finest (the full side), level 1 half of it."""

    def __init__(self, reference: np.ndarray, levels: int = 2, patches: int = 16384, directions: int = 512,
                 seed: int = 0):
        self.levels, self.patches, self.seed = levels, patches, seed
        ref = self._descriptors(reference)
        self.mean = [d.reshape(len(d), -1, 3).mean(axis=(0, 1)) for d in ref]
        self.std = [d.reshape(len(d), -1, 3).std(axis=(0, 1)) + 1e-8 for d in ref]
        rng = np.random.default_rng([seed, 1])
        dims = ref[0].shape[1]
        dirs = rng.standard_normal((dims, directions)).astype(np.float32)
        self.directions = dirs / np.linalg.norm(dirs, axis=0, keepdims=True)
        self.reference = [self._projected(d, level) for level, d in enumerate(ref)]

    def _descriptors(self, images: np.ndarray) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, 0])
        return [_patches(band, self.patches, rng) for band in laplacian_bands(images, self.levels)]

    def _projected(self, d: np.ndarray, level: int) -> np.ndarray:
        normal = (d.reshape(len(d), -1, 3) - self.mean[level]) / self.std[level]
        return np.sort(normal.reshape(len(d), -1) @ self.directions, axis=0)

    def distances(self, images: np.ndarray) -> list[float]:
        """One distance per level, finest first (0: the reference's own patches)."""
        return [float(np.abs(self._projected(d, level) - self.reference[level]).mean())
                for level, d in enumerate(self._descriptors(images))]


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size sets with the kernel k(a, b) = (a.b / d + 1)^3."""
    m, d = x.shape
    if y.shape != (m, d) or m < 2:
        raise ValueError(f"need two sets of the same shape (m >= 2, d), got {x.shape} and {y.shape}")
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subset_size: int = 1000, subsets: int = 100,
                              seed: int = 0) -> tuple[float, float, int]:
    """KID: the polynomial-kernel MMD^2 averaged over ``subsets`` random pairs of subsets of
    ``subset_size`` (fewer when a set is smaller), drawn without replacement with ``seed``.
    Returns (mean, std over the subsets, the subset size used)."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sets of different shapes: {real.shape} and {fake.shape}")
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 generated feature vectors")
    rng = np.random.default_rng(seed)
    values = np.array([
        polynomial_mmd2(real[rng.choice(len(real), m, replace=False)], fake[rng.choice(len(fake), m, replace=False)])
        for _ in range(max(1, subsets))
    ])
    return float(values.mean()), float(values.std()), m


# ---------------------------------------------------------------------------------------------
# Feature extractors.


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (0: leave torch's setting)."""
    import torch

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads > 0:
            torch.set_num_threads(before)


class FeatureExtractor(ABC):
    """Images in, one feature vector per image out."""

    #: Part of the cache key: changes whenever the features would.
    id: str
    #: Stored with every metric made from these features.
    label: str
    #: Appended to the metric names (``fid`` + suffix).
    metric_suffix: str
    dim: int

    def features(self, images: np.ndarray, batch_size: int = 50, threads: int = 0) -> np.ndarray:
        """uint8 RGB images (N, H, W, 3) to float64 features (N, dim), ``batch_size`` at a time."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
        import torch

        out = []
        with torch_threads(threads), torch.inference_mode():
            for i in range(0, len(images), max(1, batch_size)):
                out.append(self._batch(images[i : i + max(1, batch_size)]))
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.dim))

    @abstractmethod
    def _batch(self, images: np.ndarray) -> np.ndarray: ...


class RandomConvFeatures(FeatureExtractor):
    """A fixed random conv net: four 3x3 stride-2 convolutions (32, 64, 128, 256 channels) with
    ReLU and a global average pool, weights He-normal from ``torch.Generator().manual_seed(seed)``
    and zero biases, run in float64 on the CPU. Images are resized (bilinear, antialiased) to
    ``input_size`` when they differ and scaled to [-1, 1].

    The same network, seed and input as the sketch-mix study's ``rf_fd`` (which now uses it)."""

    metric_suffix = "_randconv"
    label = RANDCONV_LABEL
    dim = 256

    def __init__(self, seed: int = 0, input_size: int = 64):
        import torch

        self.id = RANDCONV_ID if (seed, input_size) == (0, 64) else f"{RANDCONV_ID}-seed{seed}-in{input_size}"
        self.label = RANDCONV_LABEL.replace(RANDCONV_ID, self.id, 1)
        self.input_size = input_size
        g = torch.Generator().manual_seed(seed)
        self.weights = []
        ch = 3
        for out in (32, 64, 128, 256):
            w = torch.randn((out, ch, 3, 3), generator=g) * (2.0 / (ch * 9)) ** 0.5
            self.weights.append(w.double())
            ch = out

    def _batch(self, images: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double()
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True)
        x = x / 127.5 - 1.0
        for w in self.weights:
            x = F.relu(F.conv2d(x, w, stride=2, padding=1))
        return x.mean(dim=(2, 3)).numpy()


def _fid_blocks():
    """The FID Inception's own blocks, built on torchvision's: the TF graph averages only over
    the real pixels at the borders (``count_include_pad=False``), and the last block max-pools."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    def avg_pool(x):
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    class FIDInceptionA(InceptionA):
        """InceptionA with the border-exact average pool."""

        def pool(self, x):
            return avg_pool(x)

        def _forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))]

    class FIDInceptionC(InceptionC):
        """InceptionC with the border-exact average pool."""

        def pool(self, x):
            return avg_pool(x)

        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            b7d = x
            for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                         self.branch7x7dbl_5):
                b7d = conv(b7d)
            return [self.branch1x1(x), b7, b7d, self.branch_pool(self.pool(x))]

    class FIDInceptionE(InceptionE):
        """InceptionE whose pool branch averages border-exactly (``pool="avg"``, Mixed_7b) or
        takes the maximum (``pool="max"``, Mixed_7c), as in the TF graph."""

        def __init__(self, in_channels: int, pool: str = "avg", **kwargs):
            super().__init__(in_channels, **kwargs)
            if pool not in ("avg", "max"):
                raise ValueError(f"pool must be avg or max, got {pool!r}")
            self.pool_kind = pool

        def pool(self, x):
            if self.pool_kind == "max":
                return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
            return avg_pool(x)

        def _forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
            return [self.branch1x1(x), b3, b3d, self.branch_pool(self.pool(x))]

    return FIDInceptionA, FIDInceptionC, FIDInceptionE


def build_fid_inception():
    """The FID Inception-v3 with uninitialised weights: torchvision's Inception3 layout (1008
    logits, no auxiliary head) with the FID variants of the A, C and E blocks."""
    import torch
    from torchvision.models.inception import BasicConv2d, Inception3, InceptionAux, InceptionB, InceptionD

    FIDInceptionA, FIDInceptionC, FIDInceptionE = _fid_blocks()

    class FIDInceptionV3(Inception3):
        def __init__(self):
            super().__init__(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False,
                             inception_blocks=[BasicConv2d, FIDInceptionA, InceptionB, FIDInceptionC, InceptionD,
                                               partial(FIDInceptionE, pool="avg"), InceptionAux])
            self.Mixed_7c = FIDInceptionE(2048, pool="max")

        def pool_features(self, x: torch.Tensor) -> torch.Tensor:
            """(N, 3, 299, 299) in [-1, 1] to the (N, 2048) features after the final average pool."""
            for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                         "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                         "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
                x = getattr(self, name)(x)
            return torch.flatten(x, 1)

    return FIDInceptionV3().eval()


def verify_inception_weights(path: Path, expected_sha256: str = INCEPTION_SHA256) -> str:
    """The file's sha256 when it is the expected one; InceptionWeightsError otherwise."""
    from core.manifest import sha256_file

    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"Inception weights not found at {path}; set D2A_INCEPTION_WEIGHTS to "
                                    f"pytorch-fid's {INCEPTION_FILE_NAME}")
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise InceptionWeightsError(
            f"{path} has sha256 {digest}, not {expected_sha256} (pytorch-fid's {INCEPTION_FILE_NAME}); "
            "refusing to load it: FIDs from other weights are not comparable")
    return digest


def load_fid_inception(path: Path, expected_sha256: str = INCEPTION_SHA256):
    """The FID Inception with the weights at ``path``, after their sha256 check."""
    import torch

    verify_inception_weights(path, expected_sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an old pickle the safe loader does not read
        # Only reached with the file whose sha256 is pinned above, so unpickling it is safe.
        log.info("loading %s with the full unpickler (%s)", path, type(exc).__name__)
        state = torch.load(path, map_location="cpu", weights_only=False)
    net = build_fid_inception()
    net.load_state_dict(state, strict=True)
    return net.eval()


class InceptionFeatures(FeatureExtractor):
    """The FID Inception's pool features, pytorch-fid's protocol (see the module docstring)."""

    id = INCEPTION_ID
    label = INCEPTION_LABEL
    metric_suffix = ""
    dim = 2048

    def __init__(self, weights: Path, device: str = "cpu", expected_sha256: str = INCEPTION_SHA256):
        """``expected_sha256`` is for tests of the loader only: the label promises pytorch-fid's file."""
        self.device = device
        self.net = load_fid_inception(Path(weights), expected_sha256).to(device)

    def _batch(self, images: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0
        return self.net.pool_features(x).cpu().numpy()


def make_extractor(inception_weights: Path | None, device: str = "cpu") -> FeatureExtractor:
    """The FID Inception when a weights file is given, else the labelled substitute."""
    if inception_weights is not None:
        return InceptionFeatures(Path(inception_weights), device=device)
    log.warning("no Inception weights set (D2A_INCEPTION_WEIGHTS / --inception-weights): using the substitute "
                "extractor %s; its numbers are NOT comparable to published FID", RANDCONV_ID)
    return RandomConvFeatures()


# ---------------------------------------------------------------------------------------------
# Real sets and their cached features.


@dataclass(frozen=True)
class RealImages:
    """A real image set: what identifies it (content sha256, image count, image size) and how
    to decode it. The identity is known without decoding, so a cache hit decodes nothing."""

    sha256: str
    count: int
    image_size: int
    source: str
    load: Callable[[], np.ndarray]

    @classmethod
    def from_zip(cls, path: Path, size: int | None = None, limit: int | None = None) -> "RealImages":
        """The images of a zip (sorted by name, the first ``limit``), at ``size`` (None: as stored)."""
        from core.manifest import sha256_file
        from training.data import DataError, load_image_zip, zip_image_names

        path = Path(path)
        if not path.is_file():
            raise DataError(f"real image set not found: {path}")
        with zipfile.ZipFile(path) as zf:
            names = zip_image_names(zf)[:limit]
            if not names:
                raise DataError(f"no images in {path}")
            if size is None:
                with Image.open(io.BytesIO(zf.read(names[0]))) as im:
                    size = im.size[0]
        return cls(sha256=sha256_file(path), count=len(names), image_size=size, source=str(path),
                   load=partial(load_image_zip, path, size, limit))

    @classmethod
    def from_array(cls, images: np.ndarray, source: str = "in-memory images") -> "RealImages":
        images = np.ascontiguousarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"expected square uint8 RGB images (N, S, S, 3), got {images.dtype} {images.shape}")
        h = hashlib.sha256(repr(images.shape).encode())
        h.update(images.tobytes())
        return cls(sha256=h.hexdigest(), count=len(images), image_size=images.shape[1], source=source,
                   load=lambda: images)


@dataclass(frozen=True)
class RealFeatures:
    features: np.ndarray
    stats: FeatureStats
    cache: str  # "hit", "miss" or "off"


def cache_key(real: RealImages, extractor: FeatureExtractor) -> dict:
    return {"format": CACHE_FORMAT, "sha256": real.sha256, "count": real.count, "image_size": real.image_size,
            "extractor": extractor.id}


def cache_path(cache_dir: Path, real: RealImages, extractor: FeatureExtractor) -> Path:
    return Path(cache_dir) / f"{extractor.id}-{real.sha256[:16]}-n{real.count}-s{real.image_size}.npz"


def _read_cache(path: Path, key: dict, dim: int) -> RealFeatures | None:
    """The cached features when the file is whole and made for ``key``; None otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["key"]))
            features, mu, sigma = z["features"], z["mu"], z["sigma"]
        if stored != key:
            raise ValueError(f"made for {stored}")
        if features.shape != (key["count"], dim) or mu.shape != (dim,) or sigma.shape != (dim, dim):
            raise ValueError(f"arrays of unexpected shapes {features.shape}, {mu.shape}, {sigma.shape}")
        if not (np.isfinite(features).all() and np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ValueError("non-finite values")
    except Exception as exc:  # noqa: BLE001 - any unreadable cache file is simply made again
        log.warning("metrics cache %s is unusable (%s: %s); recomputing", path, type(exc).__name__, exc)
        return None
    return RealFeatures(features.astype(np.float64), FeatureStats(mu, sigma), "hit")


def _write_cache(path: Path, key: dict, features: np.ndarray, stats: FeatureStats) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), features=features.astype(np.float32),
                     mu=stats.mu, sigma=stats.sigma)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def real_features(real: RealImages, extractor: FeatureExtractor, cache_dir: Path | None = None,
                  batch_size: int = 50, threads: int = 0) -> RealFeatures:
    """Features and statistics of the real set, from the cache when it has them.

    The cache stores the features as float32 (the statistics as computed, in float64); a miss
    returns the features rounded the same way, so a hit gives exactly the FID and KID of the
    miss that wrote the file."""
    key = cache_key(real, extractor)
    path = cache_path(cache_dir, real, extractor) if cache_dir is not None else None
    if path is not None:
        hit = _read_cache(path, key, extractor.dim)
        if hit is not None:
            log.info("real-set features from the cache: %s", path)
            return hit
    t0 = time.perf_counter()
    features = extractor.features(real.load(), batch_size=batch_size, threads=threads)
    stats = FeatureStats.of(features)
    log.info("features of %d real images (%s) with %s in %.1f s", real.count, real.source, extractor.id,
             time.perf_counter() - t0)
    if path is None:
        return RealFeatures(features, stats, "off")
    _write_cache(path, key, features, stats)
    return RealFeatures(features.astype(np.float32).astype(np.float64), stats, "miss")


def compare(real: RealFeatures, fake: np.ndarray, extractor: FeatureExtractor, *, kid_subset_size: int = 1000,
            kid_subsets: int = 100, seed: int = 0) -> dict:
    """FID and KID (named for the extractor) of generated features against the real ones."""
    s = extractor.metric_suffix
    fid = frechet_distance(real.stats, FeatureStats.of(fake))
    kid, kid_std, m = kernel_inception_distance(real.features, fake, kid_subset_size, kid_subsets, seed)
    return {f"fid{s}": fid, f"kid{s}": kid, f"kid{s}_std": kid_std, "kid_subset_size": m,
            "kid_subsets": max(1, kid_subsets), "feature_extractor": extractor.label}
