"""A script written for llamass 0.0.4 runs on this package and gets the same numbers.

The numbers of 0.0.4 were recorded once by tests/make_ref_004.py (run in a venv with llamass==0.0.4) into
tests/data/ref_004.npz, with the synthetic inputs they came from. Each name is compared to 1e-5 relative in float64
(plus a small absolute tolerance where 0.0.4 itself approximated; each such case says why). Then: round trips of
every representation, gradients through forward kinematics, several leading dimensions, GPU/CPU agreement, the
bugs of 0.0.4 that are fixed, and the real AMASS sample when it and a llamass 0.0.4 install are both present.
"""
import importlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import roma
import torch

from llamass import dips, features, losses, transforms
from llamass.transforms import (ForwardKinematics, Rotation, SMPLHForwardKinematics, SMPL_ForwardKinematics, Skeleton,
                                SMPLH52_PARENTS, aa_to, aa_to_euler, euler_to_aa, fk_rotmat, joint_positions, to_aa)

HERE = Path(__file__).resolve().parent
REF = dict(np.load(HERE / "data" / "ref_004.npz"))
EULER_SEQS = ("zyx", "xyz", "XYZ", "ZXY", "xzx", "YXY")
ALL_SEQS = [a + b + c for a in "xyz" for b in "xyz" for c in "xyz" if a != b and b != c]
ALL_SEQS += [s.upper() for s in ALL_SEQS]


def t(name):
    "A recorded input as a float64 tensor."
    return torch.as_tensor(REF[f"in/{name}"])


def check(ours, name, atol=1e-9):
    "`ours` equals 0.0.4's output `name` to 1e-5 relative (and `atol` absolute)."
    ours = ours.detach().cpu().numpy() if torch.is_tensor(ours) else np.asarray(ours)
    expected = REF[f"out/{name}"]
    assert ours.shape == expected.shape, f"{name}: shape {ours.shape}, 0.0.4 gave {expected.shape}"
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=atol, err_msg=name)


def same_rotation(a, b, atol=1e-7):
    "Angle-axis `a` and `b` (..., 3) are the same rotations (v and -v are one rotation at angle pi)."
    np.testing.assert_allclose(aa_to(a.reshape(-1, 3), "rotmat"), aa_to(b.reshape(-1, 3), "rotmat"), atol=atol)


class LinearBody:
    "The stand-in body model of make_ref_004.py."
    def __init__(self, width=63, n_vertices=10):
        self.weights = torch.linspace(-1, 1, width * n_vertices * 3, dtype=torch.float64).reshape(width, n_vertices * 3)

    def __call__(self, pose_body):
        return SimpleNamespace(v=(pose_body @ self.weights.to(pose_body)).reshape(len(pose_body), -1, 3),
                               Jtr=torch.sin(pose_body).reshape(len(pose_body), -1, 3))


# ---------------------------------------------------------------- the same names as 0.0.4

NAMES_004 = {  # the __all__ of each module of llamass 0.0.4
    "transforms": ["rotation_matrix_to_angle_axis", "rotation_matrix_to_quaternion", "quaternion_to_angle_axis",
                   "angle_axis_to_rotation_matrix", "Rotation", "ForwardKinematics", "SMPL_ForwardKinematics",
                   "SMPL_MAJOR_JOINTS", "SMPL_NR_JOINTS", "SMPL_PARENTS", "SMPLHForwardKinematics", "SMPLH_PARENTS",
                   "SMPLH_MAJOR_JOINTS", "SMPLH_SKELETON", "scipy_aa_to_euler", "scipy_euler_to_aa"],
    "losses": ["aa_cosine", "GeodesicLossR", "ContinuousRotReprDecoder", "ForwardKinematicLoss", "VPoserLikelihood",
               "discretize", "DiscretizedEulerLoss", "euler_angle_mse", "GeodesicLossSPL", "PositionalLossSPL", "PCK_SPL",
               "calculate_auc", "all_univariate_tensors_in"],
    "features": ["calculate_stats", "stats_for_paths", "jsonize"],
    "dips": ["sparse_to_full", "SMPL_ForwardKinematics_Sparse", "iter_pkl_in"],
}


