"""The names an evaluation (FID / KID) writes into a model version's metrics: a new evaluation
replaces all of them, and leaves the training metrics beside them alone."""

from __future__ import annotations

#: Metrics an evaluation writes besides the fid* / kid* values.
EVALUATION_KEYS = frozenset({
    "n_samples", "n_samples_requested", "n_real", "kid_subset_size", "kid_subsets", "feature_extractor",
    "real_set", "real_sha256", "real_stats_cache", "eval_seed", "eval_wall_s", "evaluated_at",
    "evaluation_error", "sampler", "model",
})


def is_evaluation_key(key: str) -> bool:
    return key in EVALUATION_KEYS or key.startswith(("fid", "kid"))
