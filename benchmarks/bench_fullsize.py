"""Full-size AMASS without a warm-up: epoch planning at 20M clips, and a big packed store from its first batch.

1. Planning (`AMASS(clip_length=1, shuffle=True)`'s plan, real AMASS sequence lengths, 15.8M single-frame clips):
   the old whole-shard `shard_plan` (reconstructed here as it was: all clips, then the lanes shuffle over all of
   them) against `shard_plan_chunks`, each in a fresh process: time to the first batch of 256 clips, peak plan
   memory (tracemalloc peak and peak RSS over the process's baseline), batches/s over the first 1,000 and 10,000
   batches and over the whole epoch.
2. `PackedAMASS(clip_length=1, shuffle=True, batch_size=256)` on a big store written the way `amass_pack` writes
   (space reserved, then one write per sequence; zeros, since only the access pattern matters), each run in a
   fresh process, with the store's arrays pre-mapped or not: open time, first-batch time, frames/s per 1,000
   batches over the first 10,000, and the first 1,000 batches' rate against the steady rate.

Usage: python benchmarks/bench_fullsize.py [--store-fraction 0.5] [--batches 10000] [--rounds 2] [--only plan|store]
"""
import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
LENS = HERE.parent.parent / "shared" / "amass_lens_real.json.gz"
BATCH = 256
STORE_KEYS = {"poses": 156, "dmpls": 8, "trans": 3}   # the default keys of `amass_pack`: 668 bytes a frame


def real_lengths(lens_file):
    "Frames of every AMASS sequence, from the published length file, or the synthetic table when it is absent."
    if Path(lens_file).is_file():
        with gzip.open(lens_file, "rt") as f: return np.array([row[2] for row in json.load(f)], dtype=np.int64)
    from llamass.synthetic import real_lengths as table
    return np.concatenate(list(table().values()))


def rss_bytes():
    "This process's resident memory now."
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    "This process's peak resident memory so far (Linux reports KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------- planning, in a child process
def old_shard_plan(counts, window_starts, step, order, rank, world_size, worker, num_workers, shuffle, seed, epoch, shuffle_buffer=10_000):
    "The shard plan as llamass computed it before `shard_plan_chunks`: every clip of the shard, then one lanes shuffle of all."
    from llamass.clips import clips_at, lanes_for_buffer, rng_for, shard_range
    total = int(np.sum(counts))
    lo, hi = shard_range(total, rank, world_size, worker, num_workers)
    seqs, starts = clips_at(counts, window_starts, step, order, np.arange(lo, hi) % total)
    if not shuffle: return seqs, starts
    rng, n_lanes, n = rng_for(seed, epoch, rank, world_size, worker, num_workers), lanes_for_buffer(shuffle_buffer, np.mean(counts[counts > 0])), len(seqs)
    group = np.cumsum(np.r_[True, seqs[1:] != seqs[:-1]]) - 1
    by_group = np.lexsort((rng.random(n), group))
    lane = (group % n_lanes)[by_group]
    lane_stream = by_group[np.argsort(lane, kind="stable")]
    slots = np.argsort(rng.permutation(lane[np.argsort(lane, kind="stable")]), kind="stable")
    shuffled = np.empty(n, dtype=np.int64)
    shuffled[slots] = lane_stream
    return seqs[shuffled], starts[shuffled]


def plan_batches(method, counts, window_starts, order):
    "Yield the (sequences, starts) of each batch of `BATCH` clips of the epoch's plan (one rank, no workers)."
    from llamass.clips import shard_plan_chunks
    if method == "old":
        seqs, starts = old_shard_plan(counts, window_starts, 1, order, 0, 1, 0, 1, True, 0, 0)
        for b in range(0, len(seqs), BATCH): yield seqs[b:b + BATCH], starts[b:b + BATCH]
        return
    held_seqs, held_starts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    for seqs, starts, _ in shard_plan_chunks(counts, window_starts, 1, order, 0, 1, 0, 1, True, 0, 0):
        held_seqs, held_starts = np.concatenate([held_seqs, seqs]), np.concatenate([held_starts, starts])
        cut = len(held_seqs) // BATCH * BATCH
        for b in range(0, cut, BATCH): yield held_seqs[b:b + BATCH], held_starts[b:b + BATCH]
        held_seqs, held_starts = held_seqs[cut:], held_starts[cut:]
    if len(held_seqs): yield held_seqs, held_starts


