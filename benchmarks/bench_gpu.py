"""Does the GPU wait for llamass? Loader throughput next to the GPU-resident ceiling, and a training step fed by each loader.

Builds (once, cached in --data) the synthetic AMASS replica of `bench_loaders.py` with the project's generator, one
sub-dataset per process, and packs it with `amass_pack`; then measures, each configuration in its own process, with
batches of 256 clips, shuffled, over as many epochs as the time takes (warm-up excluded, the GPU synchronized
before and after the timed window):

  loaders x DataLoader workers (0, 4, 8, all cores but one) at clip 1 and clip 32, frames/s:
    - the original llamass 0.0.4 (with --original; workers 0 and 8);
    - `AMASS` (npz files), `IterableLoader(batch_size=256)`;
    - `PackedAMASS(batch_size=256)` on the CPU, `IterableLoader(batch_size=None)`;
    - `PackedAMASS(device="cuda", batch_size=256)`, float32 and `storage_dtype=torch.float16` (main process only);
    - numpy gather from the memory map (the CPU limit, as in bench_loaders.py);
    - the clips as one tensor on the GPU, one index per batch (the ceiling);
  a training step (per-frame MLP 156->1024->1024->156, bf16 autocast on CUDA, AdamW; 256 clips x 32 frames), frames/s and
  the ratio to (a):
    (a) the data already on the GPU (one batch, reused); (a2) a fresh batch each step, one `index_select` from every
    clip held on the GPU (what (b) does, at its simplest); (b) fed by PackedAMASS(device="cuda"); (c) fed by PackedAMASS on the CPU with
    8 workers, pin_memory=True and non_blocking copies; (d) fed by AMASS with 8 workers, the same transport;
    (e) fed by the original with 8 workers (with --original).
Every ratio printed is between numbers of this run. Without CUDA the device rows run with device="cpu" and say so.

Usage, from the repository root (llamass need not be installed; torch, numpy, joblib, tqdm, filelock must be):
  python3 benchmarks/bench_gpu.py --quick                        # tiny replica, 2 batches per cell: does it run? (CPU is fine)
  python3 benchmarks/bench_gpu.py --out benchmarks/out/gpu.md    # the full table: about 30 cells of ~6 s each
  python3 benchmarks/bench_gpu.py --original benchmarks/out/original --lens benchmarks/out/amass_lens_real.json.gz
For a machine that cannot reach PyPI, prepare both where it can, then take benchmarks/out/original and the lengths along:
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); import bench_loaders; bench_loaders.fetch_original()"
  cp ../shared/amass_lens_real.json.gz benchmarks/out/           # real sequence lengths (else drawn from a table)
"""
import argparse
import gc
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path: sys.path.insert(0, str(HERE))
from bench_loaders import BATCH, LENS, OUT, all_clips, frames_in, run_child as run_loader_child  # noqa: E402
from measure import finish_run, machine, table  # noqa: E402

TRAIN_CLIP = 32               # frames per clip of the training rows
POSE_WIDTH = 156              # the MLP's input and output: a frame's SMPL+H pose
HIDDEN = 1024
CHILD_TIMEOUT = 60            # seconds a configuration may take beyond its warm-up and timed window
ORIGINAL_WORKERS = (0, 8)     # the original is slow: only the two columns


# ---------------------------------------------------------------- the data: the replica, made in parallel, and its store
def write_replica_parallel(root, lengths, n_jobs):
    "`write_replica(root, lengths)` with one sub-dataset per job: the same files, seeds and names as written in one process."
    from joblib import Parallel, delayed
    from llamass.synthetic import write_replica
    only = lambda name: {n: (v if n == name else v[:0]) for n, v in lengths.items()}   # keeps each one's place in the sorted table
    largest_first = sorted(lengths, key=lambda n: -int(lengths[n].sum()))
    Parallel(n_jobs=n_jobs)(delayed(write_replica)(root, only(name), n_markers=40, decimals=15) for name in largest_first)


