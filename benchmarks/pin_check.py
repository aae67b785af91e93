"""On a CUDA machine: do llamass batches arrive pinned, and on the device, under every loader set-up?

python3 benchmarks/pin_check.py     prints one line per set-up: the keys' types, devices and is_pinned()
"""
import tempfile
from pathlib import Path

import torch

from llamass.core import IterableLoader, PackedAMASS, amass_pack
from llamass.synthetic import identified_sequence, write_tree


def describe(name, batches):
    "One line: how the first three batches of a loader arrived."
    seen = [b for _, b in zip(range(3), batches)]
    kinds = {type(b).__name__ for b in seen}
    pinned = all(t.is_pinned() for b in seen for t in b.values() if t.device.type == "cpu")
    devices = sorted({str(t.device) for b in seen for t in b.values()})
    print(f"{name:70s} batch {kinds}, devices {devices}, CPU tensors pinned: {pinned}")


if __name__ == "__main__":
    root = Path(tempfile.mkdtemp())
    write_tree(root / "tree", {f"DS/s{i}/take_poses.npz": identified_sequence(i, 400) for i in range(40)})
    amass_pack(root / "tree", root / "store", progress=False)
    packed = lambda **kw: PackedAMASS(root / "store", 8, shuffle=True, batch_size=64, **kw)
    print("CUDA:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
    describe("IterableLoader(PackedAMASS, num_workers=2, pin_memory=True)", IterableLoader(packed(), batch_size=None, num_workers=2, pin_memory=True))
    describe("DataLoader(PackedAMASS, num_workers=2, pin_memory=True)", torch.utils.data.DataLoader(packed(), batch_size=None, num_workers=2, pin_memory=True))
    describe("IterableLoader(PackedAMASS, num_workers=0, pin_memory=True)", IterableLoader(packed(), batch_size=None, pin_memory=True))
    if torch.cuda.is_available():
        describe("IterableLoader(PackedAMASS, 2 workers, pin_memory=True, device='cuda')", IterableLoader(packed(), batch_size=None, num_workers=2, pin_memory=True, device="cuda"))
        describe("PackedAMASS(device='cuda')", IterableLoader(packed(device="cuda"), batch_size=None))
        describe("PackedAMASS(device='cuda', pinned=True)", IterableLoader(packed(device="cuda", pinned=True), batch_size=None))