@pytest.mark.parametrize("module", sorted(NAMES_004))
def test_004_names_are_exported(module):
    namespace = {}
    exec(f"from llamass.{module} import *", namespace)  # a 0.0.4 script's star import gets every name
    assert [n for n in NAMES_004[module] if n not in namespace] == []


# ---------------------------------------------------------------- the same numbers as 0.0.4

def test_raw_conversions_match_004():
    # 0.0.4 divided the axis by (angle + 1e-6) and used a first-order Taylor series below angle 1e-3:
    # its matrices are off by up to ~1.5e-6 absolute, ours are exact rotations.
    check(transforms.angle_axis_to_rotation_matrix(t("aa")), "angle_axis_to_rotation_matrix", atol=2e-6)
    mats = t("mats")
    check(transforms.rotation_matrix_to_quaternion(torch.nn.functional.pad(mats, [0, 1])), "rotation_matrix_to_quaternion")
    check(transforms.rotation_matrix_to_quaternion(mats), "rotation_matrix_to_quaternion")  # (3, 3) accepted too
    check(transforms.rotation_matrix_to_angle_axis(torch.nn.functional.pad(mats, [0, 1])), "rotation_matrix_to_angle_axis", atol=1e-8)
    check(transforms.quaternion_to_angle_axis(t("quat_wxyz")), "quaternion_to_angle_axis", atol=1e-8)


def test_rotation_class_matches_004():
    poses, mats = t("poses"), t("mats")
    check(Rotation.from_rotvec(poses).as_matrix(), "Rotation.from_rotvec.as_matrix", atol=2e-6)
    check(Rotation.from_rotvec(poses).as_quat(), "Rotation.from_rotvec.as_quat", atol=1e-6)
    # 0.0.4's matrices were off by ~1.5e-6; near gimbal lock (here cos(middle angle) = 0.015) Euler angles amplify that
    check(Rotation.from_rotvec(poses).as_euler(), "Rotation.from_rotvec.as_euler", atol=1e-4)
    flat = t("flat")  # exact matrices: from them ours and 0.0.4's agree closely
    check(Rotation.from_matrix(flat).as_rotvec(), "Rotation.from_matrix_flat.as_rotvec", atol=1e-8)
    check(Rotation.from_matrix(flat).as_quat(), "Rotation.from_matrix_flat.as_quat", atol=1e-6)
    check(Rotation.from_matrix(flat).as_euler(), "Rotation.from_matrix_flat.as_euler", atol=1e-8)
    check(Rotation.from_matrix(mats).as_rotvec(), "Rotation.from_matrix_33.as_rotvec", atol=1e-8)
    check(Rotation.from_matrix(mats).as_quat(), "Rotation.from_matrix_33.as_quat")
    # 0.0.4 returned (N, 3, 1) Euler angles for (N, 3, 3) matrices; the numbers are the same, the shape is (N, 3)
    np.testing.assert_allclose(Rotation.from_matrix(mats).as_euler(), REF["out/Rotation.from_matrix_33.as_euler"][..., 0], rtol=1e-5, atol=1e-8)
    check(Rotation.from_quat(t("quat_wxyz"), scalar_last=False).as_quat(), "Rotation.from_quat_first.as_quat")


def test_forward_kinematics_match_004():
    poses = t("poses")
    check(SMPL_ForwardKinematics().offsets, "SMPL_ForwardKinematics.offsets", atol=1e-12)
    check(SMPLHForwardKinematics().offsets, "SMPLHForwardKinematics.offsets", atol=1e-12)
    check(SMPL_ForwardKinematics().from_aa(poses), "SMPL_ForwardKinematics.from_aa", atol=1e-5)  # 0.0.4's inexact matrices
    check(SMPLHForwardKinematics().from_aa(poses), "SMPLHForwardKinematics.from_aa", atol=1e-5)
    check(SMPL_ForwardKinematics().from_rotmat(t("flat")), "SMPL_ForwardKinematics.from_rotmat", atol=1e-9)
    for left_mult in (False, True):
        for no_root in (False, True):
            fk = ForwardKinematics(t("chain_offsets"), [-1, 0, 1, 1, 3], left_mult=left_mult, norm_idx=2, no_root=no_root)
            check(fk.fk(t("chain_mats")), f"ForwardKinematics.fk/{int(left_mult)}{int(no_root)}")


