"""Exactly-once sharding over ranks and workers, equal batches, mixing, reproducible and resumable epochs.

The data names its frames (`trans[:, 0]` = sequence id, `trans[:, 1]` = frame index), so each test checks
exactly which clips were yielded.
"""
import itertools

import numpy as np
import pytest
import torch
import torch.utils.data as tudata

from llamass.core import AMASS, IterableLoader
from llamass.clips import batch_count, worker_clip_counts
from common import check_resumes
from llamass.dataset import clip_ids
from llamass.synthetic import identified_sequence, write_tree


def write_dataset(root, lengths):
    "Write identified sequences of `lengths` under `root` (two sub-datasets); return root."
    write_tree(root, {f"DS{i % 2}/s{i:02d}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(lengths)})
    return root


def all_clips(lengths, clip_length, overlapping):
    "Every (sequence, start) clip of the data with keep=1."
    step = 1 if overlapping else clip_length
    return sorted((i, s) for i, n in enumerate(lengths) for s in range(0, n - clip_length + 1, step))


def shard_clips(dataset, epoch, worker, num_workers):
    "The clips one worker of the dataset's rank yields in `epoch`, read through the dataset's own reader."
    return [clip_ids(c)[0] for c in dataset.read_clips(*dataset.plan(epoch, worker, num_workers))]


RNG = np.random.default_rng(0)
LENGTHS = {n: [int(x) for x in RNG.integers(3, 30, n)] for n in range(1, 8)}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return {n: write_dataset(tmp_path_factory.mktemp(f"files{n}"), LENGTHS[n]) for n in LENGTHS}


@pytest.mark.parametrize("n_files", range(1, 8))
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_exactly_once_matrix(roots, n_files, world_size):
    """Every clip at most once; at most world_size*num_workers - 1 left out (none on one rank); shards balanced."""
    for num_workers, shuffle, clip_length, overlapping in itertools.product([0, 1, 2, 3], [False, True], [1, 4], [False, True]):
        shards = max(1, num_workers)
        datasets = [AMASS(roots[n_files], clip_length, overlapping, keep=1.0, data_keys=("trans",), shuffle=shuffle, seed=3,
                          rank=r, world_size=world_size, progress=False) for r in range(world_size)]
        per_shard = [shard_clips(d, 5, w, shards) for d in datasets for w in range(shards)]
        seen = [c for clips in per_shard for c in clips]
        expected = all_clips(LENGTHS[n_files], clip_length, overlapping)
        case = (n_files, world_size, num_workers, shuffle, clip_length, overlapping)
        assert len(seen) == len(set(seen)), case
        assert set(seen) <= set(expected), case
        assert len(expected) - len(seen) <= world_size * shards - 1, case
        if world_size == 1: assert sorted(seen) == expected, case
        sizes = [len(c) for c in per_shard]
        assert max(sizes) - min(sizes) <= 1, case                     # no shard empty while another has 2+
        assert all(len(d) == sum(sizes[r * shards:(r + 1) * shards]) for r, d in enumerate(datasets)), case


@pytest.mark.parametrize("world_size,num_workers,n_files", [(1, 0, 5), (1, 3, 2), (2, 2, 5), (3, 1, 7), (3, 3, 1), (2, 3, 4)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_exactly_once_through_dataloaders(roots, world_size, num_workers, n_files, shuffle):
    """Real DataLoader workers: the union over ranks is as above, and every rank yields the same number of batches."""
    for batch_size in (1, 3, 5):
        seen, batches = [], []
        for rank in range(world_size):
            dataset = AMASS(roots[n_files], 2, keep=1.0, data_keys=("trans",), shuffle=shuffle, seed=0, rank=rank,
                            world_size=world_size, progress=False)
            loader = IterableLoader(dataset, batch_size=batch_size, num_workers=num_workers)
            rank_batches = [clip_ids(b) for b in loader]
            assert len(rank_batches) == len(loader)
            batches.append(len(rank_batches)); seen += [c for b in rank_batches for c in b]
        expected = all_clips(LENGTHS[n_files], 2, False)
        assert len(set(batches)) == 1
        assert len(seen) == len(set(seen)) and set(seen) <= set(expected)
        assert len(expected) - len(seen) <= world_size * max(1, num_workers) - 1


def test_pad_leaves_nothing_out(roots):
    seen = []
    for rank in range(3):
        dataset = AMASS(roots[7], 1, keep=1.0, data_keys=("trans",), rank=rank, world_size=3, pad=True, progress=False)
        seen += [c for b in IterableLoader(dataset, batch_size=4, num_workers=2) for c in clip_ids(b)]
    expected = all_clips(LENGTHS[7], 1, False)
    assert set(seen) == set(expected) and len(seen) - len(expected) < 3


def test_mixing_target(tmp_path):
    """64 sequences of 200 frames, single-frame clips, batches of 64: at least 32 sequences per batch on average."""
    root = write_dataset(tmp_path, [200] * 64)
    dataset = AMASS(root, 1, keep=0.8, data_keys=("trans",), shuffle=True, seed=0, progress=False)
    loader = IterableLoader(dataset, batch_size=64, num_workers=0)
    distinct = [len({seq for seq, _ in clip_ids(b)}) for b in loader]
    assert np.mean(distinct) >= 32, np.mean(distinct)
    unshuffled = IterableLoader(AMASS(root, 1, data_keys=("trans",), progress=False), batch_size=64)
    assert np.mean([len({s for s, _ in clip_ids(b)}) for b in unshuffled]) < 3


def test_epochs_reproducible_and_different(roots):
    def epoch_batches(epoch, num_workers):
        dataset = AMASS(roots[6], 2, keep=1.0, data_keys=("trans",), shuffle=True, seed=11, progress=False)
        dataset.set_epoch(epoch)
        return [clip_ids(b) for b in IterableLoader(dataset, batch_size=3, num_workers=num_workers)]
    for workers in (0, 2):
        assert epoch_batches(1, workers) == epoch_batches(1, workers)
        assert epoch_batches(1, workers) != epoch_batches(2, workers)


def test_passes_advance_without_set_epoch(roots):
    dataset = AMASS(roots[6], 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=0, progress=False)
    loader = IterableLoader(dataset, batch_size=4, num_workers=2)
    passes = [[clip_ids(b) for b in loader] for _ in range(3)]
    assert passes[0] != passes[1] != passes[2]
    fresh = IterableLoader(AMASS(roots[6], 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=0, progress=False), batch_size=4, num_workers=2)
    assert [clip_ids(b) for b in fresh] == passes[0]                  # pass 0 is epoch 0: repeatable


def test_plain_dataloader_passes_repeatable_under_manual_seed(roots):
    def two_passes():
        torch.manual_seed(123)
        loader = tudata.DataLoader(AMASS(roots[5], 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=0, progress=False),
                                   batch_size=4, num_workers=2)
        return [[clip_ids(b) for b in loader] for _ in range(2)]
    first, again = two_passes(), two_passes()
    assert first == again and first[0] != first[1]
    assert sorted(sum(first[0], [])) == all_clips(LENGTHS[5], 1, False)


def test_persistent_workers_follow_set_epoch(roots):
    dataset = AMASS(roots[6], 1, keep=1.0, data_keys=("trans",), shuffle=True, seed=0, progress=False)
    loader = IterableLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True)
    passes = [[clip_ids(b) for b in loader] for _ in range(2)]
    assert passes[0] != passes[1]
    loader.set_epoch(0)
    assert [clip_ids(b) for b in loader] == passes[0]


@pytest.mark.parametrize("num_workers,batch_size,drop_last", [(0, 4, False), (2, 4, False), (3, 5, True), (2, None, False)])
def test_resume_mid_epoch(roots, num_workers, batch_size, drop_last):
    def loader():
        dataset = AMASS(roots[7], 2, keep=1.0, data_keys=("trans",), shuffle=True, seed=5, progress=False)
        made = IterableLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last)
        made.set_epoch(3)
        return made
    whole = check_resumes(loader, lambda n: sorted({0, 1, 2, n // 2, n - 1}))
    assert len(whole) == len(loader())
    finished = loader()
    assert [clip_ids(b) for b in finished] == whole
    after_end, next_epoch = loader(), loader()
    after_end.load_state_dict(finished.state_dict())          # a state saved at the end of epoch 3 ...
    next_epoch.set_epoch(4)
    assert [clip_ids(b) for b in after_end] == [clip_ids(b) for b in next_epoch]   # ... resumes at the start of epoch 4


def test_resume_refuses_another_seed(roots):
    first = IterableLoader(AMASS(roots[3], 1, shuffle=True, seed=1, progress=False), batch_size=2)
    other = IterableLoader(AMASS(roots[3], 1, shuffle=True, seed=2, progress=False), batch_size=2)
    with pytest.raises(ValueError, match="cannot resume: state has seed=1, this dataset has 2"):
        other.load_state_dict(first.state_dict())
    unshuffled = IterableLoader(AMASS(roots[3], 1, seed=None, progress=False), batch_size=2)     # order independent of the seed
    unshuffled.load_state_dict(IterableLoader(AMASS(roots[3], 1, seed=7, progress=False), batch_size=2).state_dict())


def test_bad_distributed_arguments(roots):
    with pytest.raises(ValueError, match=r"rank must be an integer in \[0, 2\], got 3"):
        AMASS(roots[3], 1, rank=3, world_size=3, progress=False)
    with pytest.raises(ValueError, match="give both rank and world_size"):
        AMASS(roots[3], 1, rank=1, progress=False)
    with pytest.raises(ValueError, match="shuffle_buffer must be an integer >= 1"):
        list(AMASS(roots[3], 1, shuffle=True, shuffle_buffer=0, progress=False))