def prepare(fraction, data, lens, n_jobs):
    "(replica folder, packed store, True if from real lengths): built once per fraction under `data`, like bench_loaders'."
    from llamass.store import amass_pack
    from llamass.synthetic import replica_lengths
    real = lens is not None and Path(lens).is_file()
    name = f"{fraction}" if real else f"{fraction}_table"         # without the length file: lengths drawn from the table
    root, store = data / f"replica_{name}", data / f"store_{name}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_replica_parallel(root, replica_lengths(fraction, lens if real else None), n_jobs)
        (root / ".complete").write_text("")
    amass_pack(root, store, n_jobs=n_jobs, progress=False)          # nothing to do when the store is already there
    return root, store, real


# ---------------------------------------------------------------- timing
def synchronizer(device):
    "A function that waits for the work queued on `device` (nothing to wait for on the CPU)."
    import torch
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def timed(frame_counts, seconds, warmup, sync, batches=None):
    """(frames, seconds) of `frame_counts` (an iterator of frames per batch or step) after `warmup` seconds, the device
    synchronized; with `batches`, bounded by work instead: one warm-up batch, then exactly `batches` timed ones."""
    start = time.perf_counter()
    next(frame_counts)                                              # at least one: workers started, caches filled
    while batches is None and time.perf_counter() - start < warmup: next(frame_counts)
    sync()
    frames, start = 0, time.perf_counter()
    if batches is not None: frames = sum(itertools.islice(frame_counts, batches))
    else:
        while frames == 0 or time.perf_counter() - start < seconds: frames += next(frame_counts)
    sync()                                                          # the queued GPU work is part of the window
    return frames, time.perf_counter() - start


def epochs(loader):
    "The batches of `loader`, epoch after epoch."
    while True: yield from loader


# ---------------------------------------------------------------- the loaders, each an endless iterator of batches
def torch_device(name):
    "The torch device `name`, or the CPU where it is 'cuda' and there is no CUDA."
    import torch
    return torch.device(name if name != "cuda" or torch.cuda.is_available() else "cpu")


def llamass_loader(dataset, workers, batch_size=None, transport=None):
    "An `IterableLoader` over `dataset` with persistent workers; `transport` (a device) adds pinning and non_blocking copies."
    from llamass.engine import IterableLoader
    pin = transport is not None and transport.type == "cuda"
    return IterableLoader(dataset, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=pin, device=transport if pin else None)


def amass_batches(cfg, transport=None):
    "Batches of `AMASS` (npz files) at the configuration's clip length and workers."
    from llamass.dataset import AMASS
    dataset = AMASS(cfg["root"], cfg["clip"], shuffle=True, seed=0, progress=False)
    return epochs(llamass_loader(dataset, cfg["workers"], BATCH, transport))


def amass_cut_batches(cfg, transport=None):
    "Batches of `AMASS(batch_size=256)`: whole batches cut in the workers (one fancy index per sequence and key)."
    from llamass.dataset import AMASS
    dataset = AMASS(cfg["root"], cfg["clip"], shuffle=True, seed=0, progress=False, batch_size=BATCH)
    return epochs(llamass_loader(dataset, cfg["workers"], None, transport))


def packed_batches(cfg, transport=None):
    "Batches of `PackedAMASS(batch_size=256)` gathered on the CPU (in workers, when there are)."
    from llamass.packed import PackedAMASS
    dataset = PackedAMASS(cfg["store"], cfg["clip"], shuffle=True, seed=0, batch_size=BATCH)
    return epochs(llamass_loader(dataset, cfg["workers"], None, transport))


def device_batches(cfg, storage_dtype=None, pinned=False):
    "Batches of `PackedAMASS(device=..., batch_size=256)`: the store's keys on the device, gathered there (pinned: on the host, copied ahead)."
    from llamass.packed import PackedAMASS
    dataset = PackedAMASS(cfg["store"], cfg["clip"], shuffle=True, seed=0, batch_size=BATCH,
                          device=torch_device(cfg["device"]), storage_dtype=storage_dtype, pinned=pinned)
    return epochs(llamass_loader(dataset, 0))


