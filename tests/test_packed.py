"""PackedAMASS against AMASS on the same data; exactly-once and resume on the packed path; atomic packing."""
import numpy as np
import pytest
import torch

import llamass.store as store_module
from llamass.core import AMASS, IterableLoader, PackedAMASS, StoreError, amass_pack
from common import check_resumes
from llamass.dataset import clip_ids
from llamass.store import read_manifest
from llamass.synthetic import identified_sequence, write_tree

LENGTHS = [23, 7, 40, 12, 31, 2, 18]


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    "(tree, store) of identified sequences."
    root = tmp_path_factory.mktemp("ids")
    write_tree(root / "tree", {f"DS{i % 3}/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(LENGTHS)})
    amass_pack(root / "tree", root / "store", progress=False)
    return root / "tree", root / "store"


@pytest.fixture(scope="module")
def sample_store(sample_root, tmp_path_factory):
    store = tmp_path_factory.mktemp("packed") / "store"
    amass_pack(sample_root, store, progress=False)
    return store


@pytest.mark.parametrize("clip_length,overlapping,keep", [(1, False, 0.8), (5, False, 0.8), (4, True, 0.5), (32, False, 1.0)])
def test_same_clips_as_amass(sample_root, sample_store, clip_length, overlapping, keep):
    amass = AMASS(sample_root, clip_length, overlapping, keep=keep, progress=False)
    packed = PackedAMASS(sample_store, clip_length, overlapping, keep=keep)
    assert len(packed) == len(amass)
    pairs = list(zip(amass, packed, strict=True))
    for a, p in pairs:
        assert list(a) == list(p)
        assert all(p[k].dtype == a[k].dtype == (np.int64 if k == "gender" else np.float32) and a[k].tobytes() == p[k].tobytes() for k in a)


def test_shuffle_is_a_permutation_and_changes_per_epoch(sample_root, sample_store):
    amass = sorted(c["poses"].tobytes() for c in AMASS(sample_root, 3, progress=False))
    packed = PackedAMASS(sample_store, 3, shuffle=True, seed=4)
    epochs = []
    for epoch in (0, 1):
        packed.set_epoch(epoch)
        epochs.append([c["poses"].tobytes() for c in packed])
    assert sorted(epochs[0]) == amass == sorted(epochs[1]) and epochs[0] != epochs[1]


@pytest.mark.parametrize("world_size,num_workers,batch_size", [(1, 0, None), (1, 3, 4), (2, 2, 5), (3, 1, None), (3, 2, 3)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_exactly_once_and_equal_batches(ids, world_size, num_workers, batch_size, shuffle):
    tree, store = ids
    seen, counts = [], []
    for rank in range(world_size):
        dataset = PackedAMASS(store, 2, keep=1.0, data_keys=("trans",), shuffle=shuffle, seed=1, batch_size=batch_size,
                              rank=rank, world_size=world_size)
        loader = IterableLoader(dataset, batch_size=None if batch_size else 4, num_workers=num_workers)
        batches = [clip_ids(b) for b in loader]
        assert len(batches) == len(loader)
        counts.append(len(batches)); seen += [c for b in batches for c in b]
    expected = {(i, s) for i, n in enumerate(LENGTHS) for s in range(0, n - 1, 2)}
    assert len(set(counts)) == 1
    assert len(seen) == len(set(seen)) and set(seen) <= expected
    assert len(expected) - len(seen) <= world_size * max(1, num_workers) - 1
    if world_size == 1: assert set(seen) == expected


def test_mixing_of_the_global_shuffle(tmp_path):
    write_tree(tmp_path / "tree", {f"DS/s{i}/t_poses.npz": identified_sequence(i, 200) for i in range(64)})
    amass_pack(tmp_path / "tree", tmp_path / "store", progress=False)
    loader = IterableLoader(PackedAMASS(tmp_path / "store", 1, data_keys=("trans",), shuffle=True, seed=0, batch_size=64), batch_size=None)
    assert np.mean([len({s for s, _ in clip_ids(b)}) for b in loader]) >= 32


@pytest.mark.parametrize("num_workers,batch_size,every_k", [(0, 6, False), (2, 6, False), (3, 2, True)])
@pytest.mark.parametrize("mode", [None, "processes"])
def test_resume_batches(ids, num_workers, batch_size, every_k, mode):
    """Worker processes send small batches several at a time (inline, one by one); a restart after any batch continues the epoch exactly."""
    tree, store = ids
    def loader():
        made = IterableLoader(PackedAMASS(store, 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=2, batch_size=batch_size),
                              batch_size=None, num_workers=num_workers, worker_mode=mode)
        made.set_epoch(1)
        return made
    whole = check_resumes(loader, lambda n: range(n) if every_k else (0, 1, n // 2, n - 1))
    assert len(whole) == len(loader()) and sorted(c for b in whole for c in b) == sorted((i, f) for i, n in enumerate(LENGTHS) for f in range(n))
    if num_workers: assert loader().dataset.batches_per_item(num_workers) == 16          # really sent together
    finished, after_end, next_epoch = loader(), loader(), loader()
    assert [clip_ids(b) for b in finished] == whole
    after_end.load_state_dict(finished.state_dict())            # saved at the end of epoch 1: resumes at epoch 2
    next_epoch.set_epoch(2)
    assert [clip_ids(b) for b in after_end] == [clip_ids(b) for b in next_epoch] != whole


def test_interrupted_pack_is_redone(ids, tmp_path, monkeypatch):
    tree, _ = ids
    real = store_module._pack_one
    def dies_on_the_fourth(index, i, *args):
        if i == 3: raise KeyboardInterrupt("power cut")
        return real(index, i, *args)
    monkeypatch.setattr(store_module, "_pack_one", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        amass_pack(tree, tmp_path / "store", n_jobs=1, progress=False)
    assert read_manifest(tmp_path / "store") is None and not (tmp_path / "store").exists()
    monkeypatch.setattr(store_module, "_pack_one", real)
    assert amass_pack(tree, tmp_path / "store", progress=False)["n_frames"] == sum(LENGTHS)
    assert [c["trans"].tobytes() for c in PackedAMASS(tmp_path / "store", 1)] == [c["trans"].tobytes() for c in AMASS(tree, 1, progress=False)]


def test_refuses_to_overwrite(ids, tmp_path):
    tree, store = ids
    (tmp_path / "notes").mkdir(); (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="exists and is not a packed store"):
        amass_pack(tree, tmp_path / "notes", progress=False)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="data key 'expression' is not in the store"):
        PackedAMASS(store, 1, data_keys=("expression",))
    with pytest.raises(StoreError, match="is not a packed AMASS store"):
        PackedAMASS(tmp_path / "notes", 1)
