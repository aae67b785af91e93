"""Run under torchrun: two epochs of IterableLoader(num_workers=2) on identified data; each rank writes what it saw.

Usage: torchrun --standalone --nproc_per_node=2 tests/ddp_run.py DATA_ROOT OUT_DIR
"""
import json
import sys
from pathlib import Path

import torch.distributed as dist

from llamass.core import AMASS, IterableLoader
from llamass.dataset import clip_ids

if __name__ == "__main__":
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    dist.init_process_group("gloo")
    dataset = AMASS(root, clip_length=1, keep=1.0, data_keys=("trans",), shuffle=True, progress=False)  # rank, world size and seed from the group
    loader = IterableLoader(dataset, batch_size=5, num_workers=2)
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        epochs.append([clip_ids(batch) for batch in loader])
    report = {"rank": dist.get_rank(), "world_size": dataset.world_size, "seed": dataset.seed, "len": len(loader), "epochs": epochs}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()
