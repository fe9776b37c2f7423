"""The plug-in door at library level: loading, the describe contract, the prepared arrays."""

import numpy as np
import pytest

from ame import scenarios
from ame.data.plugin import PluginError, description, load, source_digest

GOOD = """
import numpy as np

def describe(options):
    return {"n_points": 6, "queries": ["a", "b"], "n_outputs": 3, "classes": [0, 2],
            "ground_truth": [1], "sources": ["x", "y", "x", "y", "z", "z"],
            "train_display": np.zeros((6, 4, 4))}

def train(indices, seed, device, options):
    return np.zeros((2, 3))
"""


def _params(tmp_path, monkeypatch, source=GOOD, **options):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(source)
    return {"name": "plugin", "plugin": "mine.py", "options": options, "n_sources": None}


def test_a_plugin_file_is_described_and_prepared(tmp_path, monkeypatch):
    d = _params(tmp_path, monkeypatch)
    assert scenarios.describe({"dataset": d}) == {
        "n_points": 6,
        "n_query_points": 2,
        "n_sources": 3,
        "has_classes": True,
        "training_outputs": False,
    }
    ds = scenarios.build({"dataset": d})
    assert ds.n_points == 6 and ds.meta["query_names"] == ["a", "b"] and ds.n_classes == 3
    np.testing.assert_array_equal(ds.y_query, [0, 2])
    np.testing.assert_array_equal(ds.source, [0, 1, 0, 1, 2, 2])
    assert ds.meta["input_shape"] == [4, 4] and list(ds.ground_truth) == [1]


def test_an_importable_module_works_too(tmp_path, monkeypatch):
    _params(tmp_path, monkeypatch)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert callable(load("mine").train)
    assert source_digest("mine") == source_digest("mine.py")


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ('"n_outputs": 3, ', "", r"lacks \['n_outputs'\]"),
        ('"ground_truth": [1],', '"ground_truth": [1], "colour": 1,', r"unknown keys \['colour'\]"),
        ('"ground_truth": [1],', '"ground_truth": [9],', r"ground_truth indices outside \[0, 6\)"),
        ('"classes": [0, 2]', '"classes": [0, 3]', r"classes must be integers in \[0, n_outputs\)"),
        ('"classes": [0, 2]', '"classes": [0]', r"classes has 1 entries, expected 2"),
        ('"n_outputs": 3, ', '"n_outputs": 3, "training_outputs": True, ', "needs labels"),
    ],
    ids=["missing-key", "unknown-key", "truth-out-of-range", "class-out-of-range", "sizes",
         "training-outputs-without-labels"],
)  # fmt: skip
def test_describe_contract_violations_name_the_plugin(tmp_path, monkeypatch, old, new, pattern):
    d = _params(tmp_path, monkeypatch, GOOD.replace(old, new))
    with pytest.raises(PluginError, match=r"^plugin mine.py: describe\(\) .*" + pattern):
        description(d)


def test_a_missing_file_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PluginError, match=r"plugin nowhere.py: file not found \(relative to "):
        load("nowhere.py")
    with pytest.raises(PluginError, match="plugin no_such_module: cannot be imported"):
        load("no_such_module")


PAIRS = GOOD.replace(
    '"n_outputs": 3, ', '"n_outputs": 3, "training_outputs": True, "labels": [0, 1, 2, 0, 1, 2], '
).replace("return np.zeros((2, 3))", "return np.zeros((2, 3)), np.ones((options['rows'], 3))")


@pytest.mark.parametrize("keep", [True, False])
def test_training_outputs_come_back_when_asked_and_are_checked(tmp_path, monkeypatch, keep):
    from ame.training.plugin import PluginTrainer

    d = _params(tmp_path, monkeypatch, PAIRS, rows=6)
    assert scenarios.describe({"dataset": d})["training_outputs"]
    trainer = PluginTrainer(scenarios.build({"dataset": d}), d["options"], "cpu", keep)
    ((queries, weights, on_training),) = trainer.fit([np.arange(3)], [0], [7])
    assert queries.shape == (2, 3) and weights is None
    if keep:
        np.testing.assert_array_equal(on_training, np.ones((6, 3), dtype=np.float32))
    else:
        assert on_training is None
    trainer.options = {"rows": 5}
    if keep:
        with pytest.raises(PluginError, match=r"subset 7; expected \(6, 3\) \(points x n_"):
            trainer.fit([np.arange(3)], [0], [7])
    trainer.module.train = lambda indices, seed, device, options: np.zeros((2, 3))
    with pytest.raises(PluginError, match=r"^plugin mine.py: train returned ndarray for subset 7; "
                       r"describe\(\) says training_outputs, so it returns a pair"):  # fmt: skip
        trainer.fit([np.arange(3)], [0], [7])
