"""Any CycleGAN job the schema admits trains: a property-based test (hypothesis).

The strategy is made from the config's own JSON schema (the same one the dashboard's form and
the API's job validation use): every field takes values from its declared type and bounds. The
fields that only make a run bigger (image size, widths, blocks, batch, how many faces are read)
are capped so that two steps stay cheap; everything else ranges over what the schema allows.
A config the schema refuses is skipped; one it admits must train two steps without an error.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.configs.cyclegan import CycleGANConfig

#: Upper bounds on the fields that only make two steps slower.
COST_CAPS = {"image_size": 36, "raster_size": 40, "ngf": 8, "ndf": 8, "n_blocks": 2, "batch_size": 3,
             "anime_limit": 12, "eval_count": 3, "cycle_steps": 50}
#: Fixed: two steps, and nothing written that a run of two steps would not write anyway.
FIXED = {"steps": 2}


def _number(prop: dict, integer: bool, cap: float | None):
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    lo = -1000 if lo is None else lo
    hi = 1000 if hi is None else hi
    if cap is not None:
        hi = min(hi, cap)
    if integer:
        lo, hi = math.ceil(lo), math.floor(hi)
        return st.integers(lo - 2, hi)  # a little below the bound too: the schema must refuse it
    return st.floats(lo, hi, allow_nan=False, exclude_min="exclusiveMinimum" in prop,
                     exclude_max="exclusiveMaximum" in prop)


def _strategy(prop: dict, defs: dict, name: str):
    if "$ref" in prop:
        target = defs[prop["$ref"].split("/")[-1]]
        return st.fixed_dictionaries({k: _strategy(v, defs, k) for k, v in target["properties"].items()})
    if "anyOf" in prop:
        return st.one_of([_strategy(p, defs, name) if p.get("type") != "null" else st.none() for p in prop["anyOf"]])
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    if "const" in prop:
        return st.just(prop["const"])
    kind = prop.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return _number(prop, kind == "integer", COST_CAPS.get(name))
    raise AssertionError(f"no strategy for {name}: {prop}")


def configs():
    schema = CycleGANConfig.model_json_schema()
    defs = schema.get("$defs", {})
    fields = {k: _strategy(v, defs, k) for k, v in schema["properties"].items() if k not in FIXED}
    return st.fixed_dictionaries(fields)


@pytest.mark.slow
@settings(max_examples=5, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                                    HealthCheck.too_slow])
@given(raw=configs())
def test_every_cyclegan_config_the_schema_admits_trains_two_steps(raw, data_dir):
    from training.train_cyclegan import CycleGANTrainer

    try:
        config = CycleGANConfig.model_validate({**raw, **FIXED, "decay_steps": min(raw["decay_steps"], 2),
                                                "anime_limit": raw["anime_limit"] or 12})
    except ValidationError:
        assume(False)  # refused by the schema: nothing to train
        return
    with tempfile.TemporaryDirectory() as run:
        CycleGANTrainer(config, Path(run), data_dir, threads=1).run()


def test_the_settings_that_used_to_crash_are_refused():
    for bad in ({"image_size": 16}, {"image_size": 30}, {"batch_size": 1, "minibatch_discrimination": True}):
        with pytest.raises(ValidationError):
            CycleGANConfig(**bad)
