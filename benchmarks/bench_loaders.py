"""Loader throughput on a synthetic replica of AMASS: npz path, packed store, in-RAM baselines, the original.

Builds (once, cached in benchmarks/out/) a replica of AMASS with the real sub-dataset sizes and sequence lengths
at `--fraction` of its sequences, packs it, then measures in one run, each configuration in its own process:
frames/s (batch 256, shuffled) and peak RSS of
  - original llamass 0.0.4 (from PyPI, when it can be fetched), workers 0 and 2;
  - our `AMASS` npz path, workers 0 and 2;
  - `PackedAMASS` with batch_size=256, workers 0 and 2; and with the derived key `joints` (forward kinematics);
  - an in-RAM `TensorDataset` + `DataLoader(shuffle=True)`; an in-RAM one-index-per-batch loader;
  - the limit: numpy gathers of the same batches from the same memory maps;
for clip_length 1 and 32, and the index / pack throughput against `cat` of the files. Prints a table with
ratios to the limit.

Each configuration runs epoch after epoch for `--seconds` (after its first batch); with `--rounds N` every
configuration runs N times, interleaved, and the table gives medians. Also prints each loader's 2-worker / 0-worker ratio.

Usage: python benchmarks/bench_loaders.py [--fraction 0.02] [--seconds 4] [--rounds 1]
"""
import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
LENS = HERE.parent.parent / "shared" / "amass_lens_real.json.gz"
BATCH = 256
KEYS = ("poses", "dmpls", "trans", "betas", "gender")


# ---------------------------------------------------------------- each configuration, in a child process
def timed_batches(loader, seconds, frames_of):
    "(frames, seconds) of `loader`'s batches, epoch after epoch, timed from its first batch on for `seconds`."
    it = iter(loader)
    next(it)
    frames, start = 0, time.perf_counter()
    while True:
        for batch in it:
            frames += frames_of(batch)
            if time.perf_counter() - start > seconds: return frames, time.perf_counter() - start
        it = iter(loader)                     # the next epoch (a small replica's epoch lasts milliseconds)


def frames_in(batch):
    frames = (batch["poses"] if "poses" in batch else batch["trans"]) if isinstance(batch, dict) else batch
    return int(frames.shape[0] * (frames.shape[1] if frames.ndim == 3 else 1))


def all_clips(store, clip):
    "Every clip of the store (unshuffled) as one in-RAM float32 tensor (clips, clip, 184)."
    import torch
    from llamass.packed import PackedAMASS
    packed = PackedAMASS(store, clip)
    whole = packed.gather([packed.clip_frames(np.arange(len(packed)), 0)]).batches()[0]
    return torch.cat([whole[k].reshape(len(packed), clip, -1) for k in KEYS], dim=-1)


def run_child(kind, root, store, clip, workers, seconds):
    "Measure one configuration; return (frames, seconds)."
    import torch
    import torch.utils.data as tudata
    if kind == "original":
        sys.path.insert(0, str(OUT / "original"))
        import llamass.core as original
        dataset = original.AMASS(str(root), clip_length=clip, overlapping=False, shuffle=True, seed=1, transform=torch.tensor)  # its transform=None crashes
        loader = tudata.DataLoader(dataset, batch_size=BATCH, num_workers=workers, worker_init_fn=original.worker_init_fn if workers else None)
        return timed_batches(loader, seconds, frames_in)
    if kind == "amass":
        from llamass.core import AMASS, IterableLoader
        loader = IterableLoader(AMASS(root, clip, shuffle=True, seed=0, progress=False), batch_size=BATCH, num_workers=workers)
        return timed_batches(loader, seconds, frames_in)
    if kind == "packed":
        from llamass.core import IterableLoader, PackedAMASS
        loader = IterableLoader(PackedAMASS(store, clip, shuffle=True, seed=0, batch_size=BATCH), batch_size=None, num_workers=workers)
        return timed_batches(loader, seconds, frames_in)
    if kind == "packed_joints":
        from llamass.core import IterableLoader, PackedAMASS
        loader = IterableLoader(PackedAMASS(store, clip, shuffle=True, seed=0, data_keys=("trans", "joints")), batch_size=BATCH, num_workers=workers)
        return timed_batches(loader, seconds, frames_in)
    if kind == "tensor":
        data = all_clips(store, clip)
        loader = tudata.DataLoader(tudata.TensorDataset(data), batch_size=BATCH, shuffle=True, num_workers=workers)
        return timed_batches(loader, seconds, lambda b: frames_in(b[0]))
    if kind == "tensor_batch":
        data = all_clips(store, clip)
        sampler = tudata.BatchSampler(tudata.RandomSampler(range(len(data))), BATCH, drop_last=False)
        loader = tudata.DataLoader(_Indexed(data), sampler=sampler, batch_size=None, num_workers=workers)
        return timed_batches(loader, seconds, frames_in)
    if kind == "limit":
        from llamass.packed import PackedAMASS
        packed = PackedAMASS(store, clip)
        arrays, tables = packed.arrays(), packed.tables
        seqs, starts = packed.clip_frames(np.arange(len(packed)), 0)
        clip_rows = packed.packed_rows(seqs, starts)
        order = np.random.default_rng(0).permutation(len(packed))
        def batches():
            for b in range(0, len(order), BATCH):
                pick = order[b:b + BATCH]
                rows = clip_rows[pick].reshape(-1)
                out = {k: np.take(arrays[k], rows, axis=0) for k in ("poses", "dmpls", "trans")}
                out["betas"] = np.take(tables["betas"], np.repeat(seqs[pick], clip), axis=0)
                out["gender"] = np.take(tables["gender"], np.repeat(seqs[pick], clip), axis=0)
                yield out["poses"].reshape(len(pick), clip, -1)
        return timed_batches(_forever(batches), seconds, frames_in)
    raise ValueError(kind)


