"""Read a shipped StyleGAN export (``mapping.onnx`` + ``synthesis.onnx``) back into the
project's own torch ``StyleGenerator``, so work that needs gradients through the generator (a
doodle encoder, further training) starts from exactly the weights that serve.

The ONNX graphs hold the weights after the exporter folded constants: the equalised-learning-
rate gains are multiplied in, a conv weight appears twice (once for the convolution, once
squared for the demodulation's sum of squares), biases are reshaped to (1, C, 1, 1) and each constant noise
map is already scaled by its strength. The graphs list their initializers in the order the
modules run, which is the order this reader consumes them in; every shape is checked on the way.
The one thing the folding loses is how a noise map splits into map x strength: the strength is
taken as the map's standard deviation (the map was drawn from N(0, 1)), which reproduces the
constant-noise output exactly and random noise of the right strength.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from core.manifest import ModelManifest
from training.gans.stylegan import EqualLinear, ModulatedConv2d, StyleGenerator, SynthesisLayer, ToRGB


class ExportMismatch(ValueError):
    """The ONNX graphs do not hold the weights of a generator of the manifest's shape."""


def _initializers(path: Path) -> Iterator[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    for init in onnx.load(str(path)).graph.initializer:
        yield numpy_helper.to_array(init).astype(np.float32)


class _Reader:
    def __init__(self, arrays: Iterator[np.ndarray], graph: str):
        self.arrays, self.graph = arrays, graph

    def take(self, shape: tuple[int, ...], what: str) -> torch.Tensor:
        try:
            a = next(self.arrays)
        except StopIteration:
            raise ExportMismatch(f"{self.graph}: ran out of weights at {what}") from None
        if a.size != math.prod(shape):
            raise ExportMismatch(f"{self.graph}: {what} should have shape {shape}, found {a.shape}")
        return torch.from_numpy(a.reshape(shape).copy())

    def done(self) -> None:
        if next(self.arrays, None) is not None:
            raise ExportMismatch(f"{self.graph}: more weights than the generator has")


def _linear(r: _Reader, layer: EqualLinear, what: str) -> None:
    out_f, in_f = layer.weight.shape
    layer.weight.data = r.take((out_f, in_f), f"{what} weight") / layer.weight_gain
    layer.bias.data = r.take((out_f,), f"{what} bias") / layer.bias_gain


def _modconv(r: _Reader, conv: ModulatedConv2d, what: str) -> None:
    _linear(r, conv.affine, f"{what} affine")
    shape = tuple(conv.weight.shape)
    w = r.take(shape, f"{what} weight")
    conv.weight.data = w / conv.weight_gain
    if conv.demodulate:
        squared = r.take(shape, f"{what} squared weight (demodulation)")
        if not torch.allclose(squared, w.square(), rtol=1e-5, atol=1e-7):
            raise ExportMismatch(f"{what}: the demodulation's squared weight is not the convolution weight squared")


def _layer(r: _Reader, layer: SynthesisLayer, what: str) -> None:
    _modconv(r, layer.conv, what)
    noise = r.take(tuple(layer.noise_const.shape), f"{what} noise")
    strength = float(noise.std())
    layer.noise_strength.data = torch.tensor(strength)
    layer.noise_const.data = noise / strength if strength > 0 else torch.randn_like(noise)
    layer.bias.data = r.take((layer.bias.shape[0],), f"{what} bias")


def _torgb(r: _Reader, torgb: ToRGB, what: str) -> None:
    _modconv(r, torgb.conv, what)
    torgb.bias.data = r.take((torgb.bias.shape[0],), f"{what} bias")


def generator_from_export(folder: Path) -> StyleGenerator:
    """The torch generator of a StyleGAN export folder, in eval mode, ``w_avg`` set.

    The manifest says the shape (z_dim, w_dim, image size, mapping layers); the width and the
    channel cap are read from the training config it records."""
    folder = Path(folder)
    manifest = ModelManifest.load(folder)
    manifest.verify(folder)
    spec = manifest.stylegan
    if spec is None:
        raise ExportMismatch(f"{folder} is not a StyleGAN export")
    config = manifest.training.get("config", {})
    G = StyleGenerator(spec.z_dim, spec.w_dim, spec.image_size, config.get("ngf", 32),
                       config.get("max_channels", 256), config.get("mapping_layers", 8),
                       config.get("mapping_lr_mult", 0.01))
    files = {m.label: folder / m.file for m in manifest.members}

    r = _Reader(_initializers(files[spec.mapping]), "mapping")
    for i, layer in enumerate(G.mapping.layers):
        _linear(r, layer, f"mapping layer {i}")
    r.done()
    G.mapping.w_avg.copy_(torch.tensor(spec.w_avg))

    s = G.synthesis
    r = _Reader(_initializers(files[spec.synthesis]), "synthesis")
    s.const.data = r.take(tuple(s.const.shape), "constant")
    _layer(r, s.conv4, "4x4 conv")
    _torgb(r, s.torgb4, "4x4 toRGB")
    for block in s.blocks:
        res = block.conv1.noise_const.shape[-1]
        _layer(r, block.conv0, f"{res}x{res} conv0")
        _layer(r, block.conv1, f"{res}x{res} conv1")
        _torgb(r, block.torgb, f"{res}x{res} toRGB")
    r.done()
    return G.eval().requires_grad_(False)
