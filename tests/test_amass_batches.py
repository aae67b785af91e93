"""`AMASS(batch_size=B)`: whole batches cut in the workers hold exactly the clips of the clip-by-clip epoch."""
import numpy as np
import pytest
import torch

from llamass.core import AMASS, IterableLoader
from llamass.dataset import clip_ids
from common import check_resumes, write_identified

LENGTHS = [23, 7, 40, 12, 31, 5, 18, 44]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("batches")
    return write_identified(root, LENGTHS)


def dataset(tree, **kwargs):
    return AMASS(tree, 3, keep=1.0, data_keys=("trans", "betas", "gender"), shuffle=True, seed=4, progress=False, **kwargs)


@pytest.mark.parametrize("workers,rank,world_size", [(0, 0, 1), (2, 0, 1), (2, 1, 2), (3, 0, 3)])
def test_batches_hold_the_clips_of_the_epoch(tree, workers, rank, world_size):
    clips = [clip_ids(b) for b in IterableLoader(dataset(tree, rank=rank, world_size=world_size), batch_size=4, num_workers=workers)]
    batched = IterableLoader(dataset(tree, batch_size=4, rank=rank, world_size=world_size), batch_size=None, num_workers=workers)
    batches = [clip_ids(b) for b in batched]
    assert batches == clips and len(batches) == len(batched)          # same clips, same order, same batch cuts
    every = {(i, f) for i, n in enumerate(LENGTHS) for f in range(0, n - 2, 3)}
    assert set(c for b in batches for c in b) <= every


def test_batches_resume_exactly(tree):
    def loader():
        made = IterableLoader(dataset(tree, batch_size=4), batch_size=None, num_workers=2)
        made.set_epoch(2)
        return made
    check_resumes(loader)


def test_batch_values_and_dtypes(tree):
    batch = next(iter(dataset(tree, batch_size=6)))
    assert {k: (tuple(v.shape), v.dtype) for k, v in batch.items()} == {
        "trans": ((6, 3, 3), torch.float32), "betas": ((6, 3, 16), torch.float32), "gender": ((6, 3), torch.int64)}
    clip = next(iter(dataset(tree)))
    np.testing.assert_array_equal(batch["trans"][0].numpy(), clip["trans"])


def test_batch_size_refusals(tree):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        AMASS(tree, 3, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="are batched by the loader"):
        AMASS(tree, None, batch_size=4, progress=False)
