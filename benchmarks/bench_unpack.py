"""Unpacking throughput: tar -xjf, tar -I lbzip2 and fast_amass_unpack on archives shaped like AMASS's.

Builds one .tar.bz2 per sub-dataset of a synthetic replica of AMASS (sub-dataset sizes in the real proportions),
then times, in one run, over the same archives: `tar -xjf` one archive after another, `tar -I lbzip2 -xf` (when
lbzip2 is installed), and `fast_amass_unpack -n 2` with and without `--verify`. Prints MB/s of compressed input,
ratios and peak RSS.

Usage: python benchmarks/bench_unpack.py [--fraction 0.005] [--keep DIR] [--repeats 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import machine, run_command, table

from llamass.synthetic import replica_lengths, write_replica
from llamass.unpack import md5_dir

LENS = Path(__file__).resolve().parent.parent.parent / "shared" / "amass_lens_real.json.gz"


def build_archives(work, fraction):
    "Write the replica and one .tar.bz2 per sub-dataset; return (archive folder, checksum table)."
    tree, tars = work / "tree", work / "tars"
    tars.mkdir()
    write_replica(tree, replica_lengths(fraction, LENS), n_markers=40, decimals=15)  # full precision: compresses like real mocap
    compressor = ["-I", "lbzip2"] if shutil.which("lbzip2") else ["-j"]
    checksums = {}
    for folder in sorted(p for p in tree.iterdir() if p.is_dir()):
        subprocess.run(["tar", *compressor, "-cf", str(tars / f"{folder.name}.tar.bz2"), "-C", str(tree), folder.name], check=True)
        checksums[f"{folder.name}.tar.bz2"] = {"unpacks_to": folder.name, "hash": md5_dir(folder)}
    shutil.rmtree(tree)
    (work / "checksums.json").write_text(json.dumps(checksums))
    return tars, work / "checksums.json"


def time_tar(tars, out, options):
    "(seconds, peak MB) of tar extracting every archive in turn."
    seconds, peak = 0.0, 0.0
    for archive in sorted(tars.iterdir(), key=lambda p: -p.stat().st_size):
        s, m = run_command(["tar", *options, str(archive), "-C", str(out)])
        seconds, peak = seconds + s, max(peak, m)
    return seconds, peak


def main(fraction, keep=None, repeats=2):
    work = Path(keep or tempfile.mkdtemp(prefix="bench_unpack_"))
    work.mkdir(parents=True, exist_ok=True)
    tars, checksums = build_archives(work, fraction)
    size_mb = sum(p.stat().st_size for p in tars.iterdir()) / 1e6
    unpack = ["fast_amass_unpack"]
    runs = {
        "tar -xjf, one archive after another": lambda out: time_tar(tars, out, ["-xjf"]),
        "tar -I lbzip2 -xf, one after another": (lambda out: time_tar(tars, out, ["-I", "lbzip2", "-xf"])) if shutil.which("lbzip2") else None,
        "fast_amass_unpack -n 2": lambda out: run_command(unpack + ["-q", "-n", "2", str(tars), str(out)]),
        "fast_amass_unpack -n 2 --verify": lambda out: run_command(unpack + ["-q", "-n", "2", "--verify", "--checksums", str(checksums), str(tars), str(out)]),
    }
    results = {}
    for name, run in runs.items():
        if run is None: continue
        timings = []
        for _ in range(repeats):  # best of `repeats`, each from a clean output folder with writes flushed
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True); out.mkdir()
            subprocess.run(["cat", *map(str, tars.iterdir())], stdout=subprocess.DEVNULL, check=True)  # archives cached
            os.sync()
            timings.append(run(out))
        results[name] = min(timings)
    base = results["tar -xjf, one archive after another"][0]
    lbzip = results.get("tar -I lbzip2 -xf, one after another", (None,))[0]
    rows = [[name, f"{s:.2f}", f"{size_mb / s:.1f}", f"{base / s:.2f}×", f"{lbzip / s:.2f}×" if lbzip else "—", f"{m:.0f}"]
            for name, (s, m) in results.items()]
    print(f"\n{len(list(tars.iterdir()))} archives, {size_mb:.0f} MB compressed (replica fraction {fraction}); {machine()}\n")
    print(table(["command", "seconds", "MB/s (compressed)", "vs tar -xjf", "vs lbzip2", "peak RSS MB"], rows))
    verify, plain = results["fast_amass_unpack -n 2 --verify"][0], results["fast_amass_unpack -n 2"][0]
    print(f"\n--verify adds {100 * (verify / plain - 1):.0f} % to the wall time")
    if keep is None: shutil.rmtree(work)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.005, help="fraction of AMASS's sequences in the replica")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each command; the best is reported")
    args = parser.parse_args()
    main(args.fraction, args.keep, args.repeats)
