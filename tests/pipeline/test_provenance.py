"""Which settings change a submodel: decided by exclusion, every key of the schema classified."""

import copy

import pytest
from conftest import REPO

from ame import scenarios
from ame.pipeline import params
from ame.pipeline.plan import design
from ame.pipeline.provenance import (
    NOT_SUBMODEL,
    ONLY_WHEN_ON,
    SUBMODEL_SECTIONS,
    run_key,
    submodel_fingerprint,
    submodel_settings,
)
from ame.sampling import MaskSet


@pytest.fixture(scope="module")
def config():
    return params.load(REPO / "params.yaml")


def _schema_keys(section):
    return set(params.schema()["properties"][section]["properties"])


def _other_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 7
    return [*value, value[-1]] if isinstance(value, list) else {"x": 1}


def test_every_excluded_setting_exists_in_the_schema():
    for section, keys in (*NOT_SUBMODEL.items(), *ONLY_WHEN_ON.items()):
        assert section in SUBMODEL_SECTIONS
        assert set(keys) <= _schema_keys(section), section


@pytest.mark.parametrize("section", SUBMODEL_SECTIONS)
def test_every_key_is_classified_and_only_excluded_keys_keep_the_run_key(config, section):
    """Every schema key of the section either changes the run key or is listed as excluded."""
    for key in sorted(_schema_keys(section)):
        changed = copy.deepcopy(config)
        changed[section][key] = (
            "npz" if (section, key) == ("dataset", "name") else _other_value(config[section][key])
        )
        # the plug-in's keys count only when the plug-in is in use (see the test below)
        excluded = key in NOT_SUBMODEL.get(section, ()) or (
            section == "dataset" and key in scenarios.get(config).ignored
        )
        assert (run_key(changed) == run_key(config)) == excluded, f"{section}.{key}"
        when_on = key in ONLY_WHEN_ON.get(section, ())  # counted only when on (off by default)
        assert (key in submodel_settings(config)[section]) == (not excluded and not when_on)
        assert (key in submodel_settings(changed)[section]) == (not excluded)


def test_the_default_run_key_is_unchanged(config):
    """The digits demo's submodels keep their folder (and bytes) across this refactor."""
    assert run_key(config) == "cf0f22f8c80a"


def test_a_fingerprint_names_data_bits_p_settings_and_seed(config):
    masks = MaskSet.draw(20, 3, design(config), seed=0)
    fp = submodel_fingerprint(config, "data-hash", masks, 2)
    assert fp["subset"] == 2 and fp["dataset"] == "data-hash" and fp["n_points"] == 20
    assert fp["p"] == masks.p[2] and fp["seed"] == config["training"]["seed"]
    other = submodel_fingerprint(config, "data-hash", masks, 1)
    assert other["mask_sha256"] != fp["mask_sha256"] or masks.p[1] != masks.p[2]
    per_subset = copy.deepcopy(config)
    per_subset["training"]["seed_policy"] = "per_subset"
    assert (
        submodel_fingerprint(per_subset, "d", masks, 2)["seed"]
        == per_subset["training"]["seed"] + 2
    )


def test_plugin_source_and_options_enter_the_run_key(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("def describe(o):\n    pass\n\ndef train(*a):\n    pass\n")
    plugged = copy.deepcopy(config)
    plugged["dataset"].update(name="plugin", plugin="mine.py", options={"C": 1.0})
    key = run_key(plugged)
    assert key != run_key(config)
    (tmp_path / "mine.py").write_text(
        "def describe(o):\n    pass  # edited\n\ndef train(*a):\n    pass\n"
    )
    edited = run_key(plugged)
    assert edited != key
    plugged["dataset"]["options"] = {"C": 2.0}
    assert run_key(plugged) not in (key, edited)
    plugged["training"]["subsets_per_job"] = 1  # packing still never retrains
    assert run_key(plugged) == run_key(
        {**plugged, "training": {**plugged["training"], "subsets_per_job": 10}}
    )
