"""The anime upscaler: a small CNN that doubles a face's side (applied twice for 4x), trained on
degraded copies of real anime faces, exported to ONNX and run on every face the product returns
larger than the generators make it (``core.upscale``)."""
