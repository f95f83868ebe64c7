"""The torch-free core that the API and training both build on, and that depends on neither:
strokes and the rasterizer, the model's input and output contract, model manifests, the model
kinds' configurations, the progress channel of a training loop, and the exported models at work
in ONNX Runtime."""