def test_skeleton_constants_match_004():
    assert transforms.SMPL_PARENTS == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    assert transforms.SMPLH_PARENTS == transforms.SMPL_PARENTS and transforms.SMPL_NR_JOINTS == 24
    assert transforms.SMPL_MAJOR_JOINTS == transforms.SMPLH_MAJOR_JOINTS == [1, 2, 3, 4, 5, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19]
    assert transforms.SMPLH_SKELETON.shape == (23, 2)
    assert transforms.SMPLH_SKELETON[:, 1].tolist() == list(range(1, 24))
    assert transforms.SMPLH_SKELETON[:, 0].tolist() == transforms.SMPL_PARENTS[1:]


@pytest.mark.parametrize("seq", EULER_SEQS)
def test_scipy_euler_match_004(seq):
    check(transforms.scipy_aa_to_euler(REF["in/aa"], seq), f"scipy_aa_to_euler/{seq}", atol=1e-8)
    check(transforms.scipy_euler_to_aa(REF["in/euler"], seq), f"scipy_euler_to_aa/{seq}", atol=1e-8)
    assert isinstance(transforms.scipy_aa_to_euler(t("aa"), seq), np.ndarray)  # tensors in, numpy out, as before


def test_losses_match_004():
    out, target = t("loss_out"), t("loss_target")
    check(losses.aa_cosine(out, target), "aa_cosine")
    check(losses.aa_cosine(out[:, None], target[:, None]), "aa_cosine_3d")
    m_out, m_target = aa_to(out, "rotmat"), aa_to(target, "rotmat")
    for reduction in ("none", "mean", "batchmean"):
        check(losses.GeodesicLossR(reduction=reduction)(m_out, m_target), f"GeodesicLossR/{reduction}", atol=1e-8)
    check(losses.GeodesicLossSPL()(m_out, m_target), "GeodesicLossSPL", atol=1e-8)
    check(losses.ContinuousRotReprDecoder()(t("six")), "ContinuousRotReprDecoder")
    check(losses.euler_angle_mse(m_out.reshape(4, -1), m_target.reshape(4, -1)), "euler_angle_mse", atol=1e-8)
    positions, target_positions = t("positions"), t("target_positions")
    check(losses.PositionalLossSPL(None)(positions=positions, target_positions=target_positions), "PositionalLossSPL")
    for thresh in (0.05, 0.15, 0.3):
        check(losses.PCK_SPL(None)(positions=positions, target_positions=target_positions, thresh=thresh), f"PCK_SPL/{thresh}")
    pck, thresholds = REF["in/pck"], REF["in/pck_thresholds"]
    check([losses.calculate_auc(pck, thresholds, n) for n in (1, 5, 6, 11, 12, 17, 18, 30)], "calculate_auc")
    angles = t("angles")
    check(losses.discretize(angles, 16), "discretize/16", atol=0)
    check(losses.discretize(angles + np.pi, 7, zero_centered=False), "discretize/7_not_centered", atol=0)
    check(losses.DiscretizedEulerLoss(16)(t("logits"), angles), "DiscretizedEulerLoss")