def pinned_batches(cfg):
    "As `device_batches`, gathered into pinned host memory by a background thread and copied ahead (`pinned=True`)."
    return device_batches(cfg, pinned=True)


def device_fp16_batches(cfg):
    "As `device_batches`, the keys held in float16."
    import torch
    return device_batches(cfg, torch.float16)


def ceiling_batches(cfg):
    "Every clip as one (clips, clip, 184) tensor on the device; a batch is one index of a new permutation per epoch."
    import torch
    device = torch_device(cfg["device"])
    clips = all_clips(Path(cfg["store"]), cfg["clip"]).to(device)
    while True:
        order = torch.randperm(len(clips), device=device)
        for first in range(0, len(clips), BATCH): yield clips.index_select(0, order[first:first + BATCH])   # (faster than clips[idx])


def original_batches(cfg, transport=None):
    "Batches of the original llamass 0.0.4 (`--original`), with its own worker_init_fn."
    import torch
    import torch.utils.data as tudata
    import llamass.core as original          # 0.0.4's wheel says __version__ = "0.0.3": tell it from ours by where it is
    if Path(original.__file__).resolve().parent == (ROOT / "llamass").resolve() or not hasattr(original, "npz_contents"):
        raise ValueError(f"--original: `import llamass` found {original.__file__}, not llamass 0.0.4")
    dataset = original.AMASS(cfg["root"], clip_length=cfg["clip"], overlapping=False, shuffle=True, seed=1,
                             transform=torch.tensor)   # its transform=None crashes
    workers, pin = cfg["workers"], transport is not None and transport.type == "cuda"
    return epochs(tudata.DataLoader(dataset, batch_size=BATCH, num_workers=workers, pin_memory=pin,
                                    worker_init_fn=original.worker_init_fn if workers else None))


LOADERS = {"original": original_batches, "amass": amass_batches, "amass_batches": amass_cut_batches, "packed": packed_batches, "device": device_batches,
           "device_fp16": device_fp16_batches, "pinned": pinned_batches, "ceiling": ceiling_batches}
ON_DEVICE = {"device", "device_fp16", "pinned", "ceiling"}   # loaders whose batches are on the device: synchronized around the window


