"""Batches gathered on a torch device: the same clips, order, shards and resume points as the CPU path.

`device="cpu"` runs the device gather code with torch on the CPU, so CI checks it without a GPU; the CUDA
tests skip where there is none.
"""
import pytest
import torch

from llamass.core import IterableLoader, PackedAMASS, amass_pack
from llamass.dataset import clip_ids
from common import check_resumes, write_identified

LENGTHS = [23, 7, 40, 12, 31, 5, 18]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    amass_pack(write_identified(root / "tree", LENGTHS), root / "store", progress=False)
    return root / "store"


def batches(store, device=None, epoch=1, **kwargs):
    loader = IterableLoader(PackedAMASS(store, 2, keep=1.0, shuffle=True, seed=3, batch_size=4, device=device, **kwargs), batch_size=None)
    loader.set_epoch(epoch)
    return [clip_ids(b) for b in loader]


@pytest.mark.parametrize("rank,world_size", [(0, 1), (0, 2), (1, 2), (2, 3)])
def test_same_batches_as_cpu_on_every_rank(store, rank, world_size):
    assert batches(store, "cpu", rank=rank, world_size=world_size) == batches(store, rank=rank, world_size=world_size)
    assert batches(store, "cpu", pinned=True, rank=rank, world_size=world_size) == batches(store, rank=rank, world_size=world_size)


def test_exactly_once_over_ranks(store):
    seen = [c for r in range(3) for b in batches(store, "cpu", rank=r, world_size=3) for c in b]
    every = {(i, f) for i, n in enumerate(LENGTHS) for f in range(0, n - 1, 2)}
    assert len(seen) == len(set(seen)) and set(seen) <= every and len(every) - len(seen) < 3


@pytest.mark.parametrize("pinned", [False, True])
def test_resume_like_the_cpu_path(store, pinned):
    def loader():
        made = IterableLoader(PackedAMASS(store, 2, keep=1.0, shuffle=True, seed=3, batch_size=4, device="cpu", pinned=pinned), batch_size=None)
        made.set_epoch(2)
        return made
    check_resumes(loader)


def test_refused_in_workers_and_without_batches(store):
    with pytest.raises(ValueError, match="gathers in the main process: use num_workers=0"):
        list(torch.utils.data.DataLoader(PackedAMASS(store, 2, batch_size=4, device="cpu"), batch_size=None, num_workers=1))
    with pytest.raises(ValueError, match="copies to the device from the main process: use num_workers=0"):
        list(torch.utils.data.DataLoader(PackedAMASS(store, 2, batch_size=4, device="cpu", pinned=True), batch_size=None, num_workers=1))
    with pytest.raises(ValueError, match="storage_dtype must be one of"):
        PackedAMASS(store, 2, batch_size=4, device="cpu", storage_dtype=torch.int8)


@CUDA
def test_cuda_matches_cpu(store):
    assert batches(store, "cuda") == batches(store) == batches(store, "cuda", pinned=True)
    batch = next(iter(PackedAMASS(store, 2, batch_size=4, device="cuda")))
    assert all(t.is_cuda for t in batch.values())


@CUDA
def test_too_big_for_the_gpu_says_what_to_do(store, monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 10**10))
    with pytest.raises(ValueError, match="need .* GB on cuda.*storage_dtype=torch.float16"):
        next(iter(PackedAMASS(store, 2, batch_size=4, device="cuda")))
