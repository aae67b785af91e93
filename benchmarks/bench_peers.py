"""llamass next to the loaders users would pick instead: the same clips, batches and machine, ratios from one run.

The workload: the synthetic AMASS replica of `bench_loaders.py` (the real sequence lengths of
../shared/amass_lens_real.json.gz when present) at `--fraction` of its sequences; clips of 1 and 32 frames cut without
overlap from each sequence's kept window (the centred 80 %, as llamass cuts them); batches of 256 clips, shuffled; the
keys poses (156), dmpls (8), trans (3) per frame, betas (16) and gender per sequence, float32. Each peer is written as
its documentation shows a user writing it, with its own preparation step reading the npz files:

  - llamass `PackedAMASS(store, clip, batch_size=256)` + `IterableLoader(ds, batch_size=None)` (batch mode), and
    `IterableLoader(PackedAMASS(store, clip), batch_size=256)` (the way people write it); `AMASS` on the npz files;
    preparation: `amass_pack -n 2` (AMASS reads the npz files as they are);
  - limits, the clips in RAM: a torch tensor gathered with `index_select`, a numpy array gathered with `numpy.take`
    (0 workers; preparation: gathering every clip from the store into memory);
  - LitData: `optimize(...)` one clip per item, `StreamingDataset(shuffle=True)` + `StreamingDataLoader`; and one
    sequence per item, clips cut and shuffled in a buffer of 10,000 clips by an `IterableDataset` over it;
  - MosaicML streaming: `MDSWriter` one clip per item, `StreamingDataset(shuffle=True, batch_size=256)` + `DataLoader`;
  - WebDataset: `ShardWriter` (.npy members, 32 MB shards), `WebDataset(shardshuffle=...).shuffle(1000).decode()
    .batched(256)` + `WebLoader`;
  - ffcv: `DatasetWriter` with `NDArrayField`s, `Loader(order=OrderOption.RANDOM)` (its workers are threads, and it
    always has one: its "0 workers" column is 1 thread; its first batch includes numba compiling the pipeline).

Measured, each cell in its own process (killed if it hangs): frames/s at clip 1 and clip 32 with 0 and 2 workers
(persistent workers, as a user who times an epoch loop would ask for); the time from making the dataset to its first
batch; the peak memory of the cell's process tree (the sum of their proportional set sizes, so pages the workers share
count once); preparation seconds and bytes on disk; exactly-once: one whole epoch at clip 32 with 0 and with 2 workers,
counting the (sequence, first frame) of every clip against the clips there are. With `--rounds N` every loading cell
runs N times, the rounds interleaved so that a busy minute of a shared machine spreads over all rows, and the table
gives the medians. `--seconds` bounds a cell by time (the default); `--batches` (and `--quick`) by work.

Installing the peers (benchmark-only; never runtime or test dependencies of llamass). LitData and MosaicML streaming
declare `torchvision` (and Mosaic a numpy < 2.2 pin): pip would replace the CPU torch with a CUDA torch, and PyPI's
torchvision, built for CUDA torch, cannot be imported next to a CPU torch ("operator torchvision::nms does not
exist"). So they go into a venv outside the repository that sees the system's torch, installed without their
dependencies, then the few they import:

  python3 -m venv --system-site-packages /work/peers-venv          # sees the installed torch (CPU) and numpy 2
  /work/peers-venv/bin/pip install --no-deps litdata mosaicml-streaming webdataset
  /work/peers-venv/bin/pip install lightning-utilities filelock braceexpand pyyaml xxhash zstd Brotli python-snappy \\
      catalogue "transformers<5"                                  # litdata; webdataset; mosaic (it imports transformers)
  # Mosaic's `import streaming` imports streaming.vision, which imports torchvision for its image datasets (never
  # used here). Give it a stand-in with the three names it imports, visible in this venv only:
  mkdir -p /work/peers-venv/torchvision-stub/torchvision/transforms
  echo 'class VisionDataset: pass' > /work/peers-venv/torchvision-stub/torchvision/datasets.py
  echo 'CIFAR10 = VisionDataset' >> /work/peers-venv/torchvision-stub/torchvision/datasets.py
  echo 'def to_tensor(x): raise ImportError("torchvision stand-in")' > /work/peers-venv/torchvision-stub/torchvision/transforms/functional.py
  touch /work/peers-venv/torchvision-stub/torchvision/__init__.py /work/peers-venv/torchvision-stub/torchvision/transforms/__init__.py
  echo /work/peers-venv/torchvision-stub > /work/peers-venv/lib/python3.11/site-packages/torchvision-stub.pth
  # (LitData looks torchvision up by its installed metadata, which the stand-in has none of: it does not use it.)
  # ffcv compiles C code against OpenCV and libjpeg-turbo (found through pkg-config); its own dependencies (numba,
  # llvmlite, opencv-python, pytorch-pfn-extras, ...) install as they are and leave torch and numpy 2.4 in place:
  apt-get install -y --no-install-recommends libopencv-dev libturbojpeg0-dev pkg-config
  /work/peers-venv/bin/pip install ffcv

Then run this script with the venv's python; a peer that is not installed is reported ("not installed: pip install
...") and its row left empty; the others run.

Usage, from the repository root:
  /work/peers-venv/bin/python benchmarks/bench_peers.py --fraction 0.005 --rounds 3 --out benchmarks/results/peers.md
  python3 benchmarks/bench_peers.py --quick --rows packed_batch,packed,amass,tensor,numpy   # does it run? (2 batches a cell)
"""
import argparse
import gc
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path: sys.path.insert(0, str(HERE))
from bench_gpu import epochs, prepare, rate, timed  # noqa: E402
from bench_loaders import BATCH, KEYS, LENS, OUT, all_clips, frames_in  # noqa: E402
from measure import finish_run, machine, table  # noqa: E402

