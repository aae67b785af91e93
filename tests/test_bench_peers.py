"""benchmarks/bench_peers.py --quick runs one llamass row and one in-RAM row (no peer installed needed) and fills every cell;
a peer that is not installed is named with its install line."""
import re
import subprocess
import sys
from pathlib import Path

from common import RATE, markdown_rows

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_peers.py"
OURS = ["packed", "numpy"]   # one loader with workers and one limit: every kind of cell, in a few seconds


def test_quick_run_fills_every_cell(tmp_path):
    out = tmp_path / "peers.md"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rows", ",".join(OURS), "--data", str(tmp_path / "data"),
                           "--out", str(out)], capture_output=True, text=True, timeout=900)   # a hang guard: --quick is bounded by batches
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_text() in done.stdout
    header, *table = markdown_rows(out.read_text())
    assert header[:5] == ["frames/s", "clip 1, 0 w", "2 w", "clip 32, 0 w", "2 w"] and len(header) == 10
    assert [r[0] for r in table] == ["llamass `IterableLoader(PackedAMASS(store, clip), batch_size=256)`",
                                     "in RAM: `numpy.take` (limit)"]
    loader, limit = table
    assert all(RATE.match(c) for c in loader[1:5]), loader         # a loader with workers: every rate, exactly once
    assert re.match(r"^\d+\.\d\d / \d+\.\d\d$", loader[5]) and re.match(r"^[\d,]+$", loader[6]) and loader[9] == "yes / yes", loader
    assert [bool(RATE.match(c)) for c in limit[1:5]] == [True, False, True, False] and limit[2] == limit[4] == "", limit
    assert limit[8] == "0.0 / 0.0" and limit[9] == "yes", limit   # the limit: 0 workers only, in RAM
    ratio_lines = [l for l in out.read_text().splitlines() if l.startswith("- ") and " / " in l.split(":")[0]]
    assert len(ratio_lines) == 1 and ratio_lines[0].count("×") == 4, ratio_lines


def script_module():
    "The benchmark script as a module."
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_peers
    finally: sys.path.remove(str(SCRIPT.parent))
    return bench_peers


def test_missing_peer_is_named_with_its_install_line():
    bench_peers = script_module()
    assert not bench_peers.installed("no_such_module_here") and bench_peers.installed(None)
    row = bench_peers.row_cells("ffcv", {}, ["ffcv"])
    assert row[0].startswith("ffcv, one clip per item") and row[1].startswith("not installed here: ") and "pip install ffcv" in row[1]
    assert len(row) == len(bench_peers.HEADER)


def test_peers_cut_the_clips_llamass_cuts():
    "Non-overlapping clips from the window's first frame; a window shorter than a clip gives none (not an error)."
    import numpy as np
    cut = script_module().cut_clips
    frames = {"poses": np.arange(70 * 156, dtype=np.float32).reshape(70, 156), "trans": np.zeros((70, 3), np.float32)}
    clips = cut(frames, 32)
    assert clips["poses"].shape == (2, 32, 156) and clips["trans"].shape == (2, 32, 3)
    assert (clips["poses"][1, 0] == frames["poses"][32]).all()
    assert cut({k: v[:20] for k, v in frames.items()}, 32)["poses"].shape == (0, 32, 156)