def test_vposer_likelihood_matches_004():
    poses = t("poses")
    pose_target = (poses[:2, :63] * 0.5).reshape(2, 1, 63).repeat(1, 3, 1)
    aa_out = pose_target * 1.1 + 0.01
    dec, dec_target = aa_to(aa_out, "rotmat"), aa_to(pose_target, "rotmat")
    logged = {}
    loss = losses.VPoserLikelihood(LinearBody())(dec, aa_out, pose_target, dec_target, callback=logged.update)
    check(loss, "VPoserLikelihood", atol=1e-9)
    recorded = sorted(k.split("/")[-1] for k in REF if k.startswith("out/VPoserLikelihood.callback/"))
    assert sorted(logged) == recorded
    for name, value in logged.items(): check(value, f"VPoserLikelihood.callback/{name}", atol=1e-9)
    assert losses.all_univariate_tensors_in({"a": torch.tensor(1.), "b": torch.zeros(2), "c": 3}) == {"a": torch.tensor(1.)}


def test_dips_match_004():
    sparse = t("sparse")
    sparse_aa = to_aa(sparse.reshape(3, 15, 3, 3), "rotmat").reshape(3, 45)
    major = transforms.SMPL_MAJOR_JOINTS
    check(dips.sparse_to_full(sparse, major, 24, rep="rotmat"), "sparse_to_full/rotmat")
    check(dips.sparse_to_full(sparse_aa, major, 24, rep="aa"), "sparse_to_full/aa", atol=1e-8)
    check(dips.sparse_to_full(t("quat_wxyz")[:45].reshape(3, 60), major, 24, rep="quat"), "sparse_to_full/quat")
    check(dips.SMPL_ForwardKinematics_Sparse().from_rotmat(sparse), "SMPL_ForwardKinematics_Sparse.from_rotmat")
    check(dips.SMPL_ForwardKinematics_Sparse().from_aa(sparse_aa), "SMPL_ForwardKinematics_Sparse.from_aa", atol=1e-5)


def test_calculate_stats_matches_004(tmp_path):
    np.savez(tmp_path / "seq_poses.npz", poses=REF["in/seq_poses"], trans=REF["in/seq_trans"])
    path, (mean, std, n) = features.calculate_stats(str(tmp_path / "seq_poses.npz"))
    assert path == str(tmp_path / "seq_poses.npz")
    check(mean, "calculate_stats/mean", atol=1e-12)
    check(std, "calculate_stats/std", atol=1e-12)
    assert n == int(REF["out/calculate_stats/n"]) == 20


# ---------------------------------------------------------------- the bugs of 0.0.4, fixed

