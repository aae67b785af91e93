"""A real DistributedDataParallel-style run: torchrun, 2 processes, gloo on CPU, 2 DataLoader workers each."""
import json
import os
import subprocess
import sys
from pathlib import Path

from llamass.synthetic import identified_sequence, write_tree

HERE = Path(__file__).resolve().parent


def test_torchrun_two_ranks(tmp_path):
    lengths = [17, 9, 30, 4, 22, 13, 8]
    write_tree(tmp_path / "data", {f"DS/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(lengths)})
    (tmp_path / "out").mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(torchrun + [str(HERE / "ddp_run.py"), str(tmp_path / "data"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["seed"] == ranks[1]["seed"]  # seed broadcast from rank 0
    expected = {(i, f) for i, n in enumerate(lengths) for f in range(n)}
    for epoch in range(2):
        counts = [len(r["epochs"][epoch]) for r in ranks]
        assert counts[0] == counts[1] == ranks[0]["len"]                       # equal batches: DDP never waits
        seen = [tuple(c) for r in ranks for batch in r["epochs"][epoch] for c in batch]
        assert len(seen) == len(set(seen)) and set(seen) <= expected
        assert len(expected) - len(seen) <= 2 * 2 - 1
    assert ranks[0]["epochs"][0] != ranks[0]["epochs"][1]                       # a new order each epoch
