"""HumanML3D features: llamass.humanml3d's batched code against a per-clip loop (tests/humanml3d_reference.py, HumanML3D's
process_file transcribed in numpy, vectorized over frames like HumanML3D's own code), on one CPU core.

    python benchmarks/bench_humanml3d.py            # 64 clips x 197 frames, writes benchmarks/results/humanml3d.json
    python benchmarks/bench_humanml3d.py --quick    # 8 clips x 60 frames, nothing written

Each timing is the best of several runs (the machine may be shared). The estimate of a full `amass_humanml3d` run
scales the measured per-motion cost (one motion at a time, as the command makes them: joints by forward kinematics,
features, joints recovered from features) to HumanML3D's 29,232 motions (14,616 and their mirrors) of 197 frames at
most (mean about 140), on one core and on all cores; reading and writing files come on top.
"""
import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import humanml3d_reference as ref                      # noqa: E402
from test_humanml3d import TARGET_OFFSETS, walk_parameters  # noqa: E402
from llamass import humanml3d as h                     # noqa: E402

HUMANML3D_MOTIONS, MEAN_FRAMES = 29_232, 140           # HumanML3D: 14,616 motions and their mirrors, about 7 s each at 20 fps


def best_of(runs, f, *args):
    "The shortest of `runs` timings of f(*args), in seconds."
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def one_motion(params):
    "What amass_humanml3d does per motion: joints, features, joints recovered from the features."
    features = h.features_from_joints(h.humanml3d_joints(params))
    return h.joints_from_features(features.float())


def measure(n_clips, n_frames, runs):
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = [walk_parameters(seed, n_frames) for seed in range(n_clips)]
        joints = np.stack([h.humanml3d_joints(p) for p in params])
        per_clip = best_of(max(1, runs // 3), lambda: [ref.process_file(clip, TARGET_OFFSETS) for clip in joints])
        rows = {"per-clip loop (numpy reference)": per_clip}
        for dtype in (torch.float64, torch.float32):
            batch = torch.tensor(joints, dtype=dtype)
            rows[f"batched, {str(dtype).split('.')[-1]}"] = best_of(runs, h.features_from_joints, batch)
        tensors = [{k: torch.as_tensor(np.asarray(v)).float() for k, v in p.items()} for p in params]
        motion = best_of(max(1, runs // 3), lambda: [one_motion(p) for p in tensors]) / n_clips
    return rows, motion


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few small clips, nothing written")
    args = parser.parse_args(argv)
    n_clips, n_frames, runs = (8, 60, 3) if args.quick else (64, 197, 10)
    rows, motion = measure(n_clips, n_frames, runs)
    reference = rows["per-clip loop (numpy reference)"]
    print(f"HumanML3D features of {n_clips} clips x {n_frames} frames, one CPU core (best of several runs):")
    for name, seconds in rows.items():
        print(f"  {name:34s} {seconds * 1000:9.1f} ms   {reference / seconds:6.1f}x")
    scaled = motion * MEAN_FRAMES / n_frames
    print(f"  one motion at a time (joints, features, new_joints): {motion * 1000:.1f} ms for {n_frames} frames")
    estimate = {"one core (s)": round(HUMANML3D_MOTIONS * scaled), "16 cores (s)": round(HUMANML3D_MOTIONS * scaled / 16)}
    print(f"  amass_humanml3d on all of HumanML3D, compute only: ~{estimate['one core (s)']} s on one core, "
          f"~{estimate['16 cores (s)']} s on 16 cores")
    result = {"clips": n_clips, "frames": n_frames, "threads": 1, "seconds": rows, "speedup": {k: reference / v for k, v in rows.items()},
              "one motion (s)": motion, "amass_humanml3d estimate": estimate, "torch": torch.__version__}
    if not args.quick:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "humanml3d.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