def test_from_quat_works():  # 0.0.4: NameError
    poses = t("poses")
    quat = Rotation.from_rotvec(poses).as_quat()
    same_rotation(Rotation.from_quat(quat).as_rotvec(), poses)
    np.testing.assert_allclose(Rotation.from_quat(quat).as_matrix(), Rotation.from_rotvec(poses).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(Rotation.from_quat(quat).as_euler(), Rotation.from_rotvec(poses).as_euler(), atol=1e-9)
    np.testing.assert_allclose(SMPL_ForwardKinematics().from_quat(quat), SMPL_ForwardKinematics().from_aa(poses), atol=1e-12)


def test_as_euler_float32_and_float64():  # 0.0.4: float64 input raised RuntimeError
    poses = t("poses")
    e64 = Rotation.from_rotvec(poses).as_euler()
    e32 = Rotation.from_rotvec(poses.float()).as_euler()
    assert e64.dtype == torch.float64 and e32.dtype == torch.float32
    np.testing.assert_allclose(e32.double(), e64, atol=1e-4)
    np.testing.assert_allclose(Rotation.from_euler(e64).as_rotvec(), poses, atol=1e-9)  # from_euler: new, the inverse


def test_as_euler_at_gimbal_lock():  # 0.0.4 gave (pi, pi/2, 0) here: another rotation (its special case read the wrong entries)
    c, s = np.cos(0.3), np.sin(0.3)
    m = torch.tensor([[[0., 0, -1], [s, c, 0], [c, -s, 0]]])  # R[0, 2] exactly -1: the middle angle is pi/2
    e = Rotation.from_matrix(m).as_euler()
    np.testing.assert_allclose(e, [[0.3, np.pi / 2, 0]], atol=1e-12)
    np.testing.assert_allclose(Rotation.from_euler(e).as_matrix().reshape(1, 3, 3), m, atol=1e-12)


def test_fk_does_not_modify_its_input():  # 0.0.4 overwrote the caller's root rotation
    mats = Rotation.from_rotvec(t("poses")).as_matrix()
    before = mats.clone()
    SMPL_ForwardKinematics().from_rotmat(mats)
    assert torch.equal(mats, before)


def test_jsonize_stats_for_paths(sample_root):  # 0.0.4: ValueError
    stats = features.stats_for_paths(sample_root, n_jobs=1, progress=False)
    saved = json.loads(json.dumps(features.jsonize(stats)))
    assert [Path(p).name for p, _ in saved] == ["01_01_poses.npz", "01_02_poses.npz", "02_01_poses.npz",
                                                "Walking_1_poses.npz", "punch_kick_sync_poses.npz"]
    for (path, (mean, std, n)), (saved_path, (saved_mean, saved_std, saved_n)) in zip(stats, saved):
        assert (path, n) == (saved_path, saved_n)
        np.testing.assert_array_equal(np.array(saved_mean), mean)
        np.testing.assert_array_equal(np.array(saved_std), std)
        with np.load(path) as npz: both = np.concatenate([npz["poses"], npz["trans"]], 1)
        np.testing.assert_allclose(mean, both.mean(0), rtol=1e-12)
        np.testing.assert_allclose(std, both.std(0), rtol=1e-12, atol=1e-15)


def test_dips_imports_without_einops(monkeypatch):  # 0.0.4: ModuleNotFoundError without einops
    monkeypatch.setitem(sys.modules, "einops", None)  # makes `import einops` fail
    with pytest.raises(ImportError): import einops  # noqa: F401
    assert importlib.reload(dips).SMPL_ForwardKinematics_Sparse is not None


def test_iter_pkl_in(tmp_path):  # 0.0.4: NameError
    (tmp_path / "s_02").mkdir(); (tmp_path / "s_01").mkdir()
    poses = aa_to(torch.randn(4, 45, dtype=torch.float64), "rotmat").reshape(4, 135).numpy()
    for subject in ("s_02", "s_01"):
        with open(tmp_path / subject / "a.pkl", "wb") as f: pickle.dump({"poses": poses}, f, protocol=2)
    (tmp_path / "s_01" / "notes.txt").write_text("not a pickle")
    found = list(dips.iter_pkl_in(tmp_path))
    assert found == [tmp_path / "s_01" / "a.pkl", tmp_path / "s_02" / "a.pkl"]
    aa = dips.dip_to_aa(dips.load_pkl(found[0])["poses"])
    assert aa.shape == (4, 72)
    np.testing.assert_allclose(SMPL_ForwardKinematics().from_aa(aa), dips.SMPL_ForwardKinematics_Sparse().from_rotmat(torch.as_tensor(poses)), atol=1e-12)


def test_positional_loss_with_frames_and_body_outputs():  # 0.0.4: NameError for (batch, frames, J*3); crash for bm outputs
    poses = torch.full((2, 3, 63), 0.1, dtype=torch.float64)
    body = LinearBody()
    loss = losses.PositionalLossSPL(body)
    by_poses = loss(aa_out=poses, pose_target=poses * 0)
    assert by_poses.shape == (6, 21)
    np.testing.assert_allclose(by_poses, np.sqrt(3) * np.sin(0.1), rtol=1e-12)
    by_outputs = loss(bm_orig=body(poses.reshape(6, 63) * 0), bm_rec=body(poses.reshape(6, 63)))
    np.testing.assert_allclose(by_outputs, by_poses, rtol=1e-12)


# ---------------------------------------------------------------- round trips, near 0 and near pi

def special_rotvecs(n=200, seed=0):
    "Random rotations and angles 0, 1e-9 ... 1e-3 and pi - 1e-3 ... pi - 1e-7, in float64 (n + 160, 3)."
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n + 160, 3, generator=g, dtype=torch.float64), dim=-1)
    angles = torch.cat([torch.rand(n, generator=g, dtype=torch.float64) * np.pi,
                        torch.tensor([0, 1e-9, 1e-7, 1e-5, 1e-3, np.pi - 1e-3, np.pi - 1e-5, np.pi - 1e-7], dtype=torch.float64).repeat(20)])
    return axis * angles[:, None]