class _Indexed:
    "A map-style dataset whose items are whole batches: one tensor index per batch."
    def __init__(self, data): self.data = data
    def __getitem__(self, index): return self.data[index]
    def __len__(self): return len(self.data)


def _forever(make):
    while True: yield from make()


# ---------------------------------------------------------------- the parent: data, runs, table
def prepare(fraction):
    "The replica folder and its packed store, built once per fraction."
    from llamass.store import amass_pack
    from llamass.synthetic import replica_lengths, write_replica
    root, store = OUT / f"replica_{fraction}", OUT / f"store_{fraction}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        write_replica(root, replica_lengths(fraction, LENS), n_markers=40, decimals=15)
        (root / ".complete").write_text("")
    return root, store


def fetch_original():
    "Unpack llamass 0.0.4 from PyPI into benchmarks/out/original; False if it cannot be fetched."
    target = OUT / "original"
    if (target / "llamass" / "core.py").exists(): return True
    wheels = OUT / "wheels"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), "llamass==0.0.4"], capture_output=True)
    if got.returncode != 0: return False
    import zipfile
    with zipfile.ZipFile(next(wheels.glob("llamass-0.0.4-*.whl"))) as wheel: wheel.extractall(target)
    return True


def measure(kind, root, store, clip, workers, seconds):
    "(frames/s, peak RSS MB, anonymous PSS MB at the end) of one configuration, run in its own process."
    from measure import run_command
    report = OUT / "child.json"
    cmd = [sys.executable, __file__, "--child", json.dumps([kind, str(root), str(store), clip, workers, seconds, str(report)])]
    _, peak = run_command(cmd)
    frames, elapsed, anon = json.loads(report.read_text())
    return frames / elapsed, peak, anon


def anonymous_pss_mb():
    "This process's proportional share of anonymous memory (its own, not the page cache it maps), in MB."
    fields = dict(line.split(":", 1) for line in open("/proc/self/smaps_rollup") if ":" in line)
    return int(fields["Pss_Anon"].split()[0]) / 1024


