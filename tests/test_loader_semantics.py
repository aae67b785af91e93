"""The loader does what was asked, or says why (issue 20 points 2, 3, 4, 6; issue 19 point 13; issue 22's one fast path).

Batching happens once and means what users expect: full batches whatever the number of workers, `drop_last`
drops only the rank's last partial batch, `len()` is what is yielded; copies of a dataset follow epochs like the
original; arguments are checked where they are given; a store truncated under a running loop raises, never SIGBUS.
"""
import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tudata

from llamass.clips import batch_count
from llamass.core import AMASS, IterableLoader, PackedAMASS
from llamass.dataset import clip_ids
from llamass.store import amass_pack
from common import check_resumes, write_identified

LENGTHS = [23, 7, 40, 12, 31, 5, 18, 44, 9, 27]
CLIPS = sum(n // 3 for n in LENGTHS)           # clip_length 3, keep 1.0: 69 clips


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_identified(tmp_path_factory.mktemp("semantics"), LENGTHS)


@pytest.fixture(scope="module")
def store(tree, tmp_path_factory):
    folder = tmp_path_factory.mktemp("semantics_store") / "store"
    amass_pack(tree, folder, progress=False)
    return folder


def amass(tree, data_keys=("trans", "gender"), **kwargs):
    return AMASS(tree, 3, keep=1.0, data_keys=data_keys, progress=False, **kwargs)


def packed(store, data_keys=("trans", "gender"), **kwargs):
    return PackedAMASS(store, 3, keep=1.0, data_keys=data_keys, **kwargs)


def make(kind, tree, store, **kwargs):
    return amass(tree, **kwargs) if kind == "amass" else packed(store, **kwargs)


# --- point 2: batching once, drop_last, len ---

def test_batching_twice_is_refused(tree, store):
    for dataset in (amass(tree, batch_size=3), packed(store, batch_size=5)):
        with pytest.raises(ValueError, match=r"already yields batches of \d clips .* drop one: IterableLoader\(dataset, batch_size=None\)"):
            IterableLoader(dataset, batch_size=2)
        batch = next(iter(IterableLoader(dataset)))             # no batch size given: the dataset's batches, once
        assert batch["trans"].shape == (dataset.batch_size, 3, 3)


def test_loader_shuffle_is_refused(tree):
    with pytest.raises(ValueError, match=r"IterableLoader\(shuffle=True\): the order of an epoch is the dataset's; give shuffle=True"):
        IterableLoader(amass(tree), batch_size=4, shuffle=True)
    assert len(IterableLoader(amass(tree), batch_size=4, shuffle=False)) == -(-CLIPS // 4)


@pytest.mark.parametrize("kind", ["amass", "packed"])
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("mode", [None, "processes"])
def test_full_batches_whatever_the_workers(tree, store, kind, workers, drop_last, mode):
    loader = IterableLoader(make(kind, tree, store, shuffle=True), batch_size=8, num_workers=workers, drop_last=drop_last, worker_mode=mode)
    sizes = [len(b["trans"]) for b in loader]
    assert sizes == [8] * (CLIPS // 8) + ([] if drop_last else [CLIPS % 8])    # only the epoch's last batch is partial
    assert len(loader) == len(sizes)


@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("mode", [None, "processes"])
def test_full_batches_on_every_rank(tree, workers, mode):
    per_rank = CLIPS // 2
    for rank in (0, 1):
        loader = IterableLoader(amass(tree, shuffle=True, rank=rank, world_size=2), batch_size=8, num_workers=workers, drop_last=True,
                                worker_mode=mode)
        sizes = [len(b["trans"]) for b in loader]
        assert sizes == [8] * (per_rank // 8) and len(loader) == len(sizes)


@pytest.mark.parametrize("kind", ["amass", "packed"])
@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_plain_dataloader_over_batch_mode_is_exact(tree, store, kind, workers, drop_last):
    dataset = make(kind, tree, store, batch_size=8, drop_last=drop_last, shuffle=True)
    loader = tudata.DataLoader(dataset, batch_size=None, num_workers=workers)
    sizes = [len(b["trans"]) for b in loader]
    assert sizes == [8] * (CLIPS // 8) + ([] if drop_last else [CLIPS % 8]) and len(loader) == len(dataset) == len(sizes)


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_plain_dataloader_batching_clips_does_what_the_chapter_says(tree, workers):
    "A plain DataLoader batches each worker's share itself (it cannot tell the dataset its batch size): the engine chapter's count."
    dataset = amass(tree)
    for drop_last in (False, True):
        yielded = [len(b["trans"]) for b in tudata.DataLoader(dataset, batch_size=7, num_workers=workers, drop_last=drop_last)]
        assert len(yielded) == int(batch_count(dataset.worker_clips(max(1, workers)), 7, drop_last).sum())
        assert sum(yielded) == (sum(batch_count(dataset.worker_clips(max(1, workers)), 7, True)) * 7 if drop_last else CLIPS)


@pytest.mark.parametrize("kind", ["amass", "packed"])
@pytest.mark.parametrize("workers", [0, 2])
def test_one_fast_path_same_clips_order_and_cuts(tree, store, kind, workers):
    "IterableLoader(dataset, batch_size=B) gathers whole batches as batch mode does, and both hold the clip-by-clip path's clips in its order."
    gathered = IterableLoader(make(kind, tree, store, shuffle=True), batch_size=6, num_workers=workers)
    assert gathered.gathered and gathered.batch_size == 6
    batch_mode = IterableLoader(make(kind, tree, store, shuffle=True, batch_size=6), batch_size=None, num_workers=workers)
    by_clips = IterableLoader(make(kind, tree, store, shuffle=True), batch_size=6, num_workers=workers, collate_fn=tudata.default_collate)
    assert not by_clips.gathered
    epochs = [[clip_ids(b) for b in loader] for loader in (gathered, batch_mode, by_clips)]
    assert epochs[0] == epochs[1] and len(gathered) == len(batch_mode) == len(by_clips) == len(epochs[0])
    if kind == "packed" and workers:      # packed workers send several batches at once: the same batches, taken a group at a time
        assert sorted(epochs[0]) == sorted(epochs[2])
    else: assert epochs[0] == epochs[2]
    first = next(iter(gathered))
    assert {k: v.dtype for k, v in first.items()} == {"trans": torch.float32, "gender": torch.int64}


@pytest.mark.parametrize("kind", ["amass", "packed"])
@pytest.mark.parametrize("collate", [None, tudata.default_collate])
def test_drop_last_loader_resumes_exactly(tree, store, kind, collate):
    def loader():
        made = IterableLoader(make(kind, tree, store, shuffle=True), batch_size=6, num_workers=2, drop_last=True, collate_fn=collate)
        made.set_epoch(3)
        return made
    whole = check_resumes(loader)
    assert len(whole) == CLIPS // 6 and all(len(b) == 6 for b in whole)


# --- point 3: copies follow epochs ---

def _epochs(loader, n=2):
    return [[clip_ids(b) for b in loader] for _ in range(n)]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("context", [None, "spawn"])
def test_copies_follow_epochs(tree, how, context):
    original = amass(tree, shuffle=True, seed=5)
    copied = copy.deepcopy(original) if how == "deepcopy" else pickle.loads(pickle.dumps(original))
    expected = _epochs(IterableLoader(original, batch_size=4, num_workers=2))
    assert expected[0] != expected[1]
    loader = IterableLoader(copied, batch_size=4, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    assert _epochs(loader) == expected
    copied.set_epoch(7)                           # a copy's epochs are its own
    assert original.epoch == 1 and copied.epoch == 7


@pytest.mark.parametrize("context", [None, "spawn"])
def test_plain_dataloader_persistent_workers_follow_set_epoch(tree, context):
    def epochs(dataset, **kwargs):
        loader, out = tudata.DataLoader(dataset, batch_size=4, num_workers=2, **kwargs), []
        for epoch in (0, 1):
            dataset.set_epoch(epoch)
            out.append([clip_ids(b) for b in loader])
        return out
    expected = epochs(amass(tree, shuffle=True, seed=5))
    assert expected[0] != expected[1]
    assert epochs(copy.deepcopy(amass(tree, shuffle=True, seed=5)), persistent_workers=True, multiprocessing_context=context) == expected


def test_fresh_loaders_and_late_copies_continue_the_epochs(tree):
    original = amass(tree, shuffle=True, seed=5)
    expected = _epochs(IterableLoader(original, batch_size=4), n=3)
    dataset = amass(tree, shuffle=True, seed=5)
    assert [clip_ids(b) for b in IterableLoader(dataset, batch_size=4)] == expected[0]
    assert [clip_ids(b) for b in IterableLoader(dataset, batch_size=4)] == expected[1]     # a new loader: the next epoch
    late = copy.deepcopy(dataset)                                                           # copied after two epochs
    assert [clip_ids(b) for b in IterableLoader(late, batch_size=4)] == expected[2]


def clip_ids_of(clip):
    return int(clip["trans"][0, 0]), int(clip["trans"][0, 1])


# --- point 4: arguments checked where given ---

@pytest.mark.parametrize("bad", [-120, 0, float("nan"), float("inf"), "fast", None])
def test_fps_overrides_refused(tree, store, bad):
    for build in (lambda: amass(tree, fps_overrides={"DS": bad}), lambda: packed(store, fps_overrides={"DS": bad})):
        with pytest.raises(ValueError, match=r"fps_overrides\['DS'\] must be a finite number > 0, got"):
            build()


def test_names_as_one_string(tree, store):
    one = AMASS(tree, 3, keep=1.0, data_keys="trans", subdatasets="DS", progress=False)
    assert one.data_keys == ("trans",) and set(next(iter(one))) == {"trans"}
    assert PackedAMASS(store, 3, keep=1.0, data_keys="trans").data_keys == ("trans",)
    for build in (lambda: AMASS(tree, 3, data_keys=(), progress=False), lambda: PackedAMASS(store, 3, data_keys=[])):
        with pytest.raises(ValueError, match="data_keys must be a name or a non-empty list of names"):
            build()
    with pytest.raises(ValueError, match="subdatasets must be a name or a non-empty list of names"):
        AMASS(tree, 3, subdatasets=[], progress=False)


def test_huge_shuffle_buffer_is_capped(tree):
    huge, whole = amass(tree, shuffle=True, shuffle_buffer=5 * 10**8), amass(tree, shuffle=True, shuffle_buffer=CLIPS * 10)
    assert [clip_ids_of(c) for c in huge] == [clip_ids_of(c) for c in whole]   # as many lanes as sequences, no more


@pytest.mark.parametrize("bad", ["DS", None, [1, 2], 7])
def test_state_with_a_bad_dataset_field(tree, bad):
    loader = IterableLoader(amass(tree), batch_size=4)
    state = {**loader.state_dict(), "dataset": bad}
    with pytest.raises(ValueError, match=r"cannot resume: state\['dataset'\] must be a dict"):
        loader.load_state_dict(state)


@pytest.mark.parametrize("bad", [2**63, -1, 1.5, "2", None])
def test_epoch_checked_where_given(tree, bad):
    loader = IterableLoader(amass(tree), batch_size=4)
    with pytest.raises(ValueError, match="epoch must be an integer in"):
        loader.set_epoch(bad)
    with pytest.raises(ValueError, match=r"state\['epoch'\] must be an integer in"):
        loader.load_state_dict({**loader.state_dict(), "epoch": bad})
    loader.set_epoch(2**63 - 1)
    assert len([b for b in loader]) == len(loader)


# --- point 6: quiet surprises ---

def test_too_short_sequences_said_once(tree):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        dataset = AMASS(tree, 30, keep=1.0, progress=False)
        list(dataset)
    messages = [str(w.message) for w in said if "too short" in str(w.message)]
    assert messages == ["7 of 10 sequences are too short for clip_length=30 and give no clip (the longest of them keeps 27 frames "
                        "with keep=1.0); use a shorter clip_length or a larger keep to read them"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_cuda_refused_when_built(store):
    with pytest.raises(ValueError, match="device='cuda': this torch cannot use CUDA"):
        packed(store, batch_size=4, device="cuda")


# --- issue 19 point 13: a store truncated under a running loop ---

TRUNCATE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from llamass.packed import PackedAMASS
    store, batch_size = Path(sys.argv[1]), (int(sys.argv[2]) or None)
    items = iter(PackedAMASS(store, 3, keep=1.0, data_keys=("trans",), batch_size=batch_size))
    next(items)
    with open(store / "trans.npy", "r+b") as f: f.truncate(0)     # what cp does first when it copies over the file
    for _ in items: pass
""")


@pytest.mark.parametrize("batch_size", [0, 4])
def test_truncated_store_raises_not_sigbus(store, tmp_path, batch_size):
    copied = tmp_path / "store"
    subprocess.run(["cp", "-r", str(store), str(copied)], check=True)
    done = subprocess.run([sys.executable, "-c", TRUNCATE, str(copied), str(batch_size)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])        # an exception, not a signal (-7: SIGBUS)
    assert "StoreError" in done.stderr and ("trans.npy is being written" in done.stderr or "trans.npy shrank from" in done.stderr), done.stderr[-2000:]


LOOP = textwrap.dedent("""
    import sys
    from pathlib import Path
    from llamass.core import IterableLoader, PackedAMASS
    store, mode = Path(sys.argv[1]), sys.argv[2]
    loader = IterableLoader(PackedAMASS(store, 3, keep=1.0, data_keys=("trans",), shuffle=True), batch_size=4, num_workers=2, worker_mode=mode)
    for epoch in range(10**6):
        for i, batch in enumerate(loader):
            if epoch == 0 and i == 0: print("reading", flush=True)
""")


@pytest.mark.parametrize("mode", ["inline", "threads", "processes"])
def test_store_copied_over_while_read_raises_not_sigbus(store, tmp_path, mode):
    "Another process truncates a store file while the loop reads without pause: the loop raises StoreError, whatever the timing."
    copied = tmp_path / "store"
    subprocess.run(["cp", "-r", str(store), str(copied)], check=True)
    loop = subprocess.Popen([sys.executable, "-c", LOOP, str(copied), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert loop.stdout.readline() == "reading\n"
        with open(copied / "trans.npy", "r+b") as f: f.truncate(0)     # as cp does; waits for the loop to let go of the file
        _, stderr = loop.communicate(timeout=120)
    finally: loop.kill()
    assert loop.returncode == 1, (loop.returncode, stderr[-2000:])        # an exception, not a signal (-7: SIGBUS)
    assert "StoreError" in stderr and "trans.npy" in stderr, stderr[-2000:]


# --- issue 22: workers that cost nothing (threads, or inline) ---

@pytest.mark.parametrize("kind", ["amass", "packed", "packed_joints"])
@pytest.mark.parametrize("batch_mode", [False, True])
def test_worker_modes_deliver_what_processes_do(tree, store, kind, batch_mode):
    def loader(mode):
        keys = {"data_keys": ("trans", "gender", "start")} if kind == "packed_joints" else {}   # a derived key
        dataset = make(kind.split("_")[0], tree, store, shuffle=True, **keys, **({"batch_size": 6} if batch_mode else {}))
        made = IterableLoader(dataset, **({} if batch_mode else {"batch_size": 6}), num_workers=3, worker_mode=mode)
        made.set_epoch(2)
        return made
    assert loader(None).worker_mode == "inline"   # small batches
    epochs = {mode: [clip_ids(b) for b in loader(mode)] for mode in ("threads", "inline", "processes")}
    assert epochs["threads"] == epochs["inline"] == epochs["processes"]   # (the packed store's workers send a group of batches at a time, in every mode)
    assert len(epochs["threads"]) == len(loader(None)) and [len(b) for b in epochs["threads"]] == [6] * (CLIPS // 6) + [CLIPS % 6]
    for mode in ("threads", "inline") + (("processes",) if kind == "packed_joints" else ()): check_resumes(lambda: loader(mode))


def test_processes_when_asked_or_needed(tree):
    assert IterableLoader(amass(tree), batch_size=4, num_workers=2, worker_init_fn=print).worker_mode == "processes"
    assert IterableLoader(amass(tree, transform=torch.as_tensor), batch_size=4, num_workers=2).worker_mode == "processes"
    assert IterableLoader(amass(tree), batch_size=4, num_workers=2, collate_fn=tudata.default_collate).worker_mode == "processes"
    assert IterableLoader(amass(tree), batch_size=4, num_workers=0).worker_mode is None
    with pytest.raises(ValueError, match="worker_mode must be one of"):
        IterableLoader(amass(tree), batch_size=4, num_workers=2, worker_mode="fibers")


def test_thread_errors_are_raised_and_threads_end(tree):
    import threading
    dataset = amass(tree)
    def broken(*args, **kwargs):
        raise OSError("disk gone")
    dataset.read_plan = broken                 # the instance's own: threads share it
    dataset._batches = lambda *args, **kwargs: broken()
    with pytest.raises(OSError, match="disk gone"):
        list(IterableLoader(dataset, batch_size=4, num_workers=2, worker_mode="threads"))
    before = threading.active_count()
    first = next(iter(IterableLoader(amass(tree), batch_size=4, num_workers=2, worker_mode="threads")))   # stopped after one batch
    assert len(first["trans"]) == 4 and threading.active_count() == before


# --- issue 22: batch buffers reused only once nothing refers to them ---

def test_buffer_pool_reuses_only_what_nobody_holds():
    from llamass.packed import _BufferPool
    pool = _BufferPool()
    first = pool.take(1000)
    second = pool.take(1000)                           # `first` is held: a buffer of its own
    assert not np.shares_memory(first, second)
    view = torch.from_numpy(first[10:20])              # a tensor of a view keeps the buffer busy, as a batch's key does
    del first
    third = pool.take(1000)
    assert not np.shares_memory(third, view.numpy()) and not np.shares_memory(third, second)
    del view
    again = pool.take(800)                             # nothing holds the first buffer any more: reused, from its start
    assert np.shares_memory(again, pool.buffers[0]) and again.__array_interface__["data"] == pool.buffers[0].__array_interface__["data"]


@pytest.mark.parametrize("mode", [None, "inline", "threads"])
@pytest.mark.parametrize("clip_length", [1, 3])
def test_kept_batches_are_never_overwritten(store, mode, clip_length):
    "Keep every batch of several epochs (a user collecting them): each still holds what it held when it arrived."
    def loader():
        dataset = PackedAMASS(store, clip_length, keep=1.0, shuffle=True, data_keys=("trans", "gender", "dmpls"))
        return IterableLoader(dataset, batch_size=4, num_workers=0 if mode is None else 2, worker_mode=mode)
    made, kept, copies = loader(), [], []
    for _ in range(3):
        for batch in made:
            kept.append(batch)
            copies.append({k: v.clone() for k, v in batch.items()})
    assert len(kept) == 3 * len(made)
    for batch, copied in zip(kept, copies):
        for key in batch: assert torch.equal(batch[key], copied[key]), key
    fresh = loader()                                   # and they are the batches of those epochs
    expected = [{k: v.clone() for k, v in b.items()} for _ in range(3) for b in fresh]
    for batch, want in zip(kept, expected):
        for key in batch: assert torch.equal(batch[key], want[key]), key


def test_npz_batches_are_cut_in_threads_when_large(tree):
    "AMASS: small batches inline (a hand-off costs more than cutting them); large ones in threads (from fewer frames with derived keys)."
    from llamass.dataset import _THREADS_FROM_FRAMES
    from llamass.derived import THREADS_FROM_FRAMES
    modes = lambda dataset, batch_size: IterableLoader(dataset, batch_size=batch_size, num_workers=2).worker_mode
    assert modes(amass(tree), 4) == "inline" and modes(amass(tree), -(-_THREADS_FROM_FRAMES // 3)) == "threads"
    derived = lambda: amass(tree, data_keys=("trans", "joints"))
    assert modes(derived(), 4) == "inline" and modes(derived(), -(-THREADS_FROM_FRAMES // 3)) == "threads"
    assert modes(amass(tree, batch_size=_THREADS_FROM_FRAMES), None) == "threads"


def test_stored_keys_gather_in_threads_when_batches_are_large(store):
    "Small batches: inline (a thread's hand-off costs more than it saves); large ones: threads (with derived keys, from fewer frames)."
    small = IterableLoader(packed(store), batch_size=4, num_workers=2)
    dataset = packed(store, data_keys=("trans", "dmpls", "betas", "gender"))
    large_clips = -(-(1 << 18) // (3 * dataset.frame_bytes()))
    large = IterableLoader(dataset, batch_size=large_clips, num_workers=2)
    assert (small.worker_mode, large.worker_mode) == ("inline", "threads")
    assert dataset.frame_bytes() == 4 * (3 + 8 + 16 + 1)
    batch_mode = packed(store, data_keys=("trans", "dmpls", "betas", "gender"), batch_size=large_clips)
    assert IterableLoader(batch_mode, batch_size=None, num_workers=2).worker_mode == "threads"
    from llamass.derived import THREADS_FROM_FRAMES
    derived = packed(store, data_keys=("trans", "joints"))
    assert IterableLoader(derived, batch_size=4, num_workers=2).worker_mode == "inline"
    assert IterableLoader(derived, batch_size=-(-THREADS_FROM_FRAMES // 3), num_workers=2).worker_mode == "threads"


def test_loader_threads_share_torchs_threads():
    "Each loader thread gets its share of torch's intra-op threads (as DataLoader's processes get one each), set in that thread alone."
    from llamass.engine import taken_in_turn, worker_torch_threads
    def counts(n):
        for _ in range(n): yield torch.get_num_threads()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert worker_torch_threads(2) in (2, None) and worker_torch_threads(8) in (1, None)
        if worker_torch_threads(2) is None: pytest.skip("this torch's thread count is not per thread (not OpenMP)")
        assert list(taken_in_turn([counts(3), counts(3)], 2, worker_torch_threads(2))) == [2] * 6
        assert torch.get_num_threads() == 4                            # this thread's own is left as it was
    finally: torch.set_num_threads(before)


def test_leases_taken_in_a_loader_thread_signal_this_process(store):
    "A store first read in a loader thread leases its files there: their break (SIGIO) must still reach this process, or a copy over them waits 45 s and then SIGBUS."
    import threading
    fcntl = pytest.importorskip("fcntl")
    dataset = packed(store)
    thread = threading.Thread(target=dataset.check_mapped)       # maps the store and leases its files in that thread
    thread.start(); thread.join()
    files = dataset._mapped
    if not files.leased: pytest.skip("no read leases here (not Linux, or refused)")
    assert [fcntl.fcntl(fd, fcntl.F_GETOWN) for fd in files.fds] == [os.getpid()] * len(files.fds)


def test_loader_threads_pin_grouped_batches(store, monkeypatch):
    "pin_memory=True with loader threads or inline shards pins what they make, the packed store's groups of batches included."
    import llamass.engine
    from llamass.packed import PackedBatches
    asked = []
    monkeypatch.setattr(llamass.engine.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(PackedBatches, "pin_memory", lambda self, device=None: asked.append(len(self.layouts)) or self)
    for mode in ("inline", "threads"):
        asked.clear()
        batches = list(IterableLoader(packed(store), batch_size=4, num_workers=2, worker_mode=mode, pin_memory=True))
        assert len(batches) == -(-CLIPS // 4) and asked and max(asked) > 1 and sum(asked) == len(batches), (mode, asked)
