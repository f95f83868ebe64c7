"""The registry of model kinds: every entry's training code can be found, the names it gives are
the ones the rest of the project reads, and an unknown kind is answered with the valid ones."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.kinds import EVALUATE, KINDS, Ref, UnknownKind, get_kind, kind_of_manifest


@pytest.mark.parametrize("name", list(KINDS))
def test_every_reference_of_a_kind_resolves_to_something_callable(name):
    kind = KINDS[name]
    assert kind.name == name and kind.title
    refs = {f.name: getattr(kind, f.name) for f in dataclasses.fields(kind) if isinstance(getattr(kind, f.name), Ref)}
    assert {"trainer", "exporter", "evaluator", "report"} <= set(refs)
    for what, ref in refs.items():
        assert callable(ref.load()), f"{name}.{what}: {ref.target}"
    assert kind.config.model_json_schema()["properties"]
    assert kind_of_manifest(kind.manifest_kind) is kind
    assert callable(EVALUATE.load())


def test_every_config_field_says_what_it_is():
    def fields(schema: dict, root: dict):
        for name, prop in schema.get("properties", {}).items():
            yield name, prop
            ref = prop.get("$ref")
            if ref:
                yield from fields(root["$defs"][ref.rsplit("/", 1)[1]], root)

    for kind in KINDS.values():
        schema = kind.config.model_json_schema()
        missing = [name for name, prop in fields(schema, schema) if not prop.get("description")]
        assert missing == [], f"{kind.name}: fields without a description: {missing}"


def test_a_bad_reference_is_refused_or_fails_to_load():
    with pytest.raises(ValueError, match="module:attribute"):
        Ref("training.train_gan.GANTrainer")
    with pytest.raises(AttributeError):
        Ref("core.kinds:NoSuchThing").load()


def test_an_unknown_kind_lists_the_valid_ones():
    with pytest.raises(UnknownKind, match="cyclegan, discogan, unit, lineart, selfie2anime, doodle_encoder, dcgan, lsgan, wgan_div, stylegan"):
        get_kind("biggan")
    with pytest.raises(UnknownKind, match="cyclegan-sketch2anime"):
        kind_of_manifest("biggan-anime-faces")


def test_the_cli_refuses_an_unknown_kind_with_the_valid_ones(tmp_path, capsys):
    from backend.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--kind", "biggan", "--run-dir", str(tmp_path)])
    assert "cyclegan" in capsys.readouterr().err  # argparse lists the choices
    config = tmp_path / "biggan.json"
    config.write_text(json.dumps({"kind": "biggan"}))
    with pytest.raises(SystemExit, match="unknown model kind 'biggan'; valid: cyclegan, discogan, unit, lineart, selfie2anime, doodle_encoder, dcgan"):
        main(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")])
