"""llamass.humanml3d against a per-clip transcription of HumanML3D's own algorithm (tests/humanml3d_reference.py),
smplx's SMPL+H on a synthetic model file, and the loaders' `humanml3d` key end to end."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

import humanml3d_reference as ref
from llamass import humanml3d as h
from llamass.synthetic import synthetic_sequence, write_tree
from llamass.transforms import SMPLH52_PARENTS

TARGET_FILE = Path(__file__).parents[1] / ".." / "shared" / "humanml3d" / "target_skeleton.json"
TARGET_OFFSETS = np.array(h.HUMANML3D_DIRECTIONS, float) * np.array(h.HUMANML3D_BONE_LENGTHS)[:, None]


def walk_parameters(seed, n_frames):
    "AMASS parameters (Z-up) of an upright body walking along a wandering heading, its limbs from a synthetic sequence."
    rng = np.random.default_rng(seed)
    poses = synthetic_sequence(n_frames * 6, seed=seed)["poses"][::6][:n_frames] * 0.6
    yaw = rng.uniform(-3, 3) + np.cumsum(rng.normal(0, 0.05, n_frames))
    upright = roma.rotvec_to_rotmat(torch.tensor([np.pi / 2, 0, 0], dtype=torch.float64))
    turn = roma.rotvec_to_rotmat(torch.tensor(np.stack([np.zeros(n_frames), np.zeros(n_frames), yaw], 1)))
    sway = roma.rotvec_to_rotmat(torch.tensor(poses[:, :3] * 0.2))
    poses[:, :3] = roma.rotmat_to_rotvec(turn @ upright @ sway).numpy()
    trans = np.cumsum(np.stack([np.cos(yaw), np.sin(yaw), np.zeros(n_frames)], 1) * rng.uniform(0.01, 0.08), 0) + [0, 0, 0.9]
    return {"poses": poses, "trans": trans, "betas": np.round(rng.normal(size=16), 2), "gender": np.array(-1 if seed % 2 else 1)}


def walks(n_clips, n_frames, seed=0):
    "(n_clips, n_frames, 22, 3) HumanML3D joints of walks on the mean body."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([h.humanml3d_joints(walk_parameters(seed + i, n_frames)) for i in range(n_clips)])


def test_target_skeleton_constants():
    "The target skeleton is the shared measurement of HumanML3D's released joints, copied in."
    if TARGET_FILE.is_file():
        measured = json.loads(TARGET_FILE.read_text())
        assert list(h.HUMANML3D_PARENTS) == measured["parents"]
        assert np.allclose(TARGET_OFFSETS, measured["offsets_m"], atol=1e-9)
    assert list(h.HUMANML3D_PARENTS) == ref.parents()
    assert np.array_equal(np.array(h.HUMANML3D_DIRECTIONS), ref.RAW_OFFSETS)


def test_features_match_reference():
    "Batched features equal the per-clip transcription of process_file, quirks included, to float64 rounding."
    joints = walks(4, 90)
    ours = h.features_from_joints(joints)
    theirs = np.stack([ref.process_file(clip, TARGET_OFFSETS) for clip in joints])
    assert ours.shape == (4, 89, 263) and isinstance(ours, np.ndarray)
    assert np.abs(ours - theirs).max() < 1e-9
    assert 0 < ours[..., -4:].mean() < 1        # some contacts, not all


def test_features_long_clip_and_two_frames():
    "The smoothing's window (161 frames) is longer than short clips and shorter than long ones: both match."
    for n_frames in (2, 5, 300):
        joints = walks(1, n_frames, seed=7)[0]
        assert np.abs(h.features_from_joints(joints) - ref.process_file(joints, TARGET_OFFSETS)).max() < 1e-9


def test_each_quirk_matters():
    "Reading the hips in the right order would change the 6D rotations: the reference pins the quirk."
    joints = walks(1, 60, seed=3)[0]
    positions = h._canonical_start(h.retarget(torch.tensor(joints)))
    quirky = h._facing(*positions.unbind(-1), hips_swapped=True)
    straight = h._facing(*positions.unbind(-1), hips_swapped=False)
    assert not torch.allclose(h._unit(quirky), h._unit(straight), atol=1e-3)


def test_float32_torch_and_leading_dimensions():
    "Any leading dimensions; torch in, torch out, float32 kept and close to the float64 numbers."
    joints = walks(6, 40, seed=11)
    ours = h.features_from_joints(torch.tensor(joints, dtype=torch.float32).reshape(2, 3, 40, 22, 3))
    assert ours.shape == (2, 3, 39, 263) and ours.dtype == torch.float32
    exact = h.features_from_joints(joints).reshape(2, 3, 39, 263)
    close = np.abs(ours.numpy() - exact) < 1e-3
    assert close.mean() > 0.999


def test_features_refuse_bad_shapes():
    with pytest.raises(ValueError, match="22, 3"): h.features_from_joints(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match="T >= 2"): h.features_from_joints(np.zeros((1, 22, 3)))
    with pytest.raises(ValueError, match="263"): h.joints_from_features(np.zeros((10, 262)))


def test_joints_from_features_match_recover_from_ric():
    joints = walks(3, 50, seed=20)
    features = h.features_from_joints(joints)
    ours = h.joints_from_features(torch.tensor(features))
    theirs = np.stack([ref.recover_from_ric(f) for f in features])
    assert ours.shape == (3, 49, 22, 3)
    assert np.abs(ours.numpy() - theirs).max() < 1e-9


def test_recovered_joints_keep_the_target_bones():
    "Joints recovered from features have the target skeleton's bone lengths (ric is the retargeted body)."
    recovered = h.joints_from_features(h.features_from_joints(walks(2, 30, seed=5)))
    lengths = np.linalg.norm(recovered[..., 1:, :] - recovered[..., [p for p in h.HUMANML3D_PARENTS[1:]], :], axis=-1)
    assert np.allclose(lengths, h.HUMANML3D_BONE_LENGTHS[1:], atol=1e-9)


def test_mirror_joints():
    joints = walks(2, 20, seed=30)
    mirrored = h.mirror_joints(joints)
    assert np.array_equal(mirrored[0], ref.swap_left_right(joints[0]))
    assert np.array_equal(h.mirror_joints(mirrored), joints)
    with pytest.raises(ValueError, match="22, 3"): h.mirror_joints(np.zeros((3, 52, 3)))


def cal_mean_variance(arrays):
    "HumanML3D's cal_mean_variance on in-memory arrays: NaN files dropped, one std per group."
    data = np.concatenate([a for a in arrays if not np.isnan(a).any()])
    mean, std = data.mean(0), data.std(0)
    for start, stop in ((0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)):
        std[start:stop] = std[start:stop].mean()
    return mean, std


def test_feature_stats_streams_like_cal_mean_variance():
    features = list(h.features_from_joints(walks(5, 30, seed=40)))
    broken = features[0].copy()
    broken[3, 7] = np.nan
    stream = iter([features[0], torch.tensor(features[1]), {"humanml3d": torch.tensor(np.stack(features[2:4]))}, broken, features[4]])
    mean, std = h.feature_stats(stream)
    expected_mean, expected_std = cal_mean_variance(features + [broken])
    assert mean.dtype == np.float32 and mean.shape == std.shape == (263,)
    assert np.allclose(mean, expected_mean, atol=1e-6) and np.allclose(std, expected_std, atol=1e-6)
    with pytest.raises(ValueError, match="no frames"): h.feature_stats([broken])


# --- From AMASS parameters: against smplx on a synthetic model file -------------------------------------------------

def write_body_model(path, seed):
    "A random but valid SMPL+H model file in AMASS's `smplh/<gender>/model.npz` format."
    rng, n_vertices = np.random.default_rng(seed), 6890
    regressor = rng.random((52, n_vertices)) * (rng.random((52, n_vertices)) < 0.01)
    regressor /= regressor.sum(1, keepdims=True)
    parents = np.array(SMPLH52_PARENTS)
    kintree = np.stack([np.where(parents < 0, 4294967295, parents), np.arange(52)]).astype(np.int64)
    arrays = dict(v_template=rng.normal(size=(n_vertices, 3)) * 0.3, shapedirs=rng.normal(size=(n_vertices, 3, 16)) * 0.01,
                  J_regressor=regressor, kintree_table=kintree, weights=np.full((n_vertices, 52), 1 / 52),
                  posedirs=np.zeros((n_vertices, 3, 459)), f=rng.integers(0, n_vertices, (100, 3)).astype(np.uint32),
                  hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="module")
def body_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("body_models")
    for seed, gender in enumerate(("male", "female", "neutral")): write_body_model(root / "smplh" / gender / "model.npz", seed)
    return root


def smplx_joints(model_file, params):
    "The first 22 joints of smplx's SMPL+H for one sequence, with HumanML3D's axis change."
    smplx = pytest.importorskip("smplx")
    n = len(params["poses"])
    model = smplx.SMPLH(model_path=str(model_file), ext="npz", use_pca=False, flat_hand_mean=True, num_betas=10, batch_size=n)
    poses = torch.tensor(params["poses"], dtype=torch.float32)
    out = model(global_orient=poses[:, :3], body_pose=poses[:, 3:66], left_hand_pose=poses[:, 66:111],
                right_hand_pose=poses[:, 111:156], transl=torch.tensor(params["trans"], dtype=torch.float32),
                betas=torch.tensor(params["betas"][:10], dtype=torch.float32).expand(n, 10))
    joints = out.joints[:, :22].detach().double().numpy()
    return np.stack([-joints[..., 0], joints[..., 2], joints[..., 1]], -1)


def test_humanml3d_joints_match_smplx(body_models):
    "Each clip's own betas and gender (neutral -> the female model, as HumanML3D), batched, equal smplx's joints."
    clips = [walk_parameters(seed, 15) for seed in range(3)]
    clips[2]["gender"] = np.array(0)                                     # neutral
    batch = {k: np.stack([np.broadcast_to(c[k], (15,) + np.shape(c[k])) if k in ("betas", "gender") else c[k] for c in clips])
             for k in ("poses", "trans", "betas", "gender")}
    ours = h.humanml3d_joints(batch, body_models)
    for clip, joints in zip(clips, ours):
        gender = {-1: "male", 1: "female", 0: "female"}[int(clip["gender"])]
        expected = smplx_joints(body_models / "smplh" / gender / "model.npz", clip)
        assert np.abs(joints - expected).max() < 1e-5
    different = h.humanml3d_joints({**batch, "gender": -batch["gender"]}, body_models)
    assert np.abs(different - ours).max() > 1e-3                         # the gender's model file matters


def test_humanml3d_joints_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="smplh/male/model.npz"):
        h.humanml3d_joints(walk_parameters(1, 5), tmp_path)


def test_mean_body_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3): h.humanml3d_joints(walk_parameters(0, 5))
    assert sum("mean SMPL+H body" in str(w.message) for w in caught) == 1


# --- The loaders' `humanml3d` key --------------------------------------------------------------------------------------

def walk_tree(root):
    "Four walks at 120 fps as an AMASS tree."
    files = {}
    for i in range(4):
        params = walk_parameters(i, 240)
        arrays = synthetic_sequence(240, seed=i, gender=("male", "female")[i % 2])
        arrays.update(poses=params["poses"], trans=params["trans"])
        files[f"DS/s{i}/walk_poses.npz"] = arrays
    write_tree(root, files)
    return root


def test_amass_key_end_to_end(tmp_path, body_models):
    from llamass.dataset import AMASS
    root = walk_tree(tmp_path / "tree")
    common = dict(clip_length=40, keep=1.0, target_fps=20, progress=False, file_list_seed=None, body_models=body_models)
    plain = AMASS(root, data_keys=["poses", "trans", "betas", "gender", "humanml3d"], **common)
    clips = list(plain)
    assert len(clips) == 4 and clips[0]["humanml3d"].shape == (39, 263)
    for clip in clips[:3]:
        expected = h.features_from_joints(h.humanml3d_joints(clip, body_models))
        assert np.abs(clip["humanml3d"] - expected).max() < 1e-5
    batched = AMASS(root, data_keys=["humanml3d"], batch_size=3, **common)
    batch = next(iter(batched))
    assert batch["humanml3d"].shape == (3, 39, 263)
    assert np.abs(batch["humanml3d"].numpy() - np.stack([c["humanml3d"] for c in clips[:3]])).max() < 1e-5
    mirrored = next(iter(AMASS(root, data_keys=["poses", "trans", "betas", "gender", "humanml3d"], mirror=True, **common)))
    expected = h.features_from_joints(h.mirror_joints(h.humanml3d_joints(mirrored, body_models)))
    assert np.abs(mirrored["humanml3d"] - expected).max() < 1e-5


def test_packed_key_end_to_end(tmp_path, body_models):
    from llamass.core import PackedAMASS, amass_pack
    root = walk_tree(tmp_path / "tree")
    amass_pack(root, tmp_path / "packed", progress=False)
    packed = PackedAMASS(tmp_path / "packed", clip_length=40, keep=1.0, target_fps=20, data_keys=["poses", "trans", "betas", "gender", "humanml3d"],
                         body_models=body_models, batch_size=2, file_list_seed=None)
    batch = next(iter(packed))
    expected = h.features_from_joints(h.humanml3d_joints(batch, body_models))
    assert batch["humanml3d"].shape == (2, 39, 263)
    assert torch.allclose(batch["humanml3d"], expected, atol=1e-5)


def test_mirror_choice():
    meta = {"path": [f"DS/s{i}/walk_poses.npz" for i in range(200)], "start": torch.arange(200)}
    half = h.mirror_choice(0.5, meta)
    assert 60 < int(half.sum()) < 140
    assert torch.equal(half, h.mirror_choice(0.5, meta))                # a pure function of the clips
    assert not h.mirror_choice(False, meta).any() and h.mirror_choice(True, meta).all()
    assert bool(h.mirror_choice(1.0, {"path": "a.npz", "start": 3}))
    with pytest.raises(ValueError, match="probability"): h.mirror_choice(1.5, meta)


def test_feet_threshold_scales_with_fps():
    assert float(h.feet_threshold_at(20.0)) == h.FEET_THRESHOLD
    assert np.isclose(float(h.feet_threshold_at(40.0)), h.FEET_THRESHOLD / 4)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_packed_device_path(tmp_path, body_models, device):
    "PackedAMASS(device=...) gathers batches on the device; the humanml3d key is made there, equal to the host path's."
    from llamass.core import PackedAMASS, amass_pack
    root = walk_tree(tmp_path / "tree")
    amass_pack(root, tmp_path / "packed", progress=False)
    common = dict(clip_length=40, keep=1.0, target_fps=20, data_keys=["humanml3d"], body_models=body_models, batch_size=4,
                  file_list_seed=None, mirror=0.5)
    on_device = next(iter(PackedAMASS(tmp_path / "packed", device=device, **common)))["humanml3d"]
    on_host = next(iter(PackedAMASS(tmp_path / "packed", **common)))["humanml3d"]
    assert on_device.device.type == device and on_device.shape == (4, 39, 263)
    assert torch.allclose(on_device.cpu(), on_host, atol=1e-4)


def test_real_motion_matches_reference(real_sample_root):
    "Real AMASS motion capture (the shared two-file sample), at HumanML3D's 20 fps, batched = per-clip reference."
    clips = []
    for name in ("amass_sample.npz", "dmpl_sample.npz"):
        with np.load(real_sample_root / "sample/subdir" / name) as npz:
            params = {"poses": npz["poses"][::6][:38], "trans": npz["trans"][::6][:38], "betas": npz["betas"], "gender": np.array(-1)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clips.append(h.humanml3d_joints(params))
    joints = np.stack(clips)
    ours = h.features_from_joints(joints)
    theirs = np.stack([ref.process_file(clip, TARGET_OFFSETS) for clip in joints])
    assert np.abs(ours - theirs).max() < 1e-9
    assert np.abs(h.features_from_joints(torch.tensor(joints, dtype=torch.float32)).numpy() - theirs).max() < 1e-3