CLIPS = (1, 32)
WORKERS = (0, 2)
CHECK_CLIP = 32               # exactly-once is checked over one whole epoch at this clip length
SHUFFLE_BUFFER = 10_000       # clips held by the sequence-per-item loader's shuffle buffer
SHARD_BYTES = 32_000_000      # LitData chunks, Mosaic shards, WebDataset tars
CELL_TIMEOUT = 300            # seconds beyond the timed window a cell may take (hang guard)
FRAME_KEYS = ("poses", "dmpls", "trans")


# ---------------------------------------------------------------- the rows: what each is and what it needs
class Row(NamedTuple):
    "A row of the table: what it measures and what it needs."
    label: str                # as the table shows it
    short: str                # as the ratio lines name it
    module: str = None        # the module it imports (None: llamass, always there)
    install: str = ""         # how to install that module
    per_clip: bool = False    # prepared once per clip length (one clip per item), not once
    workers: bool = True      # measured with 0 and 2 workers (False: 0 only)


LITDATA = "pip install --no-deps litdata && pip install lightning-utilities filelock"
ROWS = {
    "packed_batch": Row("llamass `PackedAMASS(batch_size=256)`, `IterableLoader(batch_size=None)`", "llamass batch mode"),
    "packed": Row("llamass `IterableLoader(PackedAMASS(store, clip), batch_size=256)`", "llamass `IterableLoader(batch_size=256)`"),
    "amass": Row("llamass `AMASS` (npz), `IterableLoader(batch_size=256)`", "llamass `AMASS` (npz)"),
    "tensor": Row("in RAM: torch `index_select` (limit)", "torch `index_select`", per_clip=True, workers=False),
    "numpy": Row("in RAM: `numpy.take` (limit)", "`numpy.take`", per_clip=True, workers=False),
    "litdata_clip": Row("LitData, one clip per item", "LitData (clip per item)", "litdata", LITDATA, per_clip=True),
    "litdata_seq": Row("LitData, one sequence per item", "LitData (sequence per item)", "litdata", LITDATA),
    "mosaic": Row("MosaicML streaming, one clip per item", "Mosaic", "streaming",
                  "pip install --no-deps mosaicml-streaming (and its imports: see this script's docstring)", per_clip=True),
    "wds": Row("WebDataset, one clip per item", "WebDataset", "webdataset", "pip install webdataset", per_clip=True),
    "ffcv": Row("ffcv, one clip per item (0 w: one thread; its workers are threads)", "ffcv", "ffcv", "apt-get install libopencv-dev libturbojpeg0-dev && pip install ffcv",
                per_clip=True),
}
LIMITS = ("tensor", "numpy")
SHARES_PREPARATION = {"packed": "packed_batch"}   # both llamass store rows read the one store


def installed(module):
    "Whether `module` can be imported by this interpreter (None: nothing to install)."
    return module is None or importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------- the sequences, as every peer's preparation reads them
def sequence_files(root, store):
    "The npz files of the sequences in the store, in the store's order (a sequence's number is its place here)."
    from llamass.packed import PackedAMASS
    with warnings.catch_warnings():                       # a sequence too short for any clip is listed all the same
        warnings.simplefilter("ignore")
        return [str(Path(root) / p) for p in PackedAMASS(store, 1).sequence_paths]


def read_sequence(path):
    "The float32 frames of a sequence's kept window (the centred 80 %, as llamass keeps), its betas and gender code."
    from llamass.clips import kept_windows
    from llamass.index import gender_code
    with np.load(path) as npz:
        start, stop = (int(v[0]) for v in kept_windows([len(npz["poses"])], 0.8))
        frames = {k: npz[k][start:stop].astype(np.float32) for k in FRAME_KEYS}
        return frames, start, npz["betas"][:16].astype(np.float32), gender_code(npz["gender"], path)


def cut_clips(frames, clip):
    "{key: (clips, clip, width)} of the non-overlapping clips of `frames`, from its first frame."
    n = len(frames["poses"]) // clip
    return {k: v[:n * clip].reshape(n, clip, *v.shape[1:]) for k, v in frames.items()}


