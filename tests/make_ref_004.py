"""Record llamass 0.0.4's outputs on fixed synthetic inputs, for tests/test_compat_004.py.

Run with a Python that has llamass==0.0.4 (and einops, scipy) installed, NOT this repository's llamass:

    python3 -m venv /tmp/venv004
    /tmp/venv004/bin/pip install torch==2.13.0 llamass==0.0.4 einops scipy
    /tmp/venv004/bin/python tests/make_ref_004.py                 # writes tests/data/ref_004.npz
    /tmp/venv004/bin/python tests/make_ref_004.py --real FILE OUT # 0.0.4's numbers on one AMASS file (tests do this)

Every input is synthetic (seeded random rotations, with angles near 0 and near pi) and is saved next to the outputs
under `in/...`, so the tests need not regenerate it; outputs are under `out/...`. 0.0.4 only worked in float32 in
places (its Euler angles, its forward kinematics' buffers), so everything runs with torch's default dtype set to
float64, which makes 0.0.4 compute in float64 throughout.
"""
import argparse
import importlib.metadata
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

import llamass.dips as dips  # noqa: E402  (needs einops)
import llamass.features as features  # noqa: E402
import llamass.losses as losses  # noqa: E402
import llamass.transforms as transforms  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy.spatial.transform import Rotation as R  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "ref_004.npz"
EULER_SEQS = ("zyx", "xyz", "XYZ", "ZXY", "xzx", "YXY")


def special_angles():
    "Angles at and near the singular points: 0, tiny, near pi."
    return np.array([0.0, 1e-9, 1e-7, 1e-5, 1e-3, 0.1, np.pi / 2, np.pi - 1e-2, np.pi - 1e-4, np.pi - 1e-6])


def random_rotvecs(rng, n, max_angle=np.pi):
    "n angle-axis vectors: random unit axes, angles uniform below `max_angle`."
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0, max_angle, size=(n, 1))


