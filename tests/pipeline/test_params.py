import copy

import pytest
import yaml
from conftest import REPO

from ame.pipeline import params
from ame.pipeline.plan import experiment
from ame.pipeline.provenance import run_key


@pytest.fixture
def config():
    return params.load(REPO / "params.yaml")


def test_shipped_params_are_valid(config):
    assert config["sampling"]["design"] == "grid"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("training", "stepz", 10, r"unknown key training\.stepz; allowed keys: .*steps"),
        ("sampling", "design", "grd", r"sampling\.design: 'grd' is not allowed; choose one of"),
        ("sampling", "p_values", [0.2, 1.2], r"sampling\.p_values\.1"),
        ("sampling", "p", 0.0, r"sampling\.p: 0\.0"),
        ("sampling", "n_subsets", 0, r"sampling\.n_subsets: 0 is less than the minimum of 1"),
        ("sampling", "c", -2, r"sampling\.c"),
        ("sampling", "eps", 0.6, r"sampling\.eps"),
        ("training", "model", "resnet1000", r"training\.model: 'resnet1000' is not allowed"),
        ("dataset", "name", "imagenet", r"dataset\.name: 'imagenet' is not allowed"),
        ("training", "steps", "many", r"training\.steps: 'many' is not of type 'integer'"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(config, section, key, value, message):
    bad = copy.deepcopy(config)
    bad[section][key] = value
    with pytest.raises(params.ParamsError, match=message) as info:
        params.validate(bad)
    assert "\n" not in str(info.value)


def test_missing_section_and_npz_without_path(config):
    bad = copy.deepcopy(config)
    del bad["training"]
    with pytest.raises(params.ParamsError, match="'training' is a required property"):
        params.validate(bad)
    bad = copy.deepcopy(config)
    bad["dataset"]["name"] = "npz"
    with pytest.raises(params.ParamsError, match="dataset.path: required"):
        params.validate(bad)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(params.ParamsError, match="params file not found"):
        params.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sampling: [unclosed\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load(broken)


def test_budget_and_run_key(config):
    plan = experiment(config, "points", "main", 1437)
    assert plan.budget == config["sampling"]["n_subsets"] == 1000  # stated in submodels
    rule = copy.deepcopy(config)
    rule["sampling"]["n_subsets"] = None
    assert experiment(rule, "points", "main", 1437).budget == round(4 * 20 * 10.4888)  # c k log2 N
    assert plan.n_train % config["training"]["subsets_per_job"] == 0
    assert plan.budget <= plan.n_train < plan.budget + config["training"]["subsets_per_job"]
    grown = copy.deepcopy(config)
    grown["sampling"]["n_subsets"] = 5000
    grown["training"]["subsets_per_job"] = 1
    assert run_key(grown) == run_key(config)  # budget/packing keep submodels
    reseeded = copy.deepcopy(config)
    reseeded["sampling"]["seed"] = 1
    assert run_key(reseeded) != run_key(config)


def test_a_study_overlay_holds_only_what_differs(tmp_path):
    base = params.read(REPO / "params.yaml")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "study.yaml").write_text(
        "extends: base.yaml\nsampling:\n  n_subsets: 77\nhierarchy:\n  k_sources: 3\n"
    )
    merged = params.load(tmp_path / "study.yaml")
    assert merged["sampling"]["n_subsets"] == 77 and merged["hierarchy"]["k_sources"] == 3
    assert merged["sampling"]["design"] == base["sampling"]["design"]  # the rest from the base
    assert "extends" not in merged
    assert params.load(REPO / "studies/hierarchical/params.yaml")["hierarchy"]["enabled"]


def test_an_overlay_is_validated_by_the_same_schema(tmp_path):
    (tmp_path / "base.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "study.yaml").write_text("extends: base.yaml\nsampling:\n  n_subset: 77\n")
    with pytest.raises(params.ParamsError, match="unknown key sampling.n_subset"):
        params.load(tmp_path / "study.yaml")
    (tmp_path / "self.yaml").write_text("extends: self.yaml\n")
    with pytest.raises(params.ParamsError, match="extends names the file itself"):
        params.load(tmp_path / "self.yaml")
    (tmp_path / "lost.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(params.ParamsError, match="nowhere.yaml: params file not found"):
        params.load(tmp_path / "lost.yaml")


def test_the_defaults_ship_with_the_package_and_are_the_repository_params():
    """The repository's params.yaml is the package's defaults, written out with comments: a
    default changed in one place only fails here."""
    assert params.defaults() == yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_run_plan_needs_no_workflow_only_what_differs_from_the_defaults():
    config = params.complete({"sampling": {"n_subsets": 300}, "training": {"subsets_per_job": 100}})
    plan = experiment(config, "points", "main", 1437)
    assert (plan.budget, plan.n_train) == (300, 300)
    assert experiment(params.complete(), "points", "main", 1437).budget == 1000
    with pytest.raises(params.ParamsError, match="unknown key sampling.n_subset;"):
        params.complete({"sampling": {"n_subset": 300}})


def test_every_key_of_the_schema_has_a_default_and_a_description():
    """A new key cannot land undocumented: the parameter reference is read from the schema."""
    for section, body in params.schema()["properties"].items():
        for key, spec in body["properties"].items():
            assert "default" in spec, f"{section}.{key}: no default"
            assert spec.get("description", "").strip(), f"{section}.{key}: no description"