def test_round_trips_new_api():
    x = special_rotvecs()
    small = x.norm(dim=-1) < 3  # away from pi the vector itself comes back; near pi the rotation does
    for rep in ("rotmat", "quat", "6d"):
        back = to_aa(aa_to(x, rep), rep)
        np.testing.assert_allclose(back[small], x[small], atol=1e-9)
        same_rotation(back, x)
    for seq in ALL_SEQS:  # at gimbal lock (middle angle within 1e-7 of 0 or pi: the identity, for "xyx") Euler angles lose ~1e-7
        back = euler_to_aa(aa_to_euler(x, seq), seq)
        np.testing.assert_allclose(back[small], x[small], atol=1e-6, err_msg=seq)
        same_rotation(back, x, atol=1e-6)


def test_round_trips_004_api():
    x = special_rotvecs()
    small = x.norm(dim=-1) < 3
    for back in (Rotation.from_matrix(Rotation.from_rotvec(x).as_matrix()).as_rotvec(),
                 Rotation.from_quat(Rotation.from_rotvec(x).as_quat()).as_rotvec(),
                 Rotation.from_euler(Rotation.from_rotvec(x).as_euler()).as_rotvec(),
                 transforms.rotation_matrix_to_angle_axis(transforms.angle_axis_to_rotation_matrix(x)[..., :3, :]),
                 transforms.quaternion_to_angle_axis(transforms.rotation_matrix_to_quaternion(roma.rotvec_to_rotmat(x)))):
        np.testing.assert_allclose(back[small], x[small], atol=1e-7)
        same_rotation(back, x)
    e = np.random.default_rng(0).uniform(-np.pi, np.pi, (50, 3)) * [1, 0.49, 1]  # middle angle within (-pi/2, pi/2)
    for seq in ("zyx", "xyz", "XYZ"):
        np.testing.assert_allclose(transforms.scipy_aa_to_euler(transforms.scipy_euler_to_aa(e, seq), seq), e, atol=1e-9)


def test_euler_matches_scipy_for_all_sequences():
    scipy_rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    x = special_rotvecs(n=300)[:300].numpy()  # random rotations (gimbal lock has measure zero)
    for seq in ALL_SEQS:
        np.testing.assert_allclose(aa_to_euler(torch.as_tensor(x), seq), scipy_rotation.from_rotvec(x).as_euler(seq), atol=1e-9, err_msg=seq)
        np.testing.assert_allclose(euler_to_aa(torch.as_tensor(x), seq), scipy_rotation.from_euler(seq, x).as_rotvec(), atol=1e-9, err_msg=seq)


# ---------------------------------------------------------------- forward kinematics: the new API

def naive_fk(rotvecs, parents, rest_joints, trans):
    "Joint positions by 4x4 rigid transforms, one joint and one frame at a time (an independent check)."
    out = np.zeros(rotvecs.shape[:-1] + (3,))
    for frame in np.ndindex(rotvecs.shape[:-2]):
        world = []
        for j, p in enumerate(parents):
            local = np.eye(4)
            local[:3, :3] = aa_to(torch.as_tensor(rotvecs[frame][j]), "rotmat")[0].numpy()
            local[:3, 3] = rest_joints[j] - (rest_joints[p] if p >= 0 else -trans[frame])
            world.append(local if p < 0 else world[p] @ local)
            out[frame][j] = world[j][:3, 3]
    return out


