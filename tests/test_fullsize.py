"""Planning an epoch in bounded chunks: the same clips as the whole-shard plan, exactly once, in bounded memory at AMASS's size.

Frame counts only (planning reads no file): the real AMASS lengths when the shared length file is present, the
synthetic table of `llamass.synthetic` otherwise.
"""
import gzip
import json
import tracemalloc
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

import llamass.clips as clips
from llamass.clips import (clip_counts, kept_windows, lanes_for_buffer, rank_clip_count, sequence_order, shard_plan,
                           shard_plan_chunks, worker_clip_counts)

LENS = Path(__file__).resolve().parents[2] / "shared" / "amass_lens_real.json.gz"


def amass_lengths():
    "Frames of each AMASS sequence (14,096 of them when the real length file is present)."
    if LENS.is_file():
        with gzip.open(LENS, "rt") as f: return np.array([row[2] for row in json.load(f)], dtype=np.int64)
    from llamass.synthetic import real_lengths
    return np.concatenate(list(real_lengths().values()))


def joined(chunks):
    "The (seqs, starts, is_last) of a list of chunks put together."
    if not chunks: return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return tuple(np.concatenate(parts) for parts in zip(*chunks))


def last_uses(seqs):
    "True where a position holds the last clip of its sequence (what a reader frees on)."
    is_last = np.zeros(len(seqs), dtype=bool)
    _, first_in_reverse = np.unique(seqs[::-1], return_index=True)
    is_last[len(seqs) - 1 - first_in_reverse] = True
    return is_last


def case(lengths, clip_length=1, overlapping=False, keep=0.8, seed=0):
    "(counts, window starts, step, a shuffled sequence order) of sequences of `lengths` frames."
    counts = clip_counts(lengths, clip_length, overlapping, keep)
    return counts, kept_windows(lengths, keep)[0], 1 if overlapping else clip_length, np.random.default_rng(seed).permutation(len(lengths))


CASES = [([200] * 64, 1, False), ([10, 3, 7, 0, 25, 1], 1, True), ([37, 5, 90, 12, 12, 3, 64], 4, False), ([5, 6], 1, False), ([1], 1, False)]


