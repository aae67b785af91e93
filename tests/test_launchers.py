"""The same exact data under every launcher: torchrun, a real Lightning Trainer (DDP on CPU), accelerate.

Data are `identified_sequence`s (trans[:, 0] = sequence id, trans[:, 1] = frame), so every clip names itself.
Each launch is a real multi-process run with a timeout, so a hang fails the test instead of stalling CI.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamass.clips import kept_windows
from common import write_identified

HERE = Path(__file__).resolve().parent
LENGTHS = [17, 9, 30, 4, 22, 13, 8]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_identified(tmp_path_factory.mktemp("launch_data"), LENGTHS)


def run(command, timeout=240):
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def reports(out, prefix="", ranks=2):
    return [json.loads((out / f"{prefix}rank{r}.json").read_text()) for r in range(ranks)]


def clips_of(epoch_batches):
    return [tuple(c) for batch in epoch_batches for c in batch]


def every_clip(clip_length=1):
    return {(i, f) for i, n in enumerate(LENGTHS) for f in range(0, n - clip_length + 1, clip_length)}


def test_rank0_only_never_blocks(data, tmp_path):
    run(TORCHRUN + [str(HERE / "launch_torchrun.py"), "rank0_only", str(data), str(tmp_path)], timeout=180)
    zero = reports(tmp_path)[0]
    assert zero["world_size"] == 2                                   # it reads the group, and shards ...
    starts, stops = kept_windows(LENGTHS, 0.8)
    assert len(clips_of(zero["clips"])) == int((stops - starts).sum()) // 2   # ... without any collective call
    assert zero["stats_count"] == int((stops - starts).sum()) and zero["packed_len"] == int((stops - starts).sum()) // 2


def test_built_before_init_process_group(data, tmp_path):
    run(TORCHRUN + [str(HERE / "launch_torchrun.py"), "before_init", str(data), str(tmp_path)])
    ranks = reports(tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]
    for epoch in range(2):
        seen = [clips_of(r["epochs"][epoch]) for r in ranks]
        assert len(seen[0]) == len(seen[1]) == len(every_clip()) // 2
        assert not set(seen[0]) & set(seen[1])                        # disjoint shards
        assert len(every_clip()) - len(set(seen[0]) | set(seen[1])) <= 1
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]


def test_accelerate_prepare_keeps_every_clip(data, tmp_path):
    pytest.importorskip("accelerate")
    run(TORCHRUN + [str(HERE / "launch_torchrun.py"), "accelerate", str(data), str(tmp_path)])
    ranks = reports(tmp_path)
    assert all(r["same_loader"] for r in ranks) and ranks[0]["device"] == "cpu"
    for epoch in range(2):
        seen = [clips_of(r["epochs"][epoch]) for r in ranks]
        assert len(seen[0]) == len(seen[1])
        union = set(seen[0]) | set(seen[1])
        assert len(union) == len(seen[0]) + len(seen[1]) and len(every_clip()) - len(union) <= 1


@pytest.fixture(scope="module")
def lightning_runs(data, tmp_path_factory):
    "An uninterrupted 3-epoch run that checkpoints at the end of epoch 0 and in epoch 1, then a resume from each."
    pytest.importorskip("lightning")
    out = tmp_path_factory.mktemp("lightning")
    script = [sys.executable, str(HERE / "launch_lightning.py"), str(data), str(out)]
    run(script + ["full", "3", "--checkpoints"], timeout=300)
    run(script + ["from_end", "3", str(out / "end.ckpt")], timeout=300)
    run(script + ["from_mid", "3", str(out / "mid.ckpt")], timeout=300)
    return out


def test_lightning_every_clip_once_per_epoch(lightning_runs):
    ranks = reports(lightning_runs, "full_")
    assert [r["train_rank"] for r in ranks] == [0, 1] and [r["world_size"] for r in ranks] == [2, 2]  # built in __init__
    pairs = every_clip(2)
    for epoch in ("0", "1", "2"):
        seen = [clips_of(r["epochs"][epoch]) for r in ranks]
        assert len(seen[0]) == len(seen[1]) and not set(seen[0]) & set(seen[1])
        assert len(pairs) - len(set(seen[0]) | set(seen[1])) <= 1
    assert ranks[0]["epochs"]["0"] != ranks[0]["epochs"]["1"]
    val = [set(clips_of(r["val"])) for r in ranks]                # built in setup: 3 validation runs, same shards
    assert not val[0] & val[1] and len(pairs) - len(val[0] | val[1]) <= 1


def test_lightning_resume_from_end_of_epoch(lightning_runs):
    full, resumed = reports(lightning_runs, "full_"), reports(lightning_runs, "from_end_")
    for r in range(2):
        assert sorted(resumed[r]["epochs"]) == ["1", "2"]
        assert resumed[r]["epochs"] == {e: full[r]["epochs"][e] for e in ("1", "2")}


def test_lightning_resume_from_mid_epoch(lightning_runs):
    full, resumed = reports(lightning_runs, "full_"), reports(lightning_runs, "from_mid_")
    for r in range(2):
        rest = resumed[r]["epochs"]["1"]
        assert 0 < len(rest) < len(full[r]["epochs"]["1"])
        assert full[r]["epochs"]["1"][-len(rest):] == rest and resumed[r]["epochs"]["2"] == full[r]["epochs"]["2"]
