"""benchmarks/bench_gpu.py --quick runs (on the CPU where there is no CUDA) and prints every row of the issue's tables."""
import re
import subprocess
import sys
from pathlib import Path

from common import RATE, markdown_rows

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py"


def test_quick_run_prints_every_row(tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--data", str(tmp_path / "data"), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)   # a hang guard, far above need: --quick is bounded by batches, not seconds
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_text() in done.stdout
    cuda = torch.cuda.is_available()
    device, note, where = ("cuda", "", "GPU") if cuda else ("cpu", " (no CUDA here)", "CPU (no CUDA here)")
    table = markdown_rows(out.read_text())
    loader_header, *loader_rows = table[:9]
    train_header, *train_rows = table[9:]
    assert loader_header == ["frames/s", "clip 1, 0 w", "2 w", "clip 32, 0 w", "2 w"]
    assert [r[0] for r in loader_rows] == [
        "`AMASS` (npz)", "`AMASS(batch_size=256)` (npz, batches cut in the workers)", "`PackedAMASS` (CPU), IterableLoader", f'`PackedAMASS(device="{device}", batch_size=256)`{note}',
        f'`PackedAMASS(device="{device}", batch_size=256, storage_dtype=torch.float16)`{note}',
        f'`PackedAMASS(device="{device}", batch_size=256, pinned=True)`{note}', "numpy gather from the memory map (limit)", f"the clips as one tensor on the {where}, index per batch (ceiling)"]
    for row in loader_rows:   # workers for the two loaders that have them; the others run in the main process only
        filled = [bool(RATE.match(c)) for c in row[1:]]
        assert filled == ([True] * 4 if row[0].startswith(("`AMASS`", "`AMASS(batch_size", "`PackedAMASS` (CPU)")) else [True, False, True, False]), row
        assert all(c == "" for c, f in zip(row[1:], filled) if not f), row
    assert train_header == ["training step, batches of 256 clips x 32 frames", "frames/s", "ratio to (a)"]
    pinned = "pin_memory=True, non_blocking copies" if cuda else "no CUDA here: no pinning, no copies"
    assert [r[0] for r in train_rows] == [
        f"(a) data already {'on the GPU' if cuda else 'in memory (no CUDA here)'}",
        f"(a2) a fresh batch each step, one index per batch from the clips {'on the GPU' if cuda else 'in memory (no CUDA here)'}", f'(b) fed by `PackedAMASS(device="{device}")`{note}',
        f'(b2) fed by `PackedAMASS(device="{device}", pinned=True)`{note}',
        f"(c) fed by `PackedAMASS` on the CPU, 2 workers, {pinned}", f"(d) fed by `AMASS`, 2 workers, {pinned}"]
    assert all(RATE.match(r[1]) and re.match(r"^\d+\.\d\d$", r[2]) for r in train_rows) and train_rows[0][2] == "1.00"
    assert len([l for l in out.read_text().splitlines() if l.startswith("- ")]) == 12  # ratios: 2 training + 2 clips x (2 device + 3 loaders)