@pytest.fixture(params=[7, 1 << 16], ids=["blocks of 7", "default blocks"])
def block(request, monkeypatch):
    "Plan in blocks of this many clips (small: every shard crosses many block boundaries)."
    monkeypatch.setattr(clips, "PLAN_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("lengths,clip_length,overlapping", CASES)
@pytest.mark.parametrize("world_size,num_workers,pad", [(1, 1, False), (2, 3, False), (3, 2, True), (8, 1, True)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_exactly_once_same_counts(block, lengths, clip_length, overlapping, world_size, num_workers, pad, shuffle):
    counts, starts, step, order = case(lengths, clip_length, overlapping)
    total, seen = int(counts.sum()), []
    expected_counts = worker_clip_counts(rank_clip_count(total, world_size, pad), num_workers)
    for rank in range(world_size):
        for worker in range(num_workers):
            chunks = list(shard_plan_chunks(counts, starts, step, order, rank, world_size, worker, num_workers,
                                            shuffle, 5, 2, 50, pad, chunk=4))
            assert all(len(c[0]) <= 4 for c in chunks) and all(len(c[0]) == 4 for c in chunks[:-1])
            seqs, firsts, is_last = joined(chunks)
            assert len(seqs) == expected_counts[worker]                                      # len() and batches unchanged
            np.testing.assert_array_equal(is_last, last_uses(seqs))                          # holds across chunks
            np.testing.assert_array_equal(shard_plan(counts, starts, step, order, rank, world_size, worker, num_workers,
                                                     shuffle, 5, 2, 50, pad), (seqs, firsts))
            assert np.all(firsts >= starts[seqs]) and np.all((firsts - starts[seqs]) // step < counts[seqs])
            seen += list(zip(seqs.tolist(), firsts.tolist()))
    every = {(int(s), int(starts[s] + i * step)) for s in range(len(counts)) for i in range(counts[s])}
    if pad: assert set(seen) == every and len(seen) == world_size * rank_clip_count(total, world_size, pad)
    else: assert len(seen) == len(set(seen)) and set(seen) <= every and total - len(seen) <= world_size - 1


def test_unshuffled_is_the_layout(block):
    counts, starts, step, order = case([10, 3, 7, 25], keep=1.0)
    seqs, firsts, _ = joined(list(shard_plan_chunks(counts, starts, step, order, 0, 1, 0, 1, chunk=3)))
    np.testing.assert_array_equal(seqs, np.repeat(order, counts[order]))
    np.testing.assert_array_equal(firsts, np.concatenate([np.arange(counts[s]) for s in order]))


@pytest.mark.parametrize("skip", [0, 1, 6, 7, 8, 50, 139, 140])
def test_skip_and_chunk_give_pieces_of_one_plan(block, skip):
    counts, starts, step, order = case([30, 50, 20, 40], seed=3)        # 112 clips
    whole = joined(list(shard_plan_chunks(counts, starts, step, order, 0, 1, 0, 1, True, 1, 4, 40)))
    for chunk in (1, 5, 1 << 16):
        tail = joined(list(shard_plan_chunks(counts, starts, step, order, 0, 1, 0, 1, True, 1, 4, 40, skip=skip, chunk=chunk)))
        for a, b in zip(tail, whole): np.testing.assert_array_equal(a, b[skip:])


def test_pure_and_new_each_epoch():
    counts, starts, step, order = case([200] * 64)
    plan = lambda epoch: shard_plan(counts, starts, step, order, 0, 1, 0, 1, True, 0, epoch)
    np.testing.assert_array_equal(plan(3), plan(3))
    assert (plan(3)[0] != plan(4)[0]).mean() > 0.9


def test_padding_wrap_meets_a_sequence_twice():
    counts, starts = np.array([4, 1]), np.zeros(2, np.int64)           # rank 1 of 2 with padding reads positions 3, 4, 0
    for shuffle in (False, True):
        seqs, firsts, is_last = joined(list(shard_plan_chunks(counts, starts, 1, np.arange(2), 1, 2, 0, 1, shuffle, 0, 0, 10, True, chunk=1)))
        assert sorted(zip(seqs.tolist(), firsts.tolist())) == [(0, 0), (0, 3), (1, 0)]
        np.testing.assert_array_equal(is_last, last_uses(seqs))
    np.testing.assert_array_equal(seqs, [0, 0, 1])                      # one group for sequence 0: read together


def test_mixing_target_on_counts():
    """64 sequences of 160 single-frame clips, default buffer: batches of 64 hold >= 32 sequences on average."""
    counts = np.full(64, 160)
    seqs, _, _ = joined(list(shard_plan_chunks(counts, np.zeros(64, np.int64), 1, np.arange(64), 0, 1, 0, 1, True, 0, 0)))
    assert np.mean([len(np.unique(b)) for b in seqs.reshape(-1, 64)]) >= 32


def test_shuffle_moves_clips_of_a_sequence_across_the_shard():
    counts, starts, step, order = case([200] * 64)
    seqs, firsts = shard_plan(counts, starts, step, order, 0, 1, 0, 1, True, 0, 0, shuffle_buffer=1_000)   # 7 lanes
    for s in range(64):
        where = np.flatnonzero(seqs == s)
        assert where[-1] - where[0] > 3 * len(where)                    # spread over the stretch its lane is read in
        assert not np.all(np.diff(firsts[where]) > 0)                   # its clips in a random order, not front to back


@pytest.fixture(scope="module")
def amass():
    "(counts, window starts, sequence order) of single-frame clips of every AMASS sequence, shuffled, epoch 0."
    lengths = amass_lengths()
    return clip_counts(lengths, 1, False, 0.8), kept_windows(lengths, 0.8)[0], sequence_order(len(lengths), True, 0, 0)


def test_full_size_first_chunks_in_bounded_memory(amass):
    counts, starts, order = amass
    assert counts.sum() > 1e7 or not LENS.is_file()                     # 15.8M clips with the real lengths
    tracemalloc.start()
    try:
        chunks = shard_plan_chunks(counts, starts, 1, order, 0, 1, 0, 1, True, 0, 0)
        first = next(chunks)
        seqs = np.concatenate([first[0]] + [c[0] for c in islice(chunks, 15)])   # the first million clips
        peak = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert peak < 100e6, peak                                            # was ~1.3 GB: the whole shard's plan
    assert len(first[0]) == 1 << 16 and len(seqs) == 16 << 16
    lanes = lanes_for_buffer(10_000, np.mean(counts[counts > 0]))
    distinct = np.mean([len(np.unique(b)) for b in seqs[:1000 * 256].reshape(-1, 256)])
    assert distinct >= lanes, (distinct, lanes)                          # a sequence in each lane, and some changing


def test_full_size_resume_near_the_end(amass):
    counts, starts, order = amass
    n = int(worker_clip_counts(rank_clip_count(int(counts.sum()), 2), 3)[1])
    tail = joined(list(shard_plan_chunks(counts, starts, 1, order, 1, 2, 1, 3, True, 0, 0, skip=n - 1000)))
    assert len(tail[0]) == 1000 and tail[2][-1]
