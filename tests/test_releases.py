"""Every AMASS release, frame-rate resampling, sub-dataset selection, and files crafted to be bad."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from llamass.clips import clip_counts, kept_windows, resampled_lengths, shard_plan, source_frames, worker_clip_counts
from llamass.core import AMASS, IterableLoader, PackedAMASS, amass_pack, move_dirs_into_splits, move_dirs_out_of_splits, split_presets
from llamass.dataset import POSE_SLICES, clip_ids, load_sequence
from llamass.index import AMASSFileError
from llamass.synthetic import (identified_sequence, npz_bytes, shape_only, stagei_shape, stageii_sequence, synthetic_sequence,
                               write_npz, write_tree)


def releases(root):
    "One tree per release: legacy SMPL+H, SMPL+H G and SMPL-X N (each with its shape-only files)."
    write_tree(root / "legacy", {"CMU/01/a_poses.npz": synthetic_sequence(50, 1), "CMU/01/shape.npz": shape_only(1),
                                 "KIT/3/b_poses.npz": synthetic_sequence(40, 2, gender=b"female")})
    write_tree(root / "smplh_g", {"CMU/01/a_stageii.npz": stageii_sequence(50, "smplh", 1), "CMU/01/s_stagei.npz": stagei_shape("smplh"),
                                  "KIT/3/b_stageii.npz": stageii_sequence(40, "smplh", 2, gender="female")})
    write_tree(root / "smplx_n", {"CMU/01/a_stageii.npz": stageii_sequence(50, "smplx", 1), "CMU/01/s_stagei.npz": stagei_shape(),
                                  "KIT/3/b_stageii.npz": stageii_sequence(40, "smplx", 2, gender="male")})
    return root


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    return releases(tmp_path_factory.mktemp("releases"))


@pytest.mark.parametrize("release,keys,pose_width", [("legacy", ("poses", "dmpls", "trans", "betas", "gender"), 156),
                                                     ("smplh_g", ("poses", "dmpls", "trans", "betas", "gender"), 156),
                                                     ("smplx_n", ("poses", "trans", "betas", "gender"), 165)])
def test_every_release_loads_its_standard_keys(trees, release, keys, pose_width):
    dataset = AMASS(trees / release, 4, keep=1.0, progress=False)
    assert dataset.data_keys == keys and len(dataset.index) == 2            # shape.npz / *_stagei.npz skipped
    clips = list(dataset)
    assert len(clips) == len(dataset) == 50 // 4 + 40 // 4
    assert clips[0]["poses"].shape == (4, pose_width) and all(c["poses"].dtype == np.float32 for c in clips)


@pytest.mark.parametrize("release,model", [("legacy", "smplh"), ("smplh_g", "smplh"), ("smplx_n", "smplx")])
def test_split_pose_keys(trees, release, model):
    keys = tuple(POSE_SLICES[model])
    dataset = AMASS(trees / release, 1, keep=1.0, data_keys=("poses",) + keys, progress=False)
    for clip in dataset:
        assert np.array_equal(np.concatenate([clip[k] for k in keys], axis=1), clip["poses"])
    path = sorted((trees / release).rglob("a_*.npz"))[0]
    with np.load(path) as raw:
        for key, (start, stop) in POSE_SLICES[model].items():
            expected = raw[key] if key in raw.files else raw["poses"][:, start:stop]
            assert np.array_equal(load_sequence(path, (key,))[key], expected.astype(np.float32))


def test_index_records_rate_and_model(trees):
    assert AMASS(trees / "smplx_n", 1, progress=False).index.models == ("smplx", "smplx")
    assert AMASS(trees / "smplh_g", 1, progress=False).index.fps.tolist() == [120.0, 120.0]


def test_mixed_models_are_refused(trees, tmp_path):
    write_npz(tmp_path / "A/s/x_poses.npz", synthetic_sequence(10))
    write_npz(tmp_path / "B/s/y_stageii.npz", stageii_sequence(10, "smplx"))
    with pytest.raises(ValueError, match=r"mixes body models: smplh \(e.g. .*x_poses.npz\), smplx \(e.g. .*y_stageii.npz\)"):
        AMASS(tmp_path, 1, progress=False)
    assert len(AMASS(tmp_path, 1, keep=1.0, subdatasets=["B"], progress=False)) == 10


def test_missing_key_is_named_at_construction(trees):
    with pytest.raises(ValueError, match=r"data key 'dmpls' is missing from .*smplx_n/CMU/01/a_stageii.npz"):
        AMASS(trees / "smplx_n", 1, data_keys=("poses", "dmpls"), progress=False)
    with pytest.raises(ValueError, match=r"data key 'pose_jaw' is missing from .*legacy/CMU/01/a_poses.npz"):
        AMASS(trees / "legacy", 1, data_keys=("pose_jaw",), progress=False)


# ------------------------------------------------------------------ frame rates
@pytest.fixture
def rates(tmp_path):
    "Identified sequences at several rates (trans[:, 1] is the source frame index)."
    specs = {"A/s/r60_poses.npz": (0, 100, 60.0), "A/s/r120_poses.npz": (1, 241, 120.0), "B/s/odd_poses.npz": (2, 333, 120.00004577636719),
             "B/s/r250_poses.npz": (3, 500, 250.0), "B/s/ntsc_poses.npz": (4, 180, 59.94)}
    write_tree(tmp_path, {p: identified_sequence(i, n, framerate=f) for p, (i, n, f) in specs.items()})
    return tmp_path, specs


def test_target_fps_picks_nearest_frames(rates):
    root, specs = rates
    dataset = AMASS(root, 1, keep=1.0, data_keys=("trans",), target_fps=30, progress=False)
    seen = {}
    for clip in dataset: seen.setdefault(int(clip["trans"][0, 0]), []).append(int(clip["trans"][0, 1]))
    assert sum(len(v) for v in seen.values()) == len(dataset)
    for i, n, fps in specs.values():
        expected = [int(np.floor(k * fps / 30 + 0.5)) for k in range(n * 2) if np.floor(k * fps / 30 + 0.5) <= n - 1]
        assert seen[i] == expected, (i, fps)


def test_packed_target_fps_matches(rates, tmp_path_factory):
    root, _ = rates
    store = tmp_path_factory.mktemp("p") / "store"
    amass_pack(root, store, progress=False)
    kwargs = dict(keep=0.8, target_fps=25)
    amass, packed = AMASS(root, 3, progress=False, **kwargs), PackedAMASS(store, 3, **kwargs)
    assert len(amass) == len(packed)
    assert all(np.array_equal(a[k], p[k]) for a, p in zip(amass, packed, strict=True) for k in a)
    batched = IterableLoader(PackedAMASS(store, 3, batch_size=4, **kwargs), batch_size=None, num_workers=2)
    from_batches = sorted(clip.numpy().tobytes() for b in batched for clip in b["trans"])
    assert from_batches == sorted(a["trans"].tobytes() for a in amass)


def test_upsampling_and_unknown_rates(rates, tmp_path_factory):
    root, _ = rates
    other = tmp_path_factory.mktemp("z")
    with pytest.raises(AMASSFileError, match=r"r60_poses.npz: target_fps=100(\.0)? is above its frame rate 60.0; upsampling is refused"):
        AMASS(root, 1, target_fps=100, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = AMASS(root, 1, keep=1.0, target_fps=100, strict=False, progress=False)
    assert sorted(p.name for p in dataset.index.paths) == ["odd_poses.npz", "r120_poses.npz", "r250_poses.npz"]
    assert len(caught) == 2 and sum(1 for _ in dataset) == len(dataset)
    write_npz(other / "Z/s/none_poses.npz", {k: v for k, v in synthetic_sequence(20).items() if k != "mocap_framerate"})
    with pytest.raises(AMASSFileError, match="none_poses.npz: frame rate nan is missing"):
        AMASS(other, 1, target_fps=30, progress=False)
    assert len(AMASS(other, 1, keep=1.0, target_fps=30, progress=False, fps_overrides={"Z": 60.0})) == 10
    write_npz(other / "Y/s/zero_poses.npz", {**synthetic_sequence(20), "mocap_framerate": np.array(0.0)})
    with pytest.raises(AMASSFileError, match="zero_poses.npz: 'mocap_framerate' should be a positive frame rate, is 0.0"):
        AMASS(other, 1, progress=False)                                  # a recorded rate of 0 is a broken file


def test_fps_overrides_by_path_and_subdataset(rates):
    root, _ = rates
    dataset = AMASS(root, 1, keep=1.0, target_fps=30, fps_overrides={"B": 60.0, "A/s/r60_poses.npz": 30.0}, progress=False)
    assert dict(zip(dataset.index.relative_paths(), dataset.fps)) == {
        "A/s/r120_poses.npz": 120.0, "A/s/r60_poses.npz": 30.0, "B/s/ntsc_poses.npz": 60.0, "B/s/odd_poses.npz": 60.0, "B/s/r250_poses.npz": 60.0}
    assert len(dataset) == 241 // 4 + 1 + 100 + 180 // 2 + 333 // 2 + 1 + 500 // 2


def test_split_selection_without_moving(tmp_path):
    write_tree(tmp_path, {f"{name}/s/x_poses.npz": identified_sequence(i, 10) for i, name in enumerate(["CMU", "HumanEva", "SFU", "Transitions_mocap"])})
    val = AMASS(tmp_path, 1, keep=1.0, split="val", progress=False)
    assert sorted(set(val.index.subdatasets)) == ["HumanEva", "SFU"]
    assert sorted(set(AMASS(tmp_path, 1, split="test", splits="humor", progress=False).index.subdatasets)) == ["HumanEva", "Transitions_mocap"]
    assert sorted(set(AMASS(tmp_path, 1, split="train", progress=False).index.subdatasets)) == ["CMU"]
    assert AMASS(tmp_path, 1, subdatasets=["SFU"], progress=False).index.subdatasets == ("SFU",)
    with pytest.raises(ValueError, match="split 'dev' is not one of"):
        AMASS(tmp_path, 1, split="dev", progress=False)
    move_dirs_into_splits(tmp_path, split_presets["amass"])                      # the same, on a moved tree
    assert sorted(set(AMASS(tmp_path, 1, split="val", progress=False).index.subdatasets)) == ["HumanEva", "SFU"]
    move_dirs_out_of_splits(tmp_path)
    with pytest.raises(FileNotFoundError, match="split 'val' has no sub-dataset in"):
        AMASS(tmp_path / "CMU", 1, split="val", progress=False)


# ------------------------------------------------------------------ bad files
def bad_files(root):
    "One crafted file per kind of problem; returns {name: (expected message part, counts towards len when skipped?)}."
    good = synthetic_sequence(30, 9)
    write_npz(root / "DS/s/good_poses.npz", good)
    (root / "DS/s/truncated_poses.npz").write_bytes(npz_bytes(good)[:5000])
    (root / "DS/s/notzip_poses.npz").write_bytes(b"this is not a zip archive at all")
    write_npz(root / "DS/s/noposes_poses.npz", {k: v for k, v in good.items() if k != "poses"})
    write_npz(root / "DS/s/wide_poses.npz", {**good, "poses": np.zeros((30, 99))})
    write_npz(root / "DS/s/robot_poses.npz", {**good, "gender": np.array("robot")})
    return {"truncated_poses.npz": "not a readable npz", "notzip_poses.npz": "not a readable npz",
            "noposes_poses.npz": "no 'poses' array", "wide_poses.npz": "'poses' has 99 parameters per frame",
            "robot_poses.npz": "unknown gender 'robot'"}


def test_bad_files_strict_and_lenient(tmp_path):
    problems = bad_files(tmp_path)
    with pytest.raises(AMASSFileError) as error:
        AMASS(tmp_path, 1, progress=False)
    assert "noposes_poses.npz: no 'poses' array" in str(error.value)      # the first bad file in path order
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = AMASS(tmp_path, 1, keep=1.0, strict=False, progress=False)
    messages = [str(w.message) for w in caught]
    for name, problem in problems.items():
        assert any(name in m and problem in m for m in messages), (name, messages)
    assert [p.name for p in dataset.index.paths] == ["good_poses.npz"]
    assert len(dataset) == 30 == sum(1 for _ in dataset)


def test_short_and_empty_sequences(tmp_path):
    write_npz(tmp_path / "DS/s/empty_poses.npz", synthetic_sequence(0))
    write_npz(tmp_path / "DS/s/short_poses.npz", synthetic_sequence(3))
    write_npz(tmp_path / "DS/s/long_poses.npz", synthetic_sequence(20))
    dataset = AMASS(tmp_path, 5, keep=1.0, progress=False)
    assert len(dataset) == 4 == sum(1 for _ in dataset)
    overlapping = AMASS(tmp_path, 5, overlapping=True, keep=1.0, progress=False)
    assert len(overlapping) == 16 == sum(1 for _ in IterableLoader(overlapping, batch_size=None, num_workers=2))


def test_non_finite_values_with_check_finite(tmp_path):
    good = synthetic_sequence(12)
    write_npz(tmp_path / "DS/s/good_poses.npz", good)
    poses = good["poses"].copy(); poses[5, 7] = np.nan
    write_npz(tmp_path / "DS/s/nan_poses.npz", {**good, "poses": poses})
    assert len(AMASS(tmp_path, 1, keep=1.0, progress=False)) == 24               # not checked unless asked
    with pytest.raises(AMASSFileError, match=r"nan_poses.npz: non-finite values \(NaN or inf\) in \['poses'\]"):
        AMASS(tmp_path, 1, check_finite=True, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lenient = AMASS(tmp_path, 1, keep=1.0, check_finite=True, strict=False, progress=False)
    assert len(lenient) == 12 == sum(1 for _ in lenient)


# ------------------------------------------------------------------ properties of clip planning
@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=8), keep=st.floats(0.05, 1.0),
       clip_length=st.integers(1, 9), overlapping=st.booleans(), ratio=st.sampled_from([1.0, 2.0, 4.0, 120.00004577636719 / 30, 59.94 / 25]),
       world_size=st.integers(1, 3), num_workers=st.integers(1, 3), shuffle=st.booleans(), seed=st.integers(0, 2**32))
def test_plans_are_exact_and_stay_inside_windows(lengths, keep, clip_length, overlapping, ratio, world_size, num_workers, shuffle, seed):
    n = resampled_lengths(lengths, [ratio] * len(lengths))
    assert all(source_frames(m - 1, ratio) <= l - 1 for m, l in zip(n, lengths) if m > 0)
    counts = clip_counts(n, clip_length, overlapping, keep)
    starts, stops = kept_windows(n, keep)
    order = np.random.default_rng(seed).permutation(len(n))
    seen, per_rank = [], []
    for rank in range(world_size):
        rank_total = 0
        for worker in range(num_workers):
            seqs, first = shard_plan(counts, starts, 1 if overlapping else clip_length, order, rank, world_size, worker,
                                     num_workers, shuffle, seed, 3, 50)
            assert np.all(first >= starts[seqs]) and np.all(first + clip_length <= stops[seqs])   # inside the kept window
            seen += list(zip(seqs.tolist(), first.tolist())); rank_total += len(seqs)
        per_rank.append(rank_total)
    assert len(seen) == len(set(seen)) and int(counts.sum()) - len(seen) <= world_size - 1
    assert len(set(per_rank)) == 1 and per_rank[0] == worker_clip_counts(int(counts.sum()) // world_size, num_workers).sum()
