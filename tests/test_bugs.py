"""One test per bug of the original llamass that must not come back (numbered as in the core issue)."""
import shutil
import warnings

import numpy as np
import pytest
import torch.utils.data as tudata

from llamass.core import AMASS, IterableLoader, lazy_unpack, md5_dir, move_dirs_into_splits, npz_contents, npz_lens
from llamass.dataset import clip_ids
from llamass.synthetic import identified_sequence, write_tree

from conftest import SAMPLE_ARCHIVE


@pytest.fixture
def five_files(tmp_path):
    "Five sequences whose trans values name their frames, in a sub-dataset with a made-up name."
    lengths = [23, 7, 40, 12, 31]
    write_tree(tmp_path, {f"MyMocap/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(lengths)})
    return tmp_path, lengths


def test_1_stale_hash_is_not_trusted(tmp_path, sample_root):
    table = {"sample.tar.bz2": {"unpacks_to": "CMU", "hash": md5_dir(sample_root / "CMU")}}
    lazy_unpack(SAMPLE_ARCHIVE, tmp_path, table)
    shutil.rmtree(tmp_path / "CMU" / "01")                 # damage the tree...
    (tmp_path / "CMU.hash").write_text("not the published checksum")   # ...and its record
    assert lazy_unpack(SAMPLE_ARCHIVE, tmp_path, table)["status"] == "verified"
    assert md5_dir(tmp_path / "CMU") == table["sample.tar.bz2"]["hash"]


def test_2_seed_zero_is_a_seed(five_files):
    root, _ = five_files
    orders = [[clip_ids(c)[0] for c in AMASS(root, 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=0, progress=False)] for _ in range(2)]
    assert orders[0] == orders[1]
    other = [clip_ids(c)[0] for c in AMASS(root, 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=1, progress=False)]
    assert other != orders[0]


def test_2_seed_none_is_drawn_once_and_exposed(five_files):
    root, _ = five_files
    dataset = AMASS(root, 1, shuffle=True, seed=None, progress=False)
    assert isinstance(dataset.seed, int) and dataset.seed >= 0
    dataset.set_epoch(0)
    again = AMASS(root, 1, shuffle=True, seed=dataset.seed, progress=False)
    again.set_epoch(0)
    assert [c["poses"].tobytes() for c in dataset] == [c["poses"].tobytes() for c in again]


def test_3_last_clip_of_each_file_is_yielded(five_files):
    root, lengths = five_files
    for path, n in zip(sorted(root.rglob("*.npz")), lengths):
        starts = [clip_ids(c)[0][1] for c in npz_contents(path, 3, False, keep=1.0, keys=("trans",))]
        assert starts == list(range(0, n - 2, 3))     # the last clip that fits is there
    dataset = AMASS(root, 3, keep=1.0, data_keys=("trans",), progress=False)
    assert len(dataset) == sum(n // 3 for n in lengths) == sum(1 for _ in dataset)


@pytest.mark.parametrize("num_workers", [2, 3, 7])
def test_4_no_file_dropped_between_workers(five_files, num_workers):
    root, lengths = five_files
    dataset = AMASS(root, 1, keep=1.0, data_keys=("trans",), progress=False)
    seen = [c for b in tudata.DataLoader(dataset, batch_size=8, num_workers=num_workers) for c in clip_ids(b)]
    assert sorted(seen) == [(i, f) for i, n in enumerate(lengths) for f in range(n)]


def test_5_any_folder_name_works(five_files):
    root, lengths = five_files
    assert [row[0] for row in npz_lens(root, strict=True, progress=False)] == ["MyMocap"] * 5
    assert len(AMASS(root, 1, keep=1.0, strict=True, progress=False)) == sum(lengths)


def test_6_move_dirs_into_splits_honours_its_splits(tmp_path):
    for name in ["CMU", "HumanEva", "Mine"]: (tmp_path / name).mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        move_dirs_into_splits(tmp_path, {"holdout": ["CMU"], "rest": ["HumanEva", "Mine"]})
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*")) == ["holdout/CMU", "rest/HumanEva", "rest/Mine"]


def test_7_transform_none_and_user_worker_init_fn(five_files, tmp_path):
    root, lengths = five_files
    item = next(iter(AMASS(root, 2, progress=False)))
    assert all(isinstance(v, np.ndarray) and v.dtype == (np.int64 if k == "gender" else np.float32) for k, v in item.items())
    marks = tmp_path / "marks"
    marks.mkdir()
    loader = IterableLoader(AMASS(root, 1, keep=1.0, data_keys=("trans",), progress=False), batch_size=4, num_workers=2,
                            worker_init_fn=_MarkWorker(marks))
    assert sorted(c for b in loader for c in clip_ids(b)) == [(i, f) for i, n in enumerate(lengths) for f in range(n)]
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1"]


class _MarkWorker:
    "A user's worker_init_fn: leaves a file named after the worker."
    def __init__(self, folder): self.folder = folder
    def __call__(self, worker_id): (self.folder / str(worker_id)).write_text("called")
