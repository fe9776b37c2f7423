"""The submodel store: names, packs, atomic writes, and the fingerprint check on reading."""

import json

import numpy as np
import pytest

from ame.artifacts import ArtifactError
from ame.pipeline.submodels import PACK_SIZES, SubmodelStore, check_pack_size


def test_names_and_packs_follow_the_index_digits(tmp_path):
    store = SubmodelStore(tmp_path, per_job=100)
    assert store.path(123).name == "subset_000123.npz"
    assert store.pack_digits == 4 and store.pack_name(1) == "0001"
    assert list(store.pack_range(1)) == list(range(100, 200))
    assert store.n_packs(201) == 3 and len(store.files(201)) == 300
    pattern = store.pack_pattern("results/submodels/{run}")
    assert pattern[0] == "results/submodels/{run}/subset_{pack}00.npz" and len(pattern) == 100
    # subset i of a pack is the file whose index starts with the pack's digits
    assert all(
        store.path(i).name.startswith(f"subset_{store.pack_name(1)}") for i in range(100, 200)
    )
    single = SubmodelStore(tmp_path, per_job=1, save_weights=True)
    assert single.pack_pattern("d") == ["d/subset_{pack}.npz", "d/subset_{pack}.safetensors"]


@pytest.mark.parametrize("per_job", [0, 2, 50, 10_000])
def test_pack_sizes_are_powers_of_ten(per_job):
    with pytest.raises(ValueError, match=f"training.subsets_per_job: {per_job} is not allowed"):
        check_pack_size(per_job)
    assert PACK_SIZES == (1, 10, 100, 1000)


def test_write_then_read_checks_fingerprint_and_shape(tmp_path):
    store = SubmodelStore(tmp_path / "run")
    outputs = np.arange(6, dtype=np.float32).reshape(3, 2)
    record = {"subset": 4, "p": 0.2, "status": "ok"}
    store.write(4, outputs, record)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["subset_000004.npz"]  # no temp file
    got, recorded = store.read(4, {"subset": 4, "p": 0.2}, (3, 2))
    np.testing.assert_array_equal(got, outputs)
    assert recorded == record
    with pytest.raises(ArtifactError, match=r"subset 4 \(.*\): fingerprint mismatch: p is 0.2"):
        store.read(4, {"subset": 4, "p": 0.4}, (3, 2))
    with pytest.raises(ArtifactError, match=r"subset 4 .*logits of shape \(3, 2\), expected"):
        store.read(4, {"subset": 4}, (3, 3))
    with pytest.raises(ArtifactError, match="subset 5: .*file not found"):
        store.read(5, {}, (3, 2))


def test_unreadable_fingerprint_is_refused(tmp_path):
    store = SubmodelStore(tmp_path)
    np.savez(store.path(0), logits=np.zeros((1, 1)), fingerprint=np.array("not json"))
    with pytest.raises(ArtifactError, match="subset 0 .*unreadable fingerprint"):
        store.read(0, {}, (1, 1))
    np.savez(store.path(1), logits=np.zeros((1, 1)), fingerprint=np.array(json.dumps([1])))
    with pytest.raises(ArtifactError, match="subset 1 .*unreadable fingerprint"):
        store.read(1, {}, (1, 1))


def test_identical_outputs_give_identical_bytes(tmp_path):
    a, b = SubmodelStore(tmp_path / "a"), SubmodelStore(tmp_path / "b")
    for store in (a, b):
        store.write(0, np.ones((2, 2), np.float32), {"subset": 0})
    assert a.path(0).read_bytes() == b.path(0).read_bytes()
