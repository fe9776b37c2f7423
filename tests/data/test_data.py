import numpy as np
import pytest

from ame import scenarios
from ame.artifacts import ArtifactError
from ame.data import Dataset
from ame.data.digits import digits_backdoor
from ame.data.npz import load_user_npz


def test_digits_backdoor_plants_trigger_and_labels():
    ds = digits_backdoor(seed=0, n_poisons=12, target_class=3, trigger_size=2)
    digits = {
        "name": "digits",
        "seed": 0,
        "test_fraction": 0.2,
        "target_class": 3,
        "n_sources": None,
    }
    described = scenarios.describe({"dataset": digits})
    assert described["n_points"] == ds.n_points
    assert described["n_query_points"] == len(ds.y_query)
    poisons = ds.ground_truth
    assert len(poisons) == 12 and (ds.y_train[poisons] == 3).all()
    assert (ds.X_train[poisons][:, -2:, -2:] == 1.0).all()
    assert (ds.y_query == 3).all() and (ds.X_query[:, -2:, -2:] == 1.0).all()
    assert ds.fingerprint() == digits_backdoor(seed=0, n_poisons=12, target_class=3).fingerprint()


def test_prepared_dataset_round_trip(tmp_path):
    ds = digits_backdoor(n_poisons=5)
    ds.save(tmp_path / "d.npz")
    back = Dataset.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.ground_truth, ds.ground_truth)
    assert back.fingerprint() == ds.fingerprint() and back.n_classes == 10


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_user_npz_is_read_and_checked(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    path = _write(
        tmp_path / "u.npz",
        X_train=X,
        y_train=y,
        X_query=X[:5],
        y_query=y[:5],
        ground_truth=np.array([1, 2]),
    )
    ds = load_user_npz(path)
    assert ds.n_points == 30 and ds.n_classes == 3 and list(ds.ground_truth) == [1, 2]
    assert ds.source is None and ds.source_truth() is None
    config = {"dataset": {"name": "npz", "path": str(path)}}
    assert scenarios.describe(config) == {
        "n_points": 30,
        "n_query_points": 5,
        "n_sources": 0,
        "has_classes": True,
    }


def test_user_npz_source_labels_become_numbered_sources(tmp_path):
    labels = np.array(["bob", "alice", "carol", "alice", "bob", "alice"])
    path = _write(
        tmp_path / "s.npz",
        X_train=np.zeros((6, 2)),
        y_train=np.arange(6) % 2,
        X_query=np.zeros((1, 2)),
        y_query=np.zeros(1, int),
        ground_truth=np.array([2, 4]),
        source=labels,
    )
    ds = load_user_npz(path)
    assert ds.meta["source_names"] == ["alice", "bob", "carol"]
    np.testing.assert_array_equal(ds.source, [1, 0, 2, 0, 1, 0])
    np.testing.assert_array_equal(ds.source_truth(), [1, 2])  # bob and carol hold true points
    ds.save(tmp_path / "prepared.npz")
    np.testing.assert_array_equal(Dataset.load(tmp_path / "prepared.npz").source, ds.source)
    assert scenarios.describe({"dataset": {"name": "npz", "path": str(path)}})["n_sources"] == 3


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"X_train": np.zeros((5, 2)), "y_train": np.zeros(5, int)},
            r"missing arrays \['X_query'\]",
        ),
        (
            {
                "X_train": np.zeros((5, 2)),
                "y_train": np.zeros(4, int),
                "X_query": np.zeros((1, 2)),
                "y_query": np.zeros(1, int),
            },
            "one label per training row",
        ),
        (
            {
                "X_train": np.zeros((5, 2)),
                "y_train": np.zeros(5, int),
                "X_query": np.zeros((1, 3)),
                "y_query": np.zeros(1, int),
            },
            "X_query rows",
        ),
        (
            {
                "X_train": np.full((5, 2), np.nan),
                "y_train": np.zeros(5, int),
                "X_query": np.zeros((1, 2)),
                "y_query": np.zeros(1, int),
            },
            "NaN",
        ),
        (
            {
                "X_train": np.zeros((5, 2)),
                "y_train": np.zeros(5, int),
                "X_query": np.zeros((1, 2)),
                "y_query": np.zeros(1, int),
                "ground_truth": np.array([7]),
            },
            "ground_truth index 7",
        ),
        (
            {"X_train": np.zeros((5, 2)), "y_train": np.zeros(5, int), "X_query": np.zeros((1, 2))},
            "y_query is missing",
        ),
        (
            {
                "X_train": np.zeros((5, 2)),
                "y_train": np.zeros(5, int),
                "X_query": np.zeros((1, 2)),
                "y_query": np.zeros(1, int),
                "source": np.zeros(4, int),
            },
            r"source must hold one label per training row, got shape \(4,\)",
        ),
    ],
)
def test_bad_user_files_name_the_problem(tmp_path, arrays, message):
    with pytest.raises(ArtifactError, match=message):
        load_user_npz(_write(tmp_path / "bad.npz", **arrays))


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(ArtifactError, match="file not found"):
        load_user_npz(tmp_path / "absent.npz")
    good = _write(
        tmp_path / "good.npz",
        X_train=np.zeros((5, 2)),
        y_train=np.zeros(5, int),
        X_query=np.zeros((1, 2)),
        y_query=np.zeros(1, int),
    )
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="not a readable .npz"):
        load_user_npz(truncated)
    with pytest.raises(ArtifactError, match="cannot read array"):
        scenarios.describe({"dataset": {"name": "npz", "path": str(truncated)}})
