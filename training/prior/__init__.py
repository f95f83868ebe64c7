"""The StyleGAN prior the drawing model is built on: its torch weights, read back from a shipped
export, and what is measured on it."""
