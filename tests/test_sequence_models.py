"""What sequence models train on: per-clip metadata, motion keys, variable-length batches, on both datasets.

Data are `identified_sequence`s: trans[:, 0] = sequence id, trans[:, 1] = frame, in files DS/s{id}/take_poses.npz.
"""
import numpy as np
import pytest
import torch

from llamass.core import AMASS, IterableLoader, PackedAMASS, amass_pack
from common import check_resumes, write_identified
from llamass.transforms import joint_positions

LENGTHS = [23, 7, 40, 12, 31, 5, 18]
META = ("trans", "path", "subdataset", "start", "fps")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqmodels")
    amass_pack(write_identified(root / "tree", LENGTHS), root / "store", progress=False)
    return root / "tree", root / "store"


def datasets(data, clip_length, data_keys, **kwargs):
    tree, store = data
    return {"AMASS": AMASS(tree, clip_length, keep=1.0, data_keys=data_keys, progress=False, **kwargs),
            "PackedAMASS": PackedAMASS(store, clip_length, keep=1.0, data_keys=data_keys, **kwargs)}


def check_metadata(batch):
    "Each clip's path, sub-dataset and start name the frames it carries."
    for row, (path, sub, start, fps) in enumerate(zip(batch["path"], batch["subdataset"], batch["start"].tolist(), batch["fps"].tolist())):
        seq = int(path.split("/")[1][1:])
        frames = batch["trans"][row]
        assert sub == "DS" and fps == 120.0 and path == f"DS/s{seq}/take_poses.npz"
        assert (frames[:, 0] == seq).all() and frames[:, 1].tolist() == list(range(start, start + len(frames)))


@pytest.mark.parametrize("workers,rank,world_size", [(0, 0, 1), (2, 0, 1), (2, 1, 2), (1, 2, 3)])
@pytest.mark.parametrize("name", ["AMASS", "PackedAMASS"])
def test_metadata_names_the_frames(data, name, workers, rank, world_size):
    dataset = datasets(data, 3, META, shuffle=True, rank=rank, world_size=world_size)[name]
    batches = list(IterableLoader(dataset, batch_size=4, num_workers=workers))
    assert sum(len(b["path"]) for b in batches) == len(dataset)
    for batch in batches: check_metadata(batch)


def test_packed_batches_and_device_carry_the_same_metadata(data):
    _, store = data
    for device in (None, "cpu"):
        for batch in PackedAMASS(store, 3, keep=1.0, data_keys=META, shuffle=True, batch_size=5, device=device):
            assert isinstance(batch["path"], list) and batch["start"].dtype == torch.int64
            check_metadata(batch)


def test_motion_keys_equal_on_both_datasets_and_forward_kinematics(data):
    keys = ("poses", "trans", "fps", "joints", "joint_velocities", "foot_contacts")
    amass, packed = (list(d) for d in datasets(data, 4, keys, contacts={"floor": "lowest"}).values())
    assert len(amass) == len(packed) > 0
    for a, p in zip(amass, packed):
        assert a["joints"].shape == (4, 22, 3) and a["foot_contacts"].dtype == np.bool_
        for k in ("joints", "joint_velocities"): np.testing.assert_allclose(a[k], p[k], atol=1e-5)
        assert (a["foot_contacts"] == p["foot_contacts"]).all()
        np.testing.assert_allclose(a["joints"], joint_positions(torch.from_numpy(a["poses"]), None, torch.from_numpy(a["trans"])).numpy(), atol=1e-6)
    _, store = data
    batch = next(iter(PackedAMASS(store, 4, keep=1.0, data_keys=keys, batch_size=len(packed), contacts={"floor": "lowest"})))
    np.testing.assert_allclose(batch["joints"].numpy(), np.stack([p["joints"] for p in packed]), atol=1e-5)


def test_motion_keys_need_only_poses_and_trans_and_are_not_statistics(data):
    tree, _ = data
    only = next(iter(AMASS(tree, 2, keep=1.0, data_keys=("joints",), progress=False)))
    assert list(only) == ["joints"]


def frames_of(batches):
    "(sequence, frame) of every real (unpadded) frame of `batches`."
    found = []
    for b in batches:
        assert b["mask"].sum().item() == b["lengths"].sum().item()
        assert (b["trans"][~b["mask"]] == 0).all()                        # padding is zeros
        for row, n in enumerate(b["lengths"].tolist()):
            assert b["mask"][row, :n].all() and not b["mask"][row, n:].any()
            found += [tuple(f) for f in b["trans"][row, :n, :2].long().tolist()]
    return found


@pytest.mark.parametrize("name", ["AMASS", "PackedAMASS"])
@pytest.mark.parametrize("max_length,bucket", [(None, None), (8, None), (8, 4)])
def test_variable_length_every_frame_once(data, name, max_length, bucket):
    every = {(i, f) for i, n in enumerate(LENGTHS) for f in range(n)}
    seen = []
    for rank in range(2):
        dataset = datasets(data, None, ("trans",), max_length=max_length, bucket=bucket, shuffle=True, rank=rank, world_size=2, pad=True)[name]
        batches = list(IterableLoader(dataset, batch_size=3, num_workers=2))
        assert len(batches) == len(IterableLoader(dataset, batch_size=3, num_workers=2))
        if max_length: assert max(b["lengths"].max().item() for b in batches) <= max_length
        seen += frames_of(batches)
    assert set(seen) == every                                   # pad=True: every frame, a clip or two repeated at most
    assert len(seen) - len(every) <= 2 * (max_length or max(LENGTHS))


@pytest.mark.parametrize("name", ["AMASS", "PackedAMASS"])
def test_variable_length_resumes_exactly(data, name):
    def loader():
        made = IterableLoader(datasets(data, None, ("trans",), max_length=6, bucket=4, shuffle=True)[name], batch_size=2, num_workers=2)
        made.set_epoch(3)
        return made
    check_resumes(loader, ids=lambda b: [tuple(r) for r in b["trans"][:, 0, :2].long().tolist()])


def test_bucketing_pads_less(data):
    tree, _ = data
    def padding(bucket):
        batches = IterableLoader(AMASS(tree, None, keep=1.0, data_keys=("trans",), shuffle=True, bucket=bucket, progress=False), batch_size=2)
        return sum((b["lengths"].max() * len(b["lengths"]) - b["lengths"].sum()).item() for b in batches)
    assert padding(6) < padding(None)


def test_variable_length_refusals(data):
    tree, store = data
    with pytest.raises(ValueError, match="max_length= applies to variable-length clips"):
        AMASS(tree, 4, max_length=8, progress=False)
    with pytest.raises(ValueError, match="cannot overlap"):
        AMASS(tree, None, overlapping=True, progress=False)
    with pytest.raises(ValueError, match="are batched by the loader"):
        PackedAMASS(store, None, batch_size=4)