# ---------------------------------------------------------------- the training step
def training_step(device, hidden=HIDDEN):
    """A function doing one AdamW step of the per-frame MLP on a batch's poses (bf16 autocast on CUDA; float32 on the CPU,
    where bf16 speed differs by orders of magnitude between processors); it returns the frames seen."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(POSE_WIDTH, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, POSE_WIDTH)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    def step(batch):
        poses = batch["poses"].to(device, non_blocking=True).reshape(-1, POSE_WIDTH)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.mse_loss(model(poses).float(), poses)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return poses.shape[0]
    return step


def resident_batches(cfg, transport):
    "One batch of 256 clips, made once and held on the device: the step with no loader at all."
    from llamass.packed import PackedAMASS
    batch = next(iter(PackedAMASS(cfg["store"], cfg["clip"], shuffle=True, seed=0, batch_size=BATCH)))
    return itertools.repeat({k: v.to(transport) for k, v in batch.items()})


def fresh_batches(cfg, transport):
    "A new batch each step, gathered on the device from every clip held there (`ceiling_batches`): the step's baseline with a gather in it."
    poses = slice(0, POSE_WIDTH)                    # the clips' columns are poses (156), dmpls, trans, betas, gender
    return ({"poses": clips[..., poses]} for clips in ceiling_batches({**cfg, "device": str(transport)}))


FEEDERS = {"resident": resident_batches, "fresh": fresh_batches, "device": lambda cfg, transport: device_batches(cfg),
           "pinned": lambda cfg, transport: pinned_batches(cfg),
           "packed": packed_batches, "amass": amass_batches, "original": original_batches}


# ---------------------------------------------------------------- one configuration
def measure(cfg):
    "(frames, seconds) of one configuration (a dict: kind, clip, workers, train, device, root, store, seconds, warmup)."
    if cfg["kind"] == "limit":          # bench_loaders' numpy gather, timed from its second batch
        return run_loader_child("limit", Path(cfg["root"]), Path(cfg["store"]), cfg["clip"], 0, cfg["seconds"])
    device = torch_device(cfg["device"])
    if cfg["train"]:
        step = training_step(device, cfg.get("hidden", HIDDEN))
        counts = map(step, FEEDERS[cfg["kind"]](cfg, device))
    else: counts = map(frames_in, LOADERS[cfg["kind"]](cfg))
    on_device = cfg["train"] or cfg["kind"] in ON_DEVICE    # a CPU loader's process never starts CUDA
    return timed(counts, cfg["seconds"], cfg["warmup"], synchronizer(device if on_device else torch_device("cpu")), cfg.get("batches"))


def measure_in_process(cfg):
    "`measure(cfg)` here, its memory (workers, device tensors) released afterwards."
    try: return measure(cfg)
    finally:
        gc.collect()
        import torch
        if torch.cuda.is_available(): torch.cuda.empty_cache()


def measure_isolated(cfg, original=None):
    "`measure(cfg)` in a fresh process (its own workers, device memory, page-table and heap); killed if it hangs."
    python, env = sys.executable, dict(os.environ)
    if cfg["kind"] == "original": python, env = original_python(original, env)
    else: env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        child = subprocess.Popen([python, __file__, "--child", json.dumps({**cfg, "report": str(report)})], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try: _, err = child.communicate(timeout=CHILD_TIMEOUT + cfg["warmup"] + cfg["seconds"])
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)                     # the child and its DataLoader workers
            child.communicate()
            raise RuntimeError(f"no result after {CHILD_TIMEOUT + cfg['warmup'] + cfg['seconds']:.0f} s") from None
        if child.returncode != 0: raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"exit {child.returncode}")
        return json.loads(report.read_text())


def original_python(original, env):
    "(interpreter, environment) in which `import llamass` gives 0.0.4: a venv's python, or ours with `original` first on the path."
    path = Path(original)
    venv_python = path / "bin" / "python"
    if path.is_file(): return str(path), {k: v for k, v in env.items() if k != "PYTHONPATH"}
    if venv_python.is_file(): return str(venv_python), {k: v for k, v in env.items() if k != "PYTHONPATH"}
    return sys.executable, {**env, "PYTHONPATH": str(path)}


def child_main(cfg):
    "Entry of a configuration's process: measure it, write (frames, seconds) to its report file."
    if cfg["kind"] != "original" and str(ROOT) not in sys.path: sys.path.insert(1, str(ROOT))
    Path(cfg["report"]).write_text(json.dumps(list(measure(cfg))))


# ---------------------------------------------------------------- the plan of a run, and its tables
def worker_counts(spec):
    "The worker counts of `spec` ('0,4,8,all'; all: every usable core but the main process's one), sorted, once each."
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts = [max(1, cores - 1) if w.strip() == "all" else int(w) for w in spec.split(",")]
    if any(w < 0 for w in counts): raise ValueError(f"--workers: counts must be >= 0, got {spec!r}")
    return sorted(set(counts))


def loader_rows(device, have_original):
    "[(row key, label)] of the loader table; device rows name the device they ran on."
    note = "" if device == "cuda" else " (no CUDA here)"
    where = "GPU" if device == "cuda" else "CPU (no CUDA here)"
    return ([("original", "original llamass 0.0.4")] if have_original else []) + [
        ("amass", "`AMASS` (npz)"), ("amass_batches", "`AMASS(batch_size=256)` (npz, batches cut in the workers)"),
        ("packed", "`PackedAMASS` (CPU), IterableLoader"),
        ("device", f'`PackedAMASS(device="{device}", batch_size=256)`{note}'),
        ("device_fp16", f'`PackedAMASS(device="{device}", batch_size=256, storage_dtype=torch.float16)`{note}'),
        ("pinned", f'`PackedAMASS(device="{device}", batch_size=256, pinned=True)`{note}'),
        ("limit", "numpy gather from the memory map (limit)"),
        ("ceiling", f"the clips as one tensor on the {where}, index per batch (ceiling)")]


def training_rows(device, train_workers, have_original):
    "[(row key, label)] of the training table, (a) first."
    pinned = "pin_memory=True, non_blocking copies" if device == "cuda" else "no CUDA here: no pinning, no copies"
    where = "on the GPU" if device == "cuda" else "in memory (no CUDA here)"
    return [("resident", f"(a) data already {where}"),
            ("fresh", f"(a2) a fresh batch each step, one index per batch from the clips {where}"),
            ("device", f'(b) fed by `PackedAMASS(device="{device}")`' + ("" if device == "cuda" else " (no CUDA here)")),
            ("pinned", f'(b2) fed by `PackedAMASS(device="{device}", pinned=True)`' + ("" if device == "cuda" else " (no CUDA here)")),
            ("packed", f"(c) fed by `PackedAMASS` on the CPU, {train_workers} workers, {pinned}"),
            ("amass", f"(d) fed by `AMASS`, {train_workers} workers, {pinned}")] + (
           [("original", f"(e) fed by the original llamass 0.0.4, {train_workers} workers")] if have_original else [])


def plan(args, root, store, device):
    "Every configuration of the run: the loader table's cells, then the training rows."
    common = {"root": str(root), "store": str(store), "device": device, "seconds": args.seconds, "warmup": args.warmup,
              "batches": args.batches, "hidden": args.hidden}
    configs = []
    for clip in (1, 32):
        for key, _ in loader_rows(device, args.original is not None):
            workers = ([w for w in args.workers if w in ORIGINAL_WORKERS] if key == "original" else
                       args.workers if key in ("amass", "amass_batches", "packed") else [0])
            configs += [{**common, "kind": key, "clip": clip, "workers": w, "train": False} for w in workers]
    for key, _ in training_rows(device, args.train_workers, args.original is not None):
        workers = args.train_workers if key in ("packed", "amass", "original") else 0
        configs.append({**common, "kind": key, "clip": TRAIN_CLIP, "workers": workers, "train": True})
    wanted = set(args.rows.split(",")) if getattr(args, "rows", None) else None
    return [c for c in configs if wanted is None or c["kind"] in wanted]


def rate(fps):
    "frames/s with three significant digits, as the issue writes them: 892, 45.5k, 2.12M."
    if fps is None: return ""
    if isinstance(fps, str): return fps
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if fps >= scale or scale == 1:
            value = fps / scale
            return f"{value:.{max(0, 2 - int(math.floor(math.log10(max(value, 1)))))}f}{unit}"


def loader_table(results, rows, workers):
    "The markdown table of loaders x (clip, workers), frames/s."
    header = ["frames/s"] + [f"clip {clip}, {w} w" if i == 0 else f"{w} w" for clip in (1, 32) for i, w in enumerate(workers)]
    return table(header, [[label] + [rate(results.get((key, False, clip, w))) for clip in (1, 32) for w in workers]
                          for key, label in rows])


def training_table(results, rows):
    "The markdown table of the training step's rows: frames/s and the ratio to (a)."
    base = results.get(("resident", True, TRAIN_CLIP, 0))
    cells = []
    for key, label in rows:
        fps = next((v for k, v in results.items() if k[:3] == (key, True, TRAIN_CLIP)), None)
        ratio = f"{fps / base:.2f}" if isinstance(fps, float) and isinstance(base, float) else ""
        cells.append([label, rate(fps), ratio])
    return table([f"training step, batches of {BATCH} clips x {TRAIN_CLIP} frames", "frames/s", "ratio to (a)"], cells)


def ratios(results, workers):
    "Lines of the ratios the issue's targets are about, all between numbers of this run."
    get = lambda key, clip, w: results.get((key, False, clip, w))
    lines = []
    def add(text, top, bottom, target=""):
        if isinstance(top, float) and isinstance(bottom, float): lines.append(f"- {text}: {top / bottom:.2f}{target}")
    train = lambda key: next((v for k, v in results.items() if k[:3] == (key, True, TRAIN_CLIP)), None)
    add("training step fed by `PackedAMASS(device=)` (b) / fed a fresh gathered batch each step (a2)", train("device"), train("fresh"))
    add("training step fed a fresh gathered batch each step (a2) / on one batch reused (a)", train("fresh"), train("resident"))
    for clip in (1, 32):
        add(f"`PackedAMASS` on the device / the ceiling, clip {clip}", get("device", clip, 0), get("ceiling", clip, 0))
        add(f"`PackedAMASS` float16 on the device / the ceiling, clip {clip}", get("device_fp16", clip, 0), get("ceiling", clip, 0))
        for key, name, target in (("packed", "`PackedAMASS` (CPU)", " (target >= 1)"), ("amass", "`AMASS` (npz)", " (target >= 6)"),
                                  ("amass_batches", "`AMASS(batch_size=256)` (npz)", " (target >= 6)")):
            for w in workers[1:]:
                add(f"{name}, clip {clip}: {w} workers / 0 workers", get(key, clip, w), get(key, clip, 0), target if w == 8 else "")
    return lines


def report(results, args, device, describe):
    "The run's markdown: the machine, the settings, both tables and the ratios."
    have_original = args.original is not None
    window = (f"1 warm-up batch, then {args.batches} timed" if args.batches else
              f"{args.warmup:g} s warm-up, then {args.seconds:g} s timed")
    return "\n".join([describe, f"Replica: {args.replica}; batch {BATCH} clips, shuffled; MLP width {args.hidden}; {window} "
                      f"per cell (the device synchronized around it); each cell "
                      f"{'in this process' if args.in_process else 'in its own process'}; ratios from this run only.", "",
                      loader_table(results, loader_rows(device, have_original), args.workers), "",
                      training_table(results, training_rows(device, args.train_workers, have_original)), "",
                      *ratios(results, args.workers), ""])


def describe_machine(device):
    "One line: the GPU (or its absence), the cores and RAM, torch's version."
    import torch
    gpu = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
           if device == "cuda" else "no CUDA device: device rows ran on the CPU")
    return f"Machine: {gpu}; {machine()}; torch {torch.__version__}."


# ---------------------------------------------------------------- the command line
def parse(argv=None):
    "The command line, with --quick's defaults filled in where a flag was not given."
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny replica (fraction 0.001), 0 and 2 workers, 2 timed batches "
                        "per cell, a narrow MLP, all in this process: a check that the script runs, bounded by work, not "
                        "time (CPU-only is fine; the numbers mean nothing)")
    parser.add_argument("--out", type=Path, help="also write the markdown tables to this file (rewritten after every cell)")
    parser.add_argument("--fraction", type=float, help="fraction of AMASS's sequences in the replica (default 0.02; --quick 0.001)")
    parser.add_argument("--seconds", type=float, help="timed seconds per cell (default 2; --quick 0.2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell, not timed (default 1; --quick 0.1)")
    parser.add_argument("--workers", help="DataLoader worker counts, 'all' = cores - 1 (default 0,4,8,all; --quick 0,2)")
    parser.add_argument("--batches", type=int, help="time exactly this many batches per cell after one warm-up batch, "
                        "instead of --seconds (default: off; --quick 2)")
    parser.add_argument("--hidden", type=int, help=f"width of the training rows' MLP (default {HIDDEN}; --quick 64)")
    parser.add_argument("--train-workers", type=int, help="workers of training rows (c), (d), (e) (default 8; --quick 2)")
    parser.add_argument("--in-process", action="store_true", help="measure every cell in this process (default with --quick)")
    parser.add_argument("--original", help="llamass 0.0.4: a folder where `import llamass` finds it (e.g. an unpacked wheel, "
                        "benchmarks/out/original, or a site-packages), a venv, or its python")
    parser.add_argument("--data", type=Path, default=OUT, help=f"folder of the cached replica and store (default {OUT})")
    parser.add_argument("--lens", default=str(LENS), help="real AMASS sequence lengths (json.gz; absent: drawn from the table)")
    parser.add_argument("--rows", help="measure only these row keys, comma-separated (amass, packed, device, device_fp16, pinned, "
                        "limit, ceiling, original, resident; default: all); the tables leave the others empty")
    parser.add_argument("--jobs", type=int, help="processes writing the replica and threads packing it (default: the cores)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"fraction": 0.001 if quick else 0.02, "seconds": 0.2 if quick else 2.0, "warmup": 0.1 if quick else 1.0,
                "workers": "0,2" if quick else "0,4,8,all", "train_workers": 2 if quick else 8, "jobs": os.cpu_count(),
                "batches": 2 if quick else None, "hidden": 64 if quick else HIDDEN}
    for name, value in defaults.items():
        if getattr(args, name) is None: setattr(args, name, value)
    args.in_process = args.in_process or quick
    args.workers = worker_counts(args.workers)
    if args.original is not None and not Path(args.original).exists(): parser.error(f"--original: {args.original} does not exist")
    return args


def main(argv=None):
    "Build the data, measure every configuration, print (and write) the tables; exit 1 if a cell failed."
    args = parse(argv)
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    root, store, real = prepare(args.fraction, args.data, args.lens, args.jobs)
    from llamass.packed import PackedAMASS
    from llamass.tqdm import progress_bar
    frames = int(PackedAMASS(store, 1).counts.sum())
    args.replica = (f"{len(PackedAMASS(store, 1).counts)} sequences, {frames:,} kept frames (fraction {args.fraction}, lengths "
                    f"{'of real AMASS' if real else 'drawn from the sub-dataset table'}), made and packed in {time.perf_counter() - start:.1f} s")
    describe = describe_machine(device)
    print(describe, file=sys.stderr)
    results, failed = {}, []
    configs = plan(args, root, store, device)
    for n, cfg in enumerate(bar := progress_bar(iterable=configs, desc="cells", file=sys.stderr), 1):
        key = (cfg["kind"], cfg["train"], cfg["clip"], cfg["workers"])
        name = f"{'training, ' if cfg['train'] else ''}{cfg['kind']}, clip {cfg['clip']}, {cfg['workers']} w"
        bar.set_postfix_str(name)
        try:
            frames_done, seconds = (measure_isolated(cfg, args.original) if cfg["kind"] == "original" or not args.in_process
                                    else measure_in_process(cfg))
            results[key] = frames_done / seconds
        except Exception as error:                                  # one broken cell leaves the others' numbers
            results[key] = "failed"
            failed.append(f"{name}: {type(error).__name__}: {error}")
        bar.write(f"[{time.perf_counter() - start:4.0f} s] cell {n}/{len(configs)} {name}: "
                  f"{rate(results[key])}{' frames/s' if results[key] != 'failed' else ': ' + failed[-1]}", file=sys.stderr)
        if args.out: args.out.write_text(report(results, args, device, describe))
    return finish_run(report(results, args, device, describe), args.out, len(configs), start, failed)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child": child_main(json.loads(sys.argv[2]))
    else:
        if str(ROOT) not in sys.path: sys.path.insert(1, str(ROOT))   # run from a checkout where llamass is not installed:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)  # joblib's too
        sys.exit(main())