def test_joint_positions_match_naive_fk_with_leading_dims():
    g = torch.Generator().manual_seed(5)
    poses = torch.randn(2, 3, 4, 156, generator=g, dtype=torch.float64)
    trans = torch.randn(2, 3, 4, 3, generator=g, dtype=torch.float64)
    skeleton = Skeleton.smplh_body()
    ours = joint_positions(poses, skeleton, trans)
    assert ours.shape == (2, 3, 4, 22, 3)
    expected = naive_fk(poses.reshape(2, 3, 4, 52, 3)[..., :22, :].numpy(), skeleton.parents, skeleton.rest_joints.numpy(), trans.numpy())
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    np.testing.assert_allclose(joint_positions(poses.reshape(2, 3, 4, 52, 3), skeleton, trans), ours, atol=0)  # (..., J, 3) too
    flat = joint_positions(poses.reshape(24, 156), skeleton, trans.reshape(24, 3))
    np.testing.assert_allclose(flat.reshape(ours.shape), ours, atol=1e-14)
    assert joint_positions(poses.float(), skeleton, trans.float()).dtype == torch.float32
    np.testing.assert_allclose(joint_positions(poses.float(), skeleton, trans.float()), ours, atol=1e-5)


def test_fk_gradcheck():
    g = torch.Generator().manual_seed(7)
    poses = (torch.randn(2, 1, 66, generator=g, dtype=torch.float64) * 0.7).requires_grad_()
    trans = torch.randn(2, 1, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, tr: joint_positions(p, Skeleton.smplh_body(), tr), (poses, trans))
    rest = torch.randn(22, 3, generator=g, dtype=torch.float64).requires_grad_()  # gradients reach the skeleton too
    assert torch.autograd.gradcheck(lambda p, r: joint_positions(p, Skeleton(Skeleton.smplh_body().parents, r)), (poses, rest))
    assert torch.autograd.gradcheck(lambda p: SMPL_ForwardKinematics().double().from_aa(p), (torch.randn(1, 72, dtype=torch.float64, generator=g).requires_grad_(),))


def synthetic_model_file(path, parents, n_vertices=30, n_betas=12, seed=0):
    "A body model .npz in the official layout (random numbers, not a body)."
    rng = np.random.default_rng(seed)
    regressor = rng.random((len(parents), n_vertices))
    regressor /= regressor.sum(1, keepdims=True)
    kintree = np.array([[2**32 - 1] + list(parents[1:]), list(range(len(parents)))], dtype=np.uint32)
    np.savez(path, J_regressor=regressor, kintree_table=kintree, v_template=rng.normal(size=(n_vertices, 3)),
             shapedirs=rng.normal(size=(n_vertices, 3, n_betas)) * 0.05, posedirs=np.zeros((n_vertices, 3, 9)),
             weights=np.full((n_vertices, len(parents)), 1 / len(parents)), f=np.zeros((2, 3), np.uint32))
    return regressor


@pytest.mark.parametrize("model", ["smplh", "smplx"])
def test_skeleton_from_model_file_with_betas(tmp_path, model):
    parents = SMPLH52_PARENTS if model == "smplh" else SMPLH52_PARENTS[:22] + [15, 15, 15] + [p if p < 22 else p + 3 for p in SMPLH52_PARENTS[22:]]
    regressor = synthetic_model_file(tmp_path / "model.npz", parents)
    with np.load(tmp_path / "model.npz") as npz: template, shapedirs = npz["v_template"], npz["shapedirs"]
    betas = torch.as_tensor(np.random.default_rng(1).normal(size=(3, 10)))
    skeleton = Skeleton.from_model(tmp_path / "model.npz", betas[:, None])  # one shape per sequence, broadcast over frames
    assert skeleton.parents == parents and skeleton.rest_joints.shape == (3, 1, len(parents), 3)
    for i in range(3):
        np.testing.assert_allclose(skeleton.rest_joints[i, 0], regressor @ (template + shapedirs[..., :10] @ betas[i].numpy()), atol=1e-12)
    poses = torch.as_tensor(np.random.default_rng(2).normal(size=(3, 4, len(parents) * 3)))
    trans = torch.as_tensor(np.random.default_rng(3).normal(size=(3, 4, 3)))
    ours = joint_positions(poses, skeleton, trans)
    assert ours.shape == (3, 4, len(parents), 3)
    for i in range(3):
        expected = naive_fk(poses[i].reshape(4, -1, 3).numpy(), parents, skeleton.rest_joints[i, 0].numpy(), trans[i].numpy())
        np.testing.assert_allclose(ours[i], expected, atol=1e-12)
    assert not torch.allclose(ours[0], joint_positions(poses[0], Skeleton.from_model(tmp_path / "model.npz"), trans[0]))  # betas matter