def file_throughput(root, store):
    "Rows for reading the files with cat, indexing them and packing them (MB/s of npz files)."
    from measure import run_command
    from llamass.index import index_sequences
    from llamass.store import amass_pack
    files = sorted(root.rglob("*.npz"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
    cat_s, _ = run_command(["sh", "-c", f"cat {' '.join(map(str, files))} > /dev/null"])
    start = time.perf_counter(); index_sequences(root, progress=False); index_s = time.perf_counter() - start
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter(); amass_pack(root, store, n_jobs=2, progress=False); pack_s = time.perf_counter() - start
    return mb, len(files), [["cat > /dev/null", f"{cat_s:.2f}", f"{mb / cat_s:,.0f}", "1.00×"],
                            ["index (npy headers)", f"{index_s:.2f}", f"{mb / index_s:,.0f}", f"{cat_s / index_s:.1f}×"],
                            ["amass_pack -n 2", f"{pack_s:.2f}", f"{mb / pack_s:,.0f}", f"{cat_s / pack_s:.2f}×"]]


def main(fraction, seconds, rounds=1):
    from measure import machine, table
    OUT.mkdir(exist_ok=True)
    root, store = prepare(fraction)
    mb, n_files, file_rows = file_throughput(root, store)
    from llamass.packed import PackedAMASS
    kept = int(PackedAMASS(store, 1).counts.sum())
    have_original = fetch_original()
    configs = [("original llamass 0.0.4", "original")] * have_original + [
        ("llamass AMASS (npz)", "amass"), ("llamass PackedAMASS, batch_size=256", "packed"),
        ("llamass PackedAMASS, derived key joints (forward kinematics)", "packed_joints"),
        ("in-RAM TensorDataset + DataLoader(shuffle)", "tensor"), ("in-RAM, one tensor index per batch", "tensor_batch"),
        ("numpy gather from the memory map (limit)", "limit")]
    runs = {}
    for round_ in range(rounds):                  # rounds interleaved: a busy minute of a shared machine spreads over all rows
        for clip in (1, 32):
            for name, kind in configs:
                for workers in ((0,) if kind == "limit" else (0, 2)):
                    runs.setdefault((name, clip, workers), []).append(measure(kind, root, store, clip, workers, seconds))
                    print(f"  round {round_ + 1}, {name}, clip {clip}, {workers} workers: {runs[name, clip, workers][-1][0]:,.0f} frames/s", file=sys.stderr)
    results = {key: (float(np.median([r[0] for r in measured])), max(r[1] for r in measured), float(np.median([r[2] for r in measured])))
               for key, measured in runs.items()}      # median frames/s, largest peak, median anonymous memory
    rows = []
    for name, kind in configs:
        row = [name]
        for clip in (1, 32):
            limit = results["numpy gather from the memory map (limit)", clip, 0][0]
            for workers in (0, 2):
                if (name, clip, workers) not in results: row.append("—"); continue
                fps, peak, anon = results[name, clip, workers]
                row.append(f"{fps:,.0f} ({fps / limit:.2f}; {peak:.0f} / {anon:.0f} MB)")
        rows.append(row)
    print(f"\nReplica: {n_files} sequences, {kept:,} kept frames, {mb:,.0f} MB of npz (fraction {fraction}); {machine()}")
    print(f"frames/s, batch 256, shuffled, medians of {rounds} round(s) of {seconds:g} s (ratio to the limit; "
          f"peak RSS / anonymous PSS of the main process, in MB)\n")
    print(table(["loader", "clip 1, 0 workers", "clip 1, 2 workers", "clip 32, 0 workers", "clip 32, 2 workers"], rows))
    print("\nWorkers: frames/s with 2 workers / with 0, same run")
    print(table(["loader", "clip 1", "clip 32"], [[name] + [f"{results[name, clip, 2][0] / results[name, clip, 0][0]:.2f}×" for clip in (1, 32)]
                                                 for name, kind in configs if kind != "limit"]))
    print()
    print(table(["files", "seconds", "MB/s", "vs cat"], file_rows))
    if have_original:
        best = lambda name: max(v[0] for k, v in results.items() if k[0] == name)
        print(f"\nPackedAMASS's best / the original's best configuration: {best('llamass PackedAMASS, batch_size=256') / best('original llamass 0.0.4'):,.0f}×")
        for clip in (1, 32):
            for workers in (0, 2):
                print(f"AMASS npz / original, clip {clip}, {workers} workers: "
                      f"{results['llamass AMASS (npz)', clip, workers][0] / results['original llamass 0.0.4', clip, workers][0]:.1f}×")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, root, store, clip, workers, seconds, report = json.loads(sys.argv[2])
        Path(report).write_text(json.dumps([*run_child(kind, Path(root), Path(store), clip, workers, seconds), anonymous_pss_mb()]))
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--fraction", type=float, default=0.02, help="fraction of AMASS's sequences in the replica (default 0.02)")
        parser.add_argument("--seconds", type=float, default=4.0, help="time each configuration runs for (default 4)")
        parser.add_argument("--rounds", type=int, default=1, help="measure every configuration this many times, interleaved; medians (default 1)")
        args = parser.parse_args()
        main(args.fraction, args.seconds, args.rounds)
