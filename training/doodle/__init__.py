"""The drawing model: a doodle encoder onto the StyleGAN prior, and how drawing models are measured."""