def test_fk_errors():
    with pytest.raises(ValueError, match="every parent come before its child"): fk_rotmat(torch.eye(3).repeat(2, 1, 1), [0, -1], torch.zeros(2, 3))
    with pytest.raises(ValueError, match="must end in"): fk_rotmat(torch.eye(3).repeat(3, 1, 1), [-1, 0], torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected \\(\\.\\.\\., 72\\)"): SMPL_ForwardKinematics().from_aa(torch.zeros(4, 70))
    with pytest.raises(FileNotFoundError, match="does not exist"): Skeleton.from_model("nowhere/model.npz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    g = torch.Generator().manual_seed(11)
    poses = torch.randn(8, 16, 156, generator=g, dtype=torch.float64)
    trans = torch.randn(8, 16, 3, generator=g, dtype=torch.float64)
    cpu = joint_positions(poses, trans=trans)
    gpu = joint_positions(poses.cuda(), trans=trans.cuda())
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu(), cpu, atol=1e-12)
    np.testing.assert_allclose(joint_positions(poses.float().cuda(), trans=trans.float().cuda()).cpu(), cpu, atol=1e-5)
    fk = SMPL_ForwardKinematics()
    np.testing.assert_allclose(fk.cuda().from_aa(poses[..., :72].cuda()).cpu(), SMPL_ForwardKinematics().from_aa(poses[..., :72]), atol=1e-12)
    rot = Rotation.from_rotvec(poses[..., :72].cuda())
    np.testing.assert_allclose(rot.as_euler().cpu(), Rotation.from_rotvec(poses[..., :72]).as_euler(), atol=1e-10)
    np.testing.assert_allclose(rot.as_quat().cpu(), Rotation.from_rotvec(poses[..., :72]).as_quat(), atol=1e-12)
    m = aa_to(poses[..., :63], "rotmat")
    np.testing.assert_allclose(losses.GeodesicLossSPL()(m.cuda(), m.flip(0).cuda()).cpu(), losses.GeodesicLossSPL()(m, m.flip(0)), atol=1e-10)


# ---------------------------------------------------------------- the real sample, against a llamass 0.0.4 install

def python_004():
    "A Python with llamass 0.0.4 ($LLAMASS_004_PYTHON, or /tmp/venv004), or None."
    candidate = os.environ.get("LLAMASS_004_PYTHON", "/tmp/venv004/bin/python")
    return candidate if Path(candidate).is_file() else None


def test_real_sample_matches_004(real_sample_root, tmp_path):
    python = python_004()
    if python is None: pytest.skip("no llamass 0.0.4 install (set LLAMASS_004_PYTHON)")
    npz_path = next(Path(real_sample_root).rglob("amass_sample.npz"))
    subprocess.run([python, str(HERE / "make_ref_004.py"), "--real", str(npz_path), str(tmp_path / "real.npz")],
                   check=True, capture_output=True, cwd=tmp_path)
    ref = np.load(tmp_path / "real.npz")
    with np.load(npz_path) as npz: poses = torch.as_tensor(npz["poses"][:, :72])
    np.testing.assert_allclose(SMPL_ForwardKinematics().from_aa(poses), ref["smpl"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(SMPLHForwardKinematics().from_aa(poses), ref["smplh"], rtol=1e-5, atol=1e-5)
    assert ref["smpl"].shape == (601, 24, 3)
    _, (mean, std, n) = features.calculate_stats(str(npz_path))
    np.testing.assert_allclose(mean, ref["mean"], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(std, ref["std"], rtol=1e-5, atol=1e-12)
    assert n == int(ref["n"]) == 601
