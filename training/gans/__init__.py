"""Unconditional anime-face generators: one file per architecture (``dcgan``, ``stylegan``), the
adversarial losses in ``losses``. The training loop is ``training.train_gan``."""
