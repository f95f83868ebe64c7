"""Configurations of the model kinds: pydantic models, no torch, one module per family."""
