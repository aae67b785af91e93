"""Run under torchrun (2 ranks, gloo) in one of several launcher situations; each rank writes what it saw as JSON.

Usage: torchrun --standalone --nproc_per_node=2 tests/launch_torchrun.py MODE DATA_ROOT OUT_DIR
MODE:
  rank0_only     a dataset (default arguments) and compute_stats of a packed store, built and iterated on rank 0 only
  before_init    a shuffled dataset built before init_process_group, iterated after it (2 workers)
  accelerate     accelerate's Accelerator and prepare() with an IterableLoader given device=accelerator.device
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from llamass.core import AMASS, IterableLoader, PackedAMASS, amass_pack, compute_stats
from llamass.dataset import clip_ids


def rank0_only(root, out):
    dist.init_process_group("gloo")
    report = {"rank": dist.get_rank()}
    if dist.get_rank() == 0:
        dataset = AMASS(root, 1, progress=False)                      # defaults: nothing collective may happen
        report["clips"] = [clip_ids(b) for b in IterableLoader(dataset, batch_size=4)]
        report["world_size"] = dataset.world_size
        store = amass_pack(root, out / "store", progress=False) and out / "store"
        report["stats_count"] = int(compute_stats(store, progress=False)["trans"]["count"])
        report["packed_len"] = len(PackedAMASS(store, 1))
    dist.barrier()
    return report


def before_init(root, out):
    dataset = AMASS(root, 1, keep=1.0, data_keys=("trans",), shuffle=True, progress=False)   # no process group yet
    dist.init_process_group("gloo")
    loader = IterableLoader(dataset, batch_size=5, num_workers=2)
    epochs = [[clip_ids(b) for b in loader] for _ in range(2)]
    return {"rank": dist.get_rank(), "world_size": dataset.world_size, "len": len(loader), "epochs": epochs}


def accelerate(root, out):
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)
    dataset = AMASS(root, 1, keep=1.0, data_keys=("trans",), shuffle=True, progress=False)
    loader = IterableLoader(dataset, batch_size=5, device=accelerator.device)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model, optimizer, prepared = accelerator.prepare(model, optimizer, loader)
    epochs = []
    for epoch in range(2):
        seen = []
        for batch in prepared:
            loss = model(batch["trans"].float()).mean()
            accelerator.backward(loss)
            optimizer.step(); optimizer.zero_grad()
            seen.append(clip_ids(batch))
        epochs.append(seen)
    return {"rank": accelerator.process_index, "same_loader": prepared is loader, "len": len(loader), "epochs": epochs,
            "device": str(next(iter(loader))["trans"].device)}


if __name__ == "__main__":
    mode, root, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    report = {"rank0_only": rank0_only, "before_init": before_init, "accelerate": accelerate}[mode](root, out)
    (out / f"rank{report['rank']}.json").write_text(json.dumps(report))
    if dist.is_initialized(): dist.barrier(); dist.destroy_process_group()