def clip_items(numbered_path, clip):
    "Yield one dict per clip of a (number, npz path): its frames, betas, gender, and its (seq, start) id."
    seq, path = numbered_path
    frames, first, betas, gender = read_sequence(path)
    clips = cut_clips(frames, clip)
    for i in range(len(clips["poses"])):
        yield {**{k: np.ascontiguousarray(v[i]) for k, v in clips.items()}, "betas": betas, "gender": gender,
               "seq": seq, "start": first + i * clip}


def sequence_item(numbered_path):
    "One dict per sequence: its kept frames, betas, gender, number and first kept frame."
    seq, path = numbered_path
    frames, first, betas, gender = read_sequence(path)
    return {**frames, "betas": betas, "gender": gender, "seq": seq, "start": first}


# ---------------------------------------------------------------- preparation, one function per row
def folder_bytes(paths):
    "Bytes of the files at `paths`: a folder (the files under it), a file, or a list of files."
    if isinstance(paths, list): return sum(p.stat().st_size for p in paths)
    if Path(paths).is_file(): return Path(paths).stat().st_size
    return sum(f.stat().st_size for f in Path(paths).rglob("*") if f.is_file())


def prepare_packed(cfg):
    "`amass_pack` the replica into a fresh store with 2 jobs."
    from llamass.store import amass_pack
    amass_pack(cfg["root"], cfg["target"], n_jobs=2, progress=False)


def prepare_litdata_clip(cfg):
    "LitData's `optimize`: one item per clip, 2 workers."
    from functools import partial
    import litdata
    litdata.optimize(fn=partial(clip_items, clip=cfg["clip"]), inputs=list(enumerate(cfg["files"])), output_dir=cfg["target"],
                     chunk_bytes=SHARD_BYTES, num_workers=2, verbose=False)


def prepare_litdata_seq(cfg):
    "LitData's `optimize`: one item per sequence, 2 workers."
    import litdata
    litdata.optimize(fn=sequence_item, inputs=list(enumerate(cfg["files"])), output_dir=cfg["target"],
                     chunk_bytes=SHARD_BYTES, num_workers=2, verbose=False)


def prepare_mosaic(cfg):
    "Mosaic's `MDSWriter`: one sample per clip, fixed-shape ndarray columns."
    from streaming import MDSWriter
    clip = cfg["clip"]
    columns = {"poses": f"ndarray:float32:{clip},156", "dmpls": f"ndarray:float32:{clip},8", "trans": f"ndarray:float32:{clip},3",
               "betas": "ndarray:float32:16", "gender": "int", "seq": "int", "start": "int"}
    with MDSWriter(out=cfg["target"], columns=columns, size_limit=SHARD_BYTES) as writer:
        for numbered in enumerate(cfg["files"]):
            for item in clip_items(numbered, clip): writer.write(item)


def prepare_wds(cfg):
    "WebDataset's `ShardWriter`: one sample per clip, arrays as .npy members, ints as .cls."
    import webdataset as wds
    Path(cfg["target"]).mkdir(parents=True)
    with wds.ShardWriter(str(Path(cfg["target"]) / "shard-%06d.tar"), maxsize=SHARD_BYTES, verbose=0) as sink:
        for numbered in enumerate(cfg["files"]):
            for item in clip_items(numbered, cfg["clip"]):
                sink.write({"__key__": f"{item['seq']:06d}_{item['start']:08d}", **{f"{k}.npy": item[k] for k in (*FRAME_KEYS, "betas")},
                            **{f"{k}.cls": item[k] for k in ("gender", "seq", "start")}})


FFCV_FIELDS = (*FRAME_KEYS, "betas", "gender", "seq", "start")


def prepare_ffcv(cfg):
    "ffcv's `DatasetWriter`: one sample per clip, `NDArrayField`s and `IntField`s."
    from ffcv.fields import IntField, NDArrayField
    from ffcv.writer import DatasetWriter
    clip = cfg["clip"]
    fields = {"poses": NDArrayField(np.dtype("float32"), (clip, 156)), "dmpls": NDArrayField(np.dtype("float32"), (clip, 8)),
              "trans": NDArrayField(np.dtype("float32"), (clip, 3)), "betas": NDArrayField(np.dtype("float32"), (16,)),
              "gender": IntField(), "seq": IntField(), "start": IntField()}
    DatasetWriter(cfg["target"], fields, num_workers=2).from_indexed_dataset(ClipTuples(cfg["files"], clip))


class ClipTuples:
    "The clips of the npz `files` as an indexable dataset of tuples in `FFCV_FIELDS` order, as ffcv's writer reads one."
    def __init__(self, files, clip): self.items = [item for numbered in enumerate(files) for item in clip_items(numbered, clip)]
    def __len__(self): return len(self.items)
    def __getitem__(self, i): return tuple(self.items[i][k] for k in FFCV_FIELDS)


def prepare_in_ram(cfg):
    "Gather every clip from the store into memory (what the in-RAM rows do before their first batch)."
    all_clips(Path(cfg["store"]), cfg["clip"])