def rotvecs_with_specials(rng, n):
    "n random angle-axis vectors followed by every special angle about a random axis."
    angles = special_angles()
    axis = rng.normal(size=(len(angles), 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return np.concatenate([random_rotvecs(rng, n), axis * angles[:, None]])


class LinearBody:
    "A stand-in body model: vertices a fixed linear map of the pose, joints sin(pose) (tests define the same)."
    def __init__(self, width=63, n_vertices=10):
        self.weights = torch.linspace(-1, 1, width * n_vertices * 3).reshape(width, n_vertices * 3)

    def __call__(self, pose_body):
        return SimpleNamespace(v=(pose_body @ self.weights.to(pose_body)).reshape(len(pose_body), -1, 3),
                               Jtr=torch.sin(pose_body).reshape(len(pose_body), -1, 3))


def record(rng):
    "Dict of arrays: inputs under in/..., 0.0.4's outputs under out/..."
    t = torch.as_tensor
    ref = {}

    # raw conversions
    aa = rotvecs_with_specials(rng, 54)                                    # (64, 3)
    mats = R.from_rotvec(aa).as_matrix()
    quat_xyzw = R.from_rotvec(aa).as_quat()
    signs = np.where(rng.random(len(aa)) < 0.5, -1.0, 1.0)[:, None]       # either sign, w < 0 included
    quat_wxyz = np.concatenate([quat_xyzw[:, 3:], quat_xyzw[:, :3]], 1) * signs * rng.uniform(0.5, 2, (len(aa), 1))
    ref.update({"in/aa": aa, "in/mats": mats, "in/quat_wxyz": quat_wxyz})
    ref["out/angle_axis_to_rotation_matrix"] = transforms.angle_axis_to_rotation_matrix(t(aa)).numpy()
    ref["out/rotation_matrix_to_quaternion"] = transforms.rotation_matrix_to_quaternion(F.pad(t(mats), [0, 1])).numpy()
    ref["out/rotation_matrix_to_angle_axis"] = transforms.rotation_matrix_to_angle_axis(F.pad(t(mats), [0, 1])).numpy()
    ref["out/quaternion_to_angle_axis"] = transforms.quaternion_to_angle_axis(t(quat_wxyz)).numpy()

    # Rotation, on (batch, joints*k) layouts
    poses = np.concatenate([random_rotvecs(rng, 3 * 24, max_angle=2.0).reshape(3, 72),
                            rotvecs_with_specials(rng, 14).reshape(1, 72)])  # (4, 72), the last with special angles
    ref["in/poses"] = poses
    rot = transforms.Rotation.from_rotvec(t(poses))
    ref["out/Rotation.from_rotvec.as_matrix"] = rot.as_matrix().numpy()
    ref["out/Rotation.from_rotvec.as_quat"] = transforms.Rotation.from_rotvec(t(poses)).as_quat().numpy()
    ref["out/Rotation.from_rotvec.as_euler"] = transforms.Rotation.from_rotvec(t(poses)).as_euler().numpy()
    flat = t(R.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(4, 216))  # exact matrices (0.0.4's own are off by ~1e-6)
    ref["in/flat"] = flat.numpy()
    ref["out/Rotation.from_matrix_flat.as_rotvec"] = transforms.Rotation.from_matrix(flat).as_rotvec().numpy()
    ref["out/Rotation.from_matrix_flat.as_quat"] = transforms.Rotation.from_matrix(flat).as_quat().numpy()
    ref["out/Rotation.from_matrix_flat.as_euler"] = transforms.Rotation.from_matrix(flat).as_euler().numpy()
    ref["out/Rotation.from_matrix_33.as_rotvec"] = transforms.Rotation.from_matrix(t(mats)).as_rotvec().numpy()
    ref["out/Rotation.from_matrix_33.as_quat"] = transforms.Rotation.from_matrix(t(mats)).as_quat().numpy()
    ref["out/Rotation.from_matrix_33.as_euler"] = transforms.Rotation.from_matrix(t(mats)).as_euler().numpy()
    ref["out/Rotation.from_quat_first.as_quat"] = transforms.Rotation.from_quat(t(quat_wxyz), scalar_last=False).as_quat().numpy()

    # forward kinematics
    ref["out/SMPL_ForwardKinematics.offsets"] = transforms.SMPL_ForwardKinematics().offsets.numpy()
    ref["out/SMPLHForwardKinematics.offsets"] = transforms.SMPLHForwardKinematics().offsets.numpy()
    ref["out/SMPL_ForwardKinematics.from_aa"] = transforms.SMPL_ForwardKinematics().from_aa(t(poses)).numpy()
    ref["out/SMPLHForwardKinematics.from_aa"] = transforms.SMPLHForwardKinematics().from_aa(t(poses)).numpy()
    ref["out/SMPL_ForwardKinematics.from_rotmat"] = transforms.SMPL_ForwardKinematics().from_rotmat(flat.clone()).numpy()
    parents, offsets = [-1, 0, 1, 1, 3], rng.normal(size=(5, 3))
    chain_poses = random_rotvecs(rng, 6 * 5).reshape(6, 15)
    chain_mats = R.from_rotvec(chain_poses.reshape(-1, 3)).as_matrix().reshape(6, 45)
    ref.update({"in/chain_offsets": offsets, "in/chain_mats": chain_mats})
    for left_mult in (False, True):
        for no_root in (False, True):
            fk = transforms.ForwardKinematics(t(offsets), parents, left_mult=left_mult, norm_idx=2, no_root=no_root)
            ref[f"out/ForwardKinematics.fk/{int(left_mult)}{int(no_root)}"] = fk.fk(t(chain_mats).clone()).numpy()  # 0.0.4 overwrote its input

    # Euler angles through scipy
    for seq in EULER_SEQS:
        ref[f"out/scipy_aa_to_euler/{seq}"] = transforms.scipy_aa_to_euler(aa, seq)
    euler = rng.uniform(-np.pi, np.pi, size=(32, 3))
    ref["in/euler"] = euler
    for seq in EULER_SEQS:
        ref[f"out/scipy_euler_to_aa/{seq}"] = transforms.scipy_euler_to_aa(euler, seq)

    # losses
    out, target = np.ascontiguousarray(poses[:, :63]), np.ascontiguousarray(np.roll(poses, 1, axis=0)[:, :63] * 0.9)
    ref.update({"in/loss_out": out, "in/loss_target": target})
    ref["out/aa_cosine"] = losses.aa_cosine(t(out), t(target)).numpy()
    ref["out/aa_cosine_3d"] = losses.aa_cosine(t(out)[:, None], t(target)[:, None]).numpy()
    m_out = t(R.from_rotvec(out.reshape(-1, 3)).as_matrix().reshape(4, 21, 3, 3))
    m_target = t(R.from_rotvec(target.reshape(-1, 3)).as_matrix().reshape(4, 21, 3, 3))
    for reduction in ("none", "mean", "batchmean"):
        ref[f"out/GeodesicLossR/{reduction}"] = losses.GeodesicLossR(reduction=reduction)(m_out, m_target).numpy()
    ref["out/GeodesicLossSPL"] = losses.GeodesicLossSPL()(m_out, m_target).numpy()
    six = rng.normal(size=(4, 21 * 6))
    ref["in/six"] = six
    ref["out/ContinuousRotReprDecoder"] = losses.ContinuousRotReprDecoder()(t(six)).numpy()
    ref["out/euler_angle_mse"] = losses.euler_angle_mse(m_out.reshape(4, -1), m_target.reshape(4, -1)).numpy()
    positions, target_positions = rng.normal(size=(5, 21, 3)) * 0.1, rng.normal(size=(5, 21, 3)) * 0.1
    ref.update({"in/positions": positions, "in/target_positions": target_positions})
    ref["out/PositionalLossSPL"] = losses.PositionalLossSPL(None)(positions=t(positions), target_positions=t(target_positions)).numpy()
    for thresh in (0.05, 0.15, 0.3):
        ref[f"out/PCK_SPL/{thresh}"] = losses.PCK_SPL(None)(positions=t(positions), target_positions=t(target_positions), thresh=thresh).numpy()
    pck, thresholds = np.sort(rng.random(12)), np.linspace(0, 0.3, 12)
    ref.update({"in/pck": pck, "in/pck_thresholds": thresholds})
    ref["out/calculate_auc"] = np.array([losses.calculate_auc(pck, thresholds, n) for n in (1, 5, 6, 11, 12, 17, 18, 30)])
    angles = rng.uniform(-np.pi, np.pi - 1e-9, size=(6, 9))
    ref["in/angles"] = angles
    ref["out/discretize/16"] = losses.discretize(t(angles), 16).numpy()
    ref["out/discretize/7_not_centered"] = losses.discretize(t(angles) + np.pi, 7, zero_centered=False).numpy()
    logits = torch.log_softmax(t(rng.normal(size=(6, 9, 16))), -1)
    ref["in/logits"] = logits.numpy()
    ref["out/DiscretizedEulerLoss"] = losses.DiscretizedEulerLoss(16)(logits, t(angles)).numpy()
    pose_target = t(poses[:2, :63] * 0.5).reshape(2, 1, 63).repeat(1, 3, 1)
    aa_out = pose_target * 1.1 + 0.01
    dec = t(R.from_rotvec(aa_out.reshape(-1, 3).numpy()).as_matrix().reshape(2, 3, 21, 3, 3))
    dec_target = t(R.from_rotvec(pose_target.reshape(-1, 3).numpy()).as_matrix().reshape(2, 3, 21, 3, 3))
    logged = {}
    loss = losses.VPoserLikelihood(LinearBody())(dec, aa_out, pose_target, dec_target, callback=logged.update)
    ref["out/VPoserLikelihood"] = loss.numpy()
    for name, value in logged.items(): ref[f"out/VPoserLikelihood.callback/{name}"] = value.numpy()

    # DIP
    sparse = R.from_rotvec(random_rotvecs(rng, 3 * 15)).as_matrix().reshape(3, 135)
    ref["in/sparse"] = sparse
    ref["out/sparse_to_full/rotmat"] = dips.sparse_to_full(t(sparse), transforms.SMPL_MAJOR_JOINTS, 24, rep="rotmat").numpy()
    sparse_aa = R.from_matrix(sparse.reshape(-1, 3, 3)).as_rotvec().reshape(3, 45)
    ref["out/sparse_to_full/aa"] = dips.sparse_to_full(t(sparse_aa), transforms.SMPL_MAJOR_JOINTS, 24, rep="aa").numpy()
    ref["out/sparse_to_full/quat"] = dips.sparse_to_full(t(quat_wxyz[:45].reshape(3, 60)), transforms.SMPL_MAJOR_JOINTS, 24, rep="quat").numpy()
    ref["out/SMPL_ForwardKinematics_Sparse.from_rotmat"] = dips.SMPL_ForwardKinematics_Sparse().from_rotmat(t(sparse)).numpy()
    ref["out/SMPL_ForwardKinematics_Sparse.from_aa"] = dips.SMPL_ForwardKinematics_Sparse().from_aa(t(sparse_aa)).numpy()

    # per-file statistics of a small synthetic sequence file
    seq_poses, seq_trans = rng.normal(size=(20, 156)) * 0.3, rng.normal(size=(20, 3))
    ref.update({"in/seq_poses": seq_poses, "in/seq_trans": seq_trans})
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "seq_poses.npz", poses=seq_poses, trans=seq_trans)
        _, (mean, std, n) = features.calculate_stats(str(Path(tmp) / "seq_poses.npz"))
    ref.update({"out/calculate_stats/mean": mean, "out/calculate_stats/std": std, "out/calculate_stats/n": np.array(n)})
    return ref


def record_real(npz_path, out_path):
    "0.0.4's forward kinematics (first 72 pose numbers) and per-file statistics of one real AMASS file."
    with np.load(npz_path) as npz: poses = torch.as_tensor(np.ascontiguousarray(npz["poses"][:, :72]))  # 0.0.4 needed contiguous input
    _, (mean, std, n) = features.calculate_stats(str(npz_path))
    np.savez(out_path, smpl=transforms.SMPL_ForwardKinematics().from_aa(poses).numpy(),
             smplh=transforms.SMPLHForwardKinematics().from_aa(poses).numpy(), mean=mean, std=std, n=np.array(n))


if __name__ == "__main__":
    if importlib.metadata.version("llamass") != "0.0.4": sys.exit(f"needs llamass 0.0.4, found {importlib.metadata.version('llamass')}")
    parser = argparse.ArgumentParser(description="Record llamass 0.0.4's outputs for the compatibility tests.")
    parser.add_argument("--real", nargs=2, metavar=("NPZ", "OUT"), help="record 0.0.4's numbers on one real AMASS file into OUT")
    args = parser.parse_args()
    if args.real: record_real(*args.real)
    else:
        OUT.parent.mkdir(exist_ok=True)
        np.savez_compressed(OUT, **record(np.random.default_rng(2021)))
        print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