def plan_child(method, lens_file):
    "Time and memory of one epoch's plan by `method` ('old' or 'chunks'); a dict."
    from llamass.clips import clip_counts, kept_windows, sequence_order
    lengths = real_lengths(lens_file)
    counts, window_starts = clip_counts(lengths, 1, False, 0.8), kept_windows(lengths, 0.8)[0]
    order = sequence_order(len(counts), True, 0, 0)
    base_rss = rss_bytes()
    tracemalloc.start()
    start, marks, n = time.perf_counter(), {}, 0
    for n, _ in enumerate(plan_batches(method, counts, window_starts, order), 1):
        if n in (1, 1_000, 10_000): marks[n] = time.perf_counter() - start
    total = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dict(method=method, clips=int(counts.sum()), batches=n, first=marks[1], first_1000=marks[1_000], first_10000=marks[10_000],
                epoch=total, traced_mb=traced / 1e6, rss_mb=(peak_rss_bytes() - base_rss) / 1e6)


# ---------------------------------------------------------------- a big packed store
def write_store(folder, lengths, keys=STORE_KEYS):
    "A packed store of `lengths` (zeros), written as `amass_pack` writes: space reserved, then one write per sequence."
    from llamass.store import FORMAT, MANIFEST, TABLES, VERSION, create_array, write_at
    from llamass.synthetic import npz_bytes
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    zeros = np.zeros((int(lengths.max()), max(keys.values())), np.float32)
    for key, width in keys.items():
        fd, start = create_array(folder / f"{key}.npy", int(offsets[-1]), width)
        try:
            for i, n in enumerate(lengths.tolist()): write_at(fd, zeros[:n, :width], start + int(offsets[i]) * width * 4)
        finally: os.close(fd)
    n = len(lengths)
    tables = dict(offset=offsets[:-1], length=lengths.astype(np.int64), fps=np.full(n, 120.0), betas=np.zeros((n, 16)),
                  gender=np.where(np.arange(n) % 2, 1.0, -1.0).astype(np.float32), subdataset=np.full(n, "Replica"),
                  path=np.array([f"Replica/s{i:05d}_poses.npz" for i in range(n)]), size=np.zeros(n, np.int64), mtime_ns=np.zeros(n, np.int64))
    (folder / TABLES).write_bytes(npz_bytes(tables))
    manifest = dict(format=FORMAT, version=VERSION, keys=dict(keys), model="smplh", n_sequences=n, n_frames=int(offsets[-1]),
                    source="", fingerprint=f"bench-fullsize-{n}-{int(offsets[-1])}")
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder


def packed_child(store, premap, n_batches):
    "Open time, first-batch time and frames/s per 1,000 batches of `PackedAMASS` on `store`, pre-mapped or not."
    import llamass.packed
    import llamass.store
    mapper = llamass.store.map_arrays
    llamass.packed.map_arrays = lambda *args, **kwargs: mapper(*args, **{**kwargs, "premap": premap})
    start = time.perf_counter()
    dataset = llamass.packed.PackedAMASS(store, 1, shuffle=True, seed=0, batch_size=BATCH)
    opened = time.perf_counter() - start
    batches = forever(dataset)
    next(batches)
    first = time.perf_counter() - start
    rates, faults, mark, faulted = [], [], time.perf_counter(), minor_faults()
    for b in range(2, n_batches + 1):
        next(batches)
        if b % 1000 == 0:
            now, count = time.perf_counter(), minor_faults()
            rates.append(1000 * BATCH / (now - mark)); faults.append(count - faulted)
            mark, faulted = now, count
    return dict(premap=premap, open=opened, first=first, rates=rates, faults=faults, total=time.perf_counter() - start)


def forever(dataset):
    "Yield the batches of pass after pass over `dataset` (a small store holds fewer batches than are timed)."
    while True: yield from dataset


def minor_faults():
    "Page faults this process has taken that needed no disk read (a page in the page cache entered in its page table)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(args):
    "Run one measurement in this (fresh) process and print it as JSON."
    if args.child == "plan": result = plan_child(args.method, args.lens)
    else: result = packed_child(Path(args.store), args.method == "premap", args.batches)
    print(json.dumps(result))