def prepare_npz(cfg):
    "Nothing: `AMASS` reads the npz files as they are (their bytes are counted)."
    return [Path(f) for f in cfg["files"]]


PREPARE = {"packed_batch": prepare_packed, "amass": prepare_npz, "tensor": prepare_in_ram, "numpy": prepare_in_ram, "litdata_clip": prepare_litdata_clip,
           "litdata_seq": prepare_litdata_seq, "mosaic": prepare_mosaic, "wds": prepare_wds, "ffcv": prepare_ffcv}


# ---------------------------------------------------------------- the loaders: each makes an iterable of one epoch's batches
def llamass_ids(batch, numbers):
    "(sequence number, first frame) of each clip of a llamass batch carrying `path` and `start`."
    return list(zip((numbers[p] for p in batch["path"]), batch["start"].reshape(-1).tolist()))


def peer_ids(batch):
    "(sequence number, first frame) of each clip of a peer's batch carrying `seq` and `start`."
    return list(zip(np.asarray(batch["seq"]).reshape(-1).tolist(), np.asarray(batch["start"]).reshape(-1).tolist()))


def load_packed_batch(cfg, ids):
    "llamass batch mode: the dataset gathers whole batches, the loader passes them on."
    from llamass.core import IterableLoader, PackedAMASS
    keys = KEYS + ("path", "start") if ids else None
    dataset = PackedAMASS(cfg["store"], cfg["clip"], shuffle=True, seed=0, batch_size=BATCH, data_keys=keys)
    return IterableLoader(dataset, batch_size=None, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


def load_packed(cfg, ids):
    "llamass as people write it: a clip dataset, the loader batching 256 of them."
    from llamass.core import IterableLoader, PackedAMASS
    keys = KEYS + ("path", "start") if ids else None
    dataset = PackedAMASS(cfg["store"], cfg["clip"], shuffle=True, seed=0, data_keys=keys)
    return IterableLoader(dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


def load_amass(cfg, ids):
    "llamass on the npz files: `AMASS` clips, the loader batching 256 of them."
    from llamass.core import AMASS, IterableLoader
    keys = KEYS + ("path", "start") if ids else None
    dataset = AMASS(cfg["root"], cfg["clip"], shuffle=True, seed=0, progress=False, data_keys=keys)
    return IterableLoader(dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


class InRAM:
    "Every clip of the store in memory (one (clips, clip, 184) array), batches of a new permutation each epoch gathered by `gather`."
    def __init__(self, store, clip, gather, as_numpy):
        from llamass.packed import PackedAMASS
        self.data = all_clips(Path(store), clip)
        if as_numpy: self.data = self.data.numpy()
        self.ids = np.stack(PackedAMASS(store, clip).clip_frames(np.arange(len(self.data)), 0), axis=1)  # its rows' clips
        self.gather, self.epoch = gather, 0

    def __iter__(self):
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(self.epoch))
        self.epoch += 1
        if isinstance(self.data, np.ndarray): order = order.numpy()
        for first in range(0, len(order), BATCH):
            pick = order[first:first + BATCH]
            yield {"poses": self.gather(self.data, pick), "seq": self.ids[pick, 0], "start": self.ids[pick, 1]}


def load_tensor(cfg, ids):
    "The clips as one torch tensor in RAM, a batch gathered with `index_select`."
    return InRAM(cfg["store"], cfg["clip"], lambda data, pick: data.index_select(0, pick), as_numpy=False)


def load_numpy(cfg, ids):
    "The clips as one numpy array in RAM, a batch gathered with `numpy.take`."
    return InRAM(cfg["store"], cfg["clip"], lambda data, pick: np.take(data, pick, axis=0), as_numpy=True)


def load_litdata_clip(cfg, ids):
    "LitData's `StreamingDataset` of clips (shuffled) and its `StreamingDataLoader`."
    import litdata
    dataset = litdata.StreamingDataset(cfg["prepared"], shuffle=True, seed=0)
    return litdata.StreamingDataLoader(dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


class SequenceClips(torch.utils.data.IterableDataset):
    "Clips cut from a stream of whole sequences, shuffled in a buffer of SHUFFLE_BUFFER clips, in batches of BATCH."
    def __init__(self, sequences, clip):
        super().__init__()
        self.sequences, self.clip, self.epoch = sequences, clip, 0

    def __iter__(self):
        rng, self.epoch = np.random.default_rng(self.epoch), self.epoch + 1
        held = []
        for seq in self.sequences:
            held.append(self.clips_of(seq))
            if sum(len(h["seq"]) for h in held) >= SHUFFLE_BUFFER: held = yield from self.emit(held, rng, keep_last=True)
        yield from self.emit(held, rng, keep_last=False)

    def clips_of(self, seq):
        "{key: array over the clips} of one sequence item."
        clips = cut_clips({k: np.asarray(seq[k]) for k in FRAME_KEYS}, self.clip)
        n = len(clips["poses"])
        return {**clips, "betas": np.repeat(np.asarray(seq["betas"])[None], n, 0), "gender": np.full(n, int(seq["gender"])),
                "seq": np.full(n, int(seq["seq"])), "start": int(seq["start"]) + self.clip * np.arange(n)}

    def emit(self, held, rng, keep_last):
        "Yield full batches of the shuffled held clips; return what is left (a part batch, unless it is the end)."
        if not held: return []
        pool = {k: np.concatenate([h[k] for h in held]) for k in held[0]}
        order = rng.permutation(len(pool["seq"]))
        stop = len(order) - len(order) % BATCH if keep_last else len(order)
        for first in range(0, stop, BATCH):
            yield {k: torch.from_numpy(v[order[first:first + BATCH]]) for k, v in pool.items()}
        return [{k: v[order[stop:]] for k, v in pool.items()}] if stop < len(order) else []


def load_litdata_seq(cfg, ids):
    "LitData's `StreamingDataset` of sequences (shuffled), cut into shuffled clips by `SequenceClips`."
    import litdata
    sequences = litdata.StreamingDataset(cfg["prepared"], shuffle=True, seed=0)
    return torch.utils.data.DataLoader(SequenceClips(sequences, cfg["clip"]), batch_size=None,
                                       num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


def load_mosaic(cfg, ids):
    "Mosaic's `StreamingDataset` of clips (shuffled, told the batch size) and a torch `DataLoader`."
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory
    clean_stale_shared_memory()
    dataset = StreamingDataset(local=cfg["prepared"], shuffle=True, shuffle_seed=0, batch_size=BATCH)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


def wds_sample(sample):
    "A decoded WebDataset sample as a dict of the workload's keys."
    return {k: sample[f"{k}.npy"] for k in (*FRAME_KEYS, "betas")} | {k: sample[f"{k}.cls"] for k in ("gender", "seq", "start")}


def load_wds(cfg, ids):
    "WebDataset's pipeline: shuffled shards, a shuffle buffer of 1,000 clips, decoding, batching; its `WebLoader`."
    import webdataset as wds
    shards = sorted(str(p) for p in Path(cfg["prepared"]).glob("shard-*.tar"))
    dataset = (wds.WebDataset(shards, shardshuffle=len(shards), seed=0, empty_check=False).shuffle(1000).decode()
               .map(wds_sample).batched(BATCH))
    return wds.WebLoader(dataset, batch_size=None, num_workers=cfg["workers"], persistent_workers=cfg["workers"] > 0)


def load_ffcv(cfg, ids):
    "ffcv's `Loader` in random order, its arrays decoded as they are."
    from ffcv.loader import Loader, OrderOption
    from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
    pipelines = {k: [NDArrayDecoder()] for k in (*FRAME_KEYS, "betas")} | {k: [IntDecoder()] for k in ("gender", "seq", "start")}
    loader = Loader(cfg["prepared"], batch_size=BATCH, num_workers=max(1, cfg["workers"]), order=OrderOption.RANDOM, seed=0,
                    pipelines=pipelines, drop_last=False)
    return FfcvEpochs(loader, FFCV_FIELDS)


class FfcvEpochs:
    "An ffcv Loader whose batches (tuples of `names`) come as dicts."
    def __init__(self, loader, names): self.loader, self.names = loader, names
    def __iter__(self): return (dict(zip(self.names, batch)) for batch in self.loader)


LOADERS = {"packed_batch": load_packed_batch, "packed": load_packed, "amass": load_amass, "tensor": load_tensor,
           "numpy": load_numpy, "litdata_clip": load_litdata_clip, "litdata_seq": load_litdata_seq, "mosaic": load_mosaic,
           "wds": load_wds, "ffcv": load_ffcv}


# ---------------------------------------------------------------- one cell, in its own process
def clip_id_counter(cfg):
    "A function giving the (seq, start) ids of a batch of this row."
    if cfg["kind"] not in ("packed_batch", "packed", "amass"): return peer_ids
    numbers = {p: n for n, p in enumerate(Path(f).relative_to(cfg["root"]).as_posix() for f in cfg["files"])}
    return lambda batch: llamass_ids(batch, numbers)


def expected_clips(cfg):
    "The set of (seq, start) of every clip at this clip length: llamass's own plan, which the peers' preparation follows."
    from llamass.packed import PackedAMASS
    packed = PackedAMASS(cfg["store"], cfg["clip"])
    seqs, starts = packed.clip_frames(np.arange(len(packed)), 0)
    return set(zip(seqs.tolist(), starts.tolist()))


def exactly_once(cfg):
    "Whether one epoch of a fresh loader yields every clip exactly once (else what went wrong)."
    ids_of, seen = clip_id_counter(cfg), []
    for batch in LOADERS[cfg["kind"]](cfg, ids=True): seen += ids_of(batch)
    expected = expected_clips(cfg)
    if len(seen) == len(expected) and set(seen) == expected: return "yes"
    return f"no ({len(seen)} clips, {len(set(seen))} distinct, {len(expected)} expected)"


def run_cell(cfg):
    "The measurements of one cell: preparation (seconds, bytes) or loading (frames, seconds, first batch s, exactly-once)."
    if cfg["step"] == "prepare":
        start = time.perf_counter()
        written = PREPARE[cfg["kind"]](cfg)                # the files it reads from, where it writes none
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "bytes": folder_bytes(cfg["target"] if written is None else written)}
    start = time.perf_counter()
    batches = epochs(LOADERS[cfg["kind"]](cfg, ids=False))
    first = frames_in(next(batches))
    first_s = time.perf_counter() - start
    counts = map(frames_in, batches)
    frames, seconds = timed(prepended(first, counts), cfg["seconds"], 0, lambda: None, cfg["batches"])
    result = {"frames": frames, "seconds": seconds, "first_s": first_s}
    if cfg["check"]:
        batches.close()                                    # its workers stop before the check's loader starts its own
        gc.collect()
        result["once"] = exactly_once(cfg)
    return result


def prepended(first, rest):
    "`first`, then the items of `rest`."
    yield first
    yield from rest


# ---------------------------------------------------------------- the parent: processes, memory, the plan, the table
def tree_pss_mb(pgid):
    "Summed proportional set size (MB) of the processes in process group `pgid` (a cell and its workers)."
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit(): continue
        try:
            if os.getpgid(int(entry.name)) != pgid: continue
            with open(f"/proc/{entry.name}/smaps_rollup") as rollup:
                total += next(int(l.split()[1]) for l in rollup if l.startswith("Pss:"))
        except (OSError, StopIteration, ValueError): continue
    return total / 1024


def error_line(stderr):
    "The last line of `stderr` naming an exception (warnings printed after it are not the reason), else its last line."
    lines = [l.strip() for l in stderr.strip().splitlines() if l.strip()]
    named = [l for l in lines if not l.startswith(("File ", "warnings.")) and ("Error" in l.split(":")[0] or "Exception" in l.split(":")[0])]
    return (named or lines or [""])[-1]


def run_isolated(cfg, timeout):
    "`run_cell(cfg)` in a fresh process group, its peak memory sampled; RuntimeError with its last line if it fails or hangs."
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps({**cfg, "report": str(report)})], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        peak, done = [0.0], threading.Event()
        def sample():
            while not done.wait(0.1): peak[0] = max(peak[0], tree_pss_mb(child.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try: _, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise RuntimeError(f"no result after {timeout:.0f} s (killed)") from None
        finally:
            done.set()
            sampler.join()
            try: os.killpg(child.pid, signal.SIGKILL)      # workers a peer left behind
            except ProcessLookupError: pass
        if child.returncode != 0: raise RuntimeError(error_line(err) or f"exit {child.returncode}")
        return {**json.loads(report.read_text()), "peak_mb": peak[0]}


def plan(rows, root, store, files, work, args):
    """Every cell of the run: each row's preparation (per clip length where it has one), then `args.rounds` interleaved
    rounds of every loading cell; the first round's clip-32 cells also check exactly-once."""
    common = {"root": str(root), "store": str(store), "files": files, "seconds": args.seconds, "batches": args.batches}
    target = lambda key, clip: str(work / (f"{key}_clip{clip}" if ROWS[key].per_clip else key))
    prepared = lambda key, clip: str(store) if key in ("packed", "packed_batch") else target(key, clip)
    cells = [{**common, "step": "prepare", "kind": key, "clip": clip, "target": target(key, clip)}
             for key in rows if key in PREPARE for clip in (CLIPS if ROWS[key].per_clip else CLIPS[:1])]
    for round_ in range(args.rounds):
        cells += [{**common, "step": "load", "kind": key, "clip": clip, "workers": workers, "prepared": prepared(key, clip),
                   "round": round_, "check": round_ == 0 and clip == CHECK_CLIP}
                  for key in rows for clip in CLIPS for workers in (WORKERS if ROWS[key].workers else WORKERS[:1])]
    return cells


def result_key(cfg):
    "Where a cell's result goes: (row, 'prepare', clip) or (row, 'load', clip, workers), all rounds together."
    return (cfg["kind"], cfg["step"], cfg["clip"]) + ((cfg["workers"],) if cfg["step"] == "load" else ())


def preparation_of(cfg):
    "The results key of the preparation a cell's data comes from."
    kind = SHARES_PREPARATION.get(cfg["kind"], cfg["kind"])
    return (kind, "prepare", cfg["clip"] if ROWS[kind].per_clip else CLIPS[0])


def cell_name(cfg):
    "A cell in words, for the progress lines."
    if cfg["step"] == "prepare": return f"{cfg['kind']}: prepare" + (f" clip {cfg['clip']}" if ROWS[cfg["kind"]].per_clip else "")
    return f"{cfg['kind']}: clip {cfg['clip']}, {cfg['workers']} w, round {cfg['round'] + 1}"


def measure_cell(cfg, results, timeout):
    "Run one cell (unless its preparation failed) and file its result; the error in words if it failed, else None."
    key = result_key(cfg)
    if results.get(key) == "failed": return "not measured, an earlier round failed"
    if cfg["step"] == "load" and results.get(preparation_of(cfg)) == "failed": error = "not measured, its preparation failed"
    else:
        try: got, error = run_isolated(cfg, timeout), None
        except Exception as failure: error = f"{type(failure).__name__}: {failure}"   # one broken cell leaves the others' numbers
    if error: results[key] = "failed"
    elif cfg["step"] == "prepare": results[key] = got
    else: results.setdefault(key, []).append(got)
    return error


def progress_line(cfg, results, error):
    "What a finished cell measured, in words."
    if error: return f"failed: {error}"
    got = results[result_key(cfg)]
    if cfg["step"] == "prepare": return f"{got['seconds']:.1f} s, {got['bytes'] / 1e6:,.1f} MB"
    last = got[-1]
    return f"{rate(last['frames'] / last['seconds'])} frames/s" + (f", exactly once: {last['once']}" if "once" in last else "")


def summary(runs):
    "A loading cell's rounds as one: median frames/s and first-batch seconds, peak memory, the exactly-once verdict."
    if not isinstance(runs, list): return runs           # None (not run) or "failed"
    return {"fps": float(np.median([r["frames"] / r["seconds"] for r in runs])), "first_s": float(np.median([r["first_s"] for r in runs])),
            "peak_mb": max(r["peak_mb"] for r in runs), "once": next((r["once"] for r in runs if "once" in r), "")}


def row_cells(key, results, missing):
    "The table row of `key`: frames/s x (clip, workers), first batch, peak memory, preparation, exactly-once."
    label = ROWS[key].label
    if key in missing: return [label, f"not installed here: {ROWS[key].install}"] + [""] * (len(HEADER) - 2)
    loads = {(c, w): summary(results.get((key, "load", c, w))) for c in CLIPS for w in WORKERS}
    done = [s for s in loads.values() if isinstance(s, dict)]
    fps = [rate(s["fps"]) if isinstance(s, dict) else (s or "") for s in loads.values()]
    checked = [loads[CHECK_CLIP, w] for w in WORKERS if isinstance(loads[CHECK_CLIP, w], dict)]
    preps = [p for p in (results.get((SHARES_PREPARATION.get(key, key), "prepare", c)) for c in CLIPS) if isinstance(p, dict)]
    return [label, *fps, " / ".join(f"{s['first_s']:.2f}" for s in checked), f"{max(s['peak_mb'] for s in done):,.0f}" if done else "",
            " / ".join(f"{p['seconds']:.1f}" for p in preps) or "—", " / ".join(f"{p['bytes'] / 1e6:,.1f}" for p in preps) or "—",
            " / ".join(s["once"] for s in checked)]


HEADER = ["frames/s", "clip 1, 0 w", "2 w", "clip 32, 0 w", "2 w", "first batch s (clip 32, 0 / 2 w)",
          "peak MB (process + workers, PSS)", "prepare s (clip 1 / 32)", "MB on disk (clip 1 / 32)", "exactly once (clip 32, 0 / 2 w)"]


def ratio(top, bottom):
    "top / bottom with two decimals, or two significant digits below 0.1 (0.0031×)."
    value = top / bottom
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def median_fps(results, key, clip, workers):
    "The median frames/s of a loading cell, or None where it failed or did not run."
    runs = results.get((key, "load", clip, workers))
    return summary(runs)["fps"] if isinstance(runs, list) else None


def ratios(results, rows):
    "Lines of each row's frames/s over llamass batch mode's and over numpy.take's, in the same cell (clip, workers)."
    lines = []
    for base in ("packed_batch", "numpy"):
        for key in rows:
            if key == base or (base == "packed_batch" and key in LIMITS): continue
            pairs = [(clip, w, median_fps(results, key, clip, w), median_fps(results, base, clip, 0 if base == "numpy" else w))
                     for clip in CLIPS for w in WORKERS]
            cells = [f"clip {clip}, {w} w: {ratio(top, bottom)}" for clip, w, top, bottom in pairs if top and bottom]
            if cells: lines.append(f"- {ROWS[key].short} / {ROWS[base].short}: " + "; ".join(cells))
    return lines


def report(results, rows, missing, describe, settings):
    "The run's markdown: the machine, the settings, the table, the ratios."
    return "\n".join([describe, settings, "", table(HEADER, [row_cells(k, results, missing) for k in rows]), "", *NOTES, "",
                      "Ratios (frames/s over frames/s of the same clip length and workers; numpy.take has 0 workers only):", "",
                      *ratios(results, rows), ""])


NOTES = ["- first batch: from making the dataset and loader to holding the first batch (in RAM: gathering every clip from the "
         "store first; ffcv: numba compiling its pipeline); workers persistent; peak MB: the largest sum of the proportional set "
         "sizes of a cell's processes (pages they share counted once), over its rounds.",
         "- prepare: from the npz files to what the loader reads (llamass: `amass_pack -n 2`; LitData: `optimize(num_workers=2)`; "
         "ffcv: `DatasetWriter(num_workers=2)`; Mosaic, WebDataset: one process; `AMASS` reads the npz files as they are, whose "
         "bytes are shown). Exactly once: one whole epoch, every (sequence, first frame) counted against the clips there are."]


def write_atomic(path, text):
    "Write `text` to `path` through a temporary name and a rename."
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


# ---------------------------------------------------------------- the command line
def parse(argv=None):
    "The command line, --quick's defaults filled in where a flag was not given."
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny replica (fraction 0.001), 2 timed batches per cell: "
                        "does it run? (the numbers mean nothing)")
    parser.add_argument("--fraction", type=float, help="fraction of AMASS's sequences in the replica (default 0.005; --quick 0.001)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per cell after the first batch (default 2)")
    parser.add_argument("--batches", type=int, help="time exactly this many batches after the first instead of --seconds (--quick: 2)")
    parser.add_argument("--rounds", type=int, default=1, help="measure every loading cell this many times, interleaved, and "
                        "report the medians (default 1)")
    parser.add_argument("--rows", help=f"only these rows, comma-separated (default all: {','.join(ROWS)})")
    parser.add_argument("--out", type=Path, help="also write the markdown to this file (rewritten after every cell)")
    parser.add_argument("--data", type=Path, default=OUT, help=f"folder of the cached replica and the prepared data (default {OUT})")
    parser.add_argument("--lens", default=str(LENS), help="real AMASS sequence lengths (json.gz; absent: drawn from the table)")
    args = parser.parse_args(argv)
    if args.fraction is None: args.fraction = 0.001 if args.quick else 0.005
    if args.batches is None and args.quick: args.batches = 2
    args.rows = args.rows.split(",") if args.rows else list(ROWS)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown: parser.error(f"--rows: unknown row {unknown[0]!r} (known: {', '.join(ROWS)})")
    if args.rounds < 1: parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.batches is not None and args.batches < 1: parser.error(f"--batches must be >= 1, got {args.batches}")
    if not 0 < args.fraction <= 1: parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    return args


def main(argv=None):
    "Prepare every row's data, measure every cell, print (and write) the table; exit 1 if a cell failed."
    args = parse(argv)
    from llamass.tqdm import progress_bar
    start = time.perf_counter()
    args.data.mkdir(parents=True, exist_ok=True)
    root, store, real = prepare(args.fraction, args.data, args.lens, 2)
    files = sequence_files(root, store)
    work = args.data / f"peers_{args.fraction}"
    shutil.rmtree(work, ignore_errors=True)           # every run prepares afresh: preparation is measured
    work.mkdir(parents=True)
    missing = [k for k in args.rows if not installed(ROWS[k].module)]
    for key in missing: print(f"{ROWS[key].short}: not installed: {ROWS[key].install}", file=sys.stderr)
    from llamass.packed import PackedAMASS
    frames = int(PackedAMASS(store, 1).counts.sum())
    window = f"1 first batch, then {args.batches} timed" if args.batches else f"1 first batch, then {args.seconds:g} s timed"
    settings = (f"Replica: {len(files)} sequences, {frames:,} kept frames (fraction {args.fraction}, lengths "
                f"{'of real AMASS' if real else 'drawn from the sub-dataset table'}); batch {BATCH} clips, shuffled; {window} per "
                f"cell, each cell in its own process, {args.rounds} interleaved round(s) (medians); {sys.executable} ({'torch ' + torch.__version__}).")
    describe = f"Machine: {machine()}."
    results, failed = {}, []
    cells = plan([k for k in args.rows if k not in missing], root, store, files, work, args)
    for n, cfg in enumerate(bar := progress_bar(iterable=cells, desc="cells", file=sys.stderr), 1):
        bar.set_postfix_str(cell_name(cfg))
        error = measure_cell(cfg, results, CELL_TIMEOUT + (cfg["seconds"] if cfg["batches"] is None else 0))
        if error: failed.append(f"{cell_name(cfg)}: {error}")
        bar.write(f"[{time.perf_counter() - start:4.0f} s] {n}/{len(cells)} {cell_name(cfg)}: {progress_line(cfg, results, error)}", file=sys.stderr)
        if args.out: write_atomic(args.out, report(results, args.rows, missing, describe, settings))
    return finish_run(report(results, args.rows, missing, describe, settings), args.out, len(cells), start, failed)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        cfg = json.loads(sys.argv[2])
        if str(ROOT) not in sys.path: sys.path.insert(1, str(ROOT))
        Path(cfg["report"]).write_text(json.dumps(run_cell(cfg)))
    else:
        if str(ROOT) not in sys.path: sys.path.insert(1, str(ROOT))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        sys.exit(main())
