"""The main job on an unpacked AMASS folder: index it, then load one shuffled epoch with two workers.

Usage: python sample_data/demo.py AMASS_FOLDER   (`make demo` unpacks the bundled sample and runs this)
"""
import sys
import time
from pathlib import Path

from llamass.core import AMASS, IterableLoader, npz_lens, save_lens
from llamass.tqdm import progress_bar


def main(root, clip_length=1, batch_size=64, num_workers=2):
    root = Path(root)
    rows = npz_lens(root)
    lens = save_lens(root / "npz_file_lens.json.gz", rows)
    print(f"indexed {root}: {len(rows)} sequences, {sum(n for _, _, n in rows)} frames, lengths saved to {lens.name}")
    dataset = AMASS(root, clip_length=clip_length, shuffle=True, seed=0, progress=False)
    loader = IterableLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    frames, shapes, start = 0, None, time.perf_counter()
    for batch in progress_bar(iterable=loader, total=len(loader), desc="epoch 0", unit="batch"):   # on a terminal
        frames += batch["poses"].shape[0] * batch["poses"].shape[1]
        shapes = shapes or ", ".join(f"{k} {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}" for k, v in batch.items())
    seconds = time.perf_counter() - start
    print(f"batch shapes: {shapes}")
    print(f"{frames} frames in {len(loader)} batches, {seconds:.2f} s: {frames / seconds:,.0f} frames/s "
          f"(clip_length={clip_length}, batch_size={batch_size}, num_workers={num_workers}; includes starting the workers)")


if __name__ == "__main__":
    if len(sys.argv) != 2: raise SystemExit(__doc__)
    main(sys.argv[1])