def in_child(*words):
    "The JSON result of this script run with `words` in a fresh process."
    done = subprocess.run([sys.executable, __file__, *map(str, words)], capture_output=True, text=True)
    if done.returncode: raise SystemExit(f"child {' '.join(map(str, words))} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report
def plan_report(lens):
    "Measure and print the planning table."
    results = {m: in_child("--child", "plan", "--method", m, "--lens", lens) for m in ("old", "chunks")}
    old, new = results["old"], results["chunks"]
    print(f"\n## Planning an epoch: clip_length=1, shuffle, real AMASS lengths ({new['clips']:,} clips, {new['batches']:,} batches of {BATCH}; one process, no workers)\n")
    print("| plan | first batch | plan memory (traced peak) | peak RSS over baseline | first 1,000 batches | first 10,000 | whole epoch |")
    print("|---|---|---|---|---|---|---|")
    for r in (old, new):
        print(f"| {'whole shard (before)' if r['method'] == 'old' else 'shard_plan_chunks (after)'} | {r['first']:.3f} s | {r['traced_mb']:.0f} MB | "
              f"{r['rss_mb']:.0f} MB | {1000 / r['first_1000']:,.0f} batches/s | {10000 / r['first_10000']:,.0f} batches/s | "
              f"{r['batches'] / r['epoch']:,.0f} batches/s ({r['epoch']:.1f} s) |")
    print(f"\nafter/before: first batch {old['first'] / new['first']:,.0f}x sooner, plan memory {old['traced_mb'] / new['traced_mb']:.0f}x smaller, "
          f"first 10,000 batches {old['first_10000'] / new['first_10000']:.1f}x faster, whole epoch {old['epoch'] / new['epoch']:.1f}x faster")
    print(f"targets: first batch < 2 s: {'met' if new['first'] < 2 else 'NOT met'}; plan memory < 100 MB: {'met' if max(new['traced_mb'], new['rss_mb']) < 100 else 'NOT met'}")


def store_report(lens, fraction, folder, n_batches, rounds):
    "Write (once) and measure the big store; print its table."
    lengths = real_lengths(lens)
    lengths = np.random.default_rng(0).permutation(lengths)[:max(1, round(fraction * len(lengths)))]
    folder = Path(folder) / f"store_{fraction:g}"
    if not (folder / "manifest.json").is_file():
        start = time.perf_counter()
        write_store(folder, lengths)
        print(f"\nwrote {folder}: {len(lengths):,} sequences, {int(lengths.sum()):,} frames, "
              f"{int(lengths.sum()) * 4 * sum(STORE_KEYS.values()) / 1e9:.1f} GB in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    runs = [in_child("--child", "packed", "--method", m, "--store", folder, "--batches", n_batches) for _ in range(rounds) for m in ("plain", "premap")]
    steady = float(np.median([r for run in runs for r in run["rates"][len(run["rates"]) // 2:]]))
    print(f"\n## PackedAMASS(clip_length=1, shuffle=True, batch_size={BATCH}) on a store of {int(lengths.sum()):,} frames "
          f"({int(lengths.sum()) * 4 * sum(STORE_KEYS.values()) / 1e9:.1f} GB, {', '.join(STORE_KEYS)}; written as amass_pack writes, in the page cache), one process\n")
    print(f"steady rate (median of the last half of all runs' 1,000-batch windows): {steady / 1e3:,.0f}k frames/s\n")
    print(f"| arrays | open | first batch | first 1,000 batches | vs steady | with the open and pre-map counted | page faults in the first 1,000 / next {n_batches - 1000:,} | open to batch {n_batches:,} | frames/s per 1,000 batches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        first_k = run["rates"][0]
        counted = 1000 * BATCH / (run["first"] + 999 * BATCH / first_k)
        print(f"| {'pre-mapped' if run['premap'] else 'mapped lazily'} | {run['open']:.2f} s | {run['first']:.2f} s | {first_k / 1e3:,.0f}k | "
              f"{first_k / steady:.0%} | {counted / steady:.0%} | {run['faults'][0]:,} / {sum(run['faults'][1:]):,} | {run['total']:.2f} s | {' '.join(f'{r / 1e3:.0f}k' for r in run['rates'])} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lens", default=str(LENS), help="gzipped JSON of [sub-dataset, name, frames] rows (default: the shared real lengths)")
    parser.add_argument("--store-fraction", type=float, default=0.5, help="fraction of AMASS's sequences in the store (1: 13.2 GB)")
    parser.add_argument("--out", default=str(OUT), help="folder for the store (kept between runs)")
    parser.add_argument("--batches", type=int, default=10_000, help="batches timed on the store")
    parser.add_argument("--rounds", type=int, default=2, help="runs on the store with and without pre-mapping, alternated")
    parser.add_argument("--only", choices=["plan", "store"], help="measure only the planning or only the store")
    parser.add_argument("--child", choices=["plan", "packed"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child: return child(args)
    print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB; numpy {np.__version__}")
    if args.only != "store": plan_report(args.lens)
    if args.only != "plan": store_report(args.lens, args.store_fraction, args.out, args.batches, args.rounds)


if __name__ == "__main__":
    main()
