"""Motion transforms: mirroring twice is the identity, forward kinematics commutes with canonicalization and mirroring,
canonical frames are canonical, velocities and contacts match per-frame references."""
import numpy as np
import pytest
import roma
import torch
from hypothesis import given, settings, strategies as st

from llamass.features import FINGER_JOINT_NAMES
from llamass.motion import (BODY_JOINTS, FOOT_JOINTS, JOINT_NAMES, UP_AXES, about_up, canonicalize, foot_contacts, heading,
                            joint_velocities, mirror, mirror_points, mirror_where, move_body, move_points)
from llamass.transforms import Skeleton, joint_positions

F64 = torch.float64


def parents_of(names):
    "The parent of each joint of SMPL+H / SMPL-X (-1 for the pelvis)."
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    parents += [15 for n in names[22:] if n in ("jaw", "left_eye", "right_eye")]
    for wrist in (20, 21):
        for k in range(len(FINGER_JOINT_NAMES)): parents.append(wrist if k % 3 == 0 else len(parents) - 1)
    return parents


def symmetric_skeleton(names, seed=0):
    "A random rest skeleton (J, 3) that is its own mirror image (pelvis on x = 0)."
    g = torch.Generator().manual_seed(seed)
    rest = torch.randn(len(names), 3, generator=g, dtype=F64) * 0.3
    left = [i for i, n in enumerate(names) if n.startswith("left_")]
    rest[[names.index(names[i].replace("left_", "right_")) for i in left]] = rest[left] * torch.tensor([-1.0, 1, 1], dtype=F64)
    middle = [i for i, n in enumerate(names) if not n.startswith(("left_", "right_"))]
    rest[middle, 0] = 0.0
    return rest


def fk(poses, trans, rest, parents):
    "Joint positions (..., T, J, 3) by llamass's forward kinematics on the skeleton (parents, rest)."
    return joint_positions(poses, Skeleton(parents, rest), trans)


def random_clips(model, batch, frames, seed):
    "Random poses (scaled to plausible angles) and translations around 1 m above the floor."
    g = torch.Generator().manual_seed(seed)
    width = 3 * len(JOINT_NAMES[model])
    poses = torch.randn(batch, frames, width, generator=g, dtype=F64) * 0.5
    poses[..., :3] = roma.random_rotvec(batch * frames, dtype=F64).reshape(batch, frames, 3)
    trans = torch.randn(batch, frames, 3, generator=g, dtype=F64) * 2 + torch.tensor([0, 0, 1.0], dtype=F64)
    return poses, trans


models, ups = st.sampled_from(["smplh", "smplx"]), st.sampled_from(list(UP_AXES))
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=10, deadline=None)
@given(model=models, up=ups, seed=seeds, frames=st.integers(1, 6))
def test_fk_of_canonicalized_parameters_equals_canonicalized_joints(model, up, seed, frames):
    names = JOINT_NAMES[model]
    rest, parents = symmetric_skeleton(names, seed) + torch.tensor([0.02, -0.2, 0.03], dtype=F64), parents_of(names)
    poses, trans = random_clips(model, 2, frames, seed)
    batch = {"poses": poses, "trans": trans, "joints": fk(poses, trans, rest, parents)}
    canon = canonicalize(batch, up=up, pelvis=rest[0])
    assert torch.allclose(fk(canon["poses"], canon["trans"], rest, parents), canon["joints"], atol=1e-5, rtol=0)
    ground = torch.arange(3) != UP_AXES[up]
    assert torch.allclose(canon["joints"][:, 0, 0, ground], torch.zeros(2, 2, dtype=F64), atol=1e-9)  # first pelvis over the origin
    assert torch.allclose(heading(roma.rotvec_to_rotmat(canon["poses"][:, 0, :3]), up), torch.zeros(2, dtype=F64), atol=1e-7)
    assert torch.allclose(canon["joints"][..., UP_AXES[up]], batch["joints"][..., 2], atol=1e-9)  # heights kept
    assert torch.equal(canon["poses"][..., 3:], poses[..., 3:])
    if up == "z":   # canonical already: canonicalizing again changes nothing (a Y-up result is no longer AMASS's Z-up input)
        again = canonicalize(canon, up=up, pelvis=rest[0])
        for key in ("trans", "joints"): assert torch.allclose(again[key], canon[key], atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(up=ups, seed=seeds)
def test_canonicalization_on_smplh_mean_skeleton(up, seed):
    skeleton = Skeleton.smplh_body()   # SMPL+H's own (asymmetric) rest joints, 22 body joints
    poses, trans = random_clips("smplh", 3, 5, seed)
    batch = {"poses": poses, "trans": trans, "joints": joint_positions(poses, skeleton, trans)}
    canon = canonicalize(batch, up=up, pelvis=skeleton.rest_joints[0])
    assert torch.allclose(joint_positions(canon["poses"], skeleton, canon["trans"]), canon["joints"], atol=1e-5, rtol=0)
    assert torch.allclose(canon["joints"][:, 0, 0, torch.arange(3) != UP_AXES[up]], torch.zeros(3, 2, dtype=F64), atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(up=ups, seed=seeds, angle=st.floats(-3.1, 3.1), dx=st.floats(-5, 5), dy=st.floats(-5, 5))
def test_a_clip_moved_about_the_vertical_has_the_same_canonical_form(up, seed, angle, dx, dy):
    names = JOINT_NAMES["smplh"]
    rest, parents = symmetric_skeleton(names, seed), parents_of(names)
    poses, trans = random_clips("smplh", 1, 4, seed)
    batch = {"poses": poses, "trans": trans, "joints": fk(poses, trans, rest, parents)}
    turn, slide = about_up(torch.tensor([angle], dtype=F64)), torch.tensor([[dx, dy, 0.0]], dtype=F64)
    root, moved_trans = move_body(poses[..., :3], trans, turn, slide, rest[0])
    moved = {"poses": torch.cat([root, poses[..., 3:]], -1), "trans": moved_trans, "joints": move_points(batch["joints"], turn, slide)}
    a, b = canonicalize(batch, up=up, pelvis=rest[0]), canonicalize(moved, up=up, pelvis=rest[0])
    for key in ("trans", "joints"): assert torch.allclose(a[key], b[key], atol=1e-8)
    assert torch.allclose(roma.rotvec_to_rotmat(a["poses"][..., :3]), roma.rotvec_to_rotmat(b["poses"][..., :3]), atol=1e-8)


@settings(max_examples=10, deadline=None)
@given(model=models, seed=seeds, split=st.booleans())
def test_mirroring_twice_is_the_identity_and_fk_commutes_with_mirroring(model, seed, split):
    names = JOINT_NAMES[model]
    rest, parents = symmetric_skeleton(names, seed), parents_of(names)
    poses, trans = random_clips(model, 2, 3, seed)
    joints = fk(poses, trans, rest, parents)
    contacts = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(seed)) > 0.5
    batch = {"poses": poses, "trans": trans, "joints": joints, "joint_velocities": joint_velocities(joints, 30.0),
             "foot_contacts": contacts, "gender": torch.ones(2, 3, 1)}
    if split:
        from llamass.dataset import POSE_SLICES
        batch.update({k: poses[..., a:b] for k, (a, b) in POSE_SLICES[model].items()})
        del batch["poses"]
    twice = mirror(mirror(batch, model=model), model=model)
    for key in batch: assert torch.equal(twice[key], batch[key]), key
    mirrored = mirror(batch, model=model, pelvis=rest[0])
    mirrored_poses = mirrored["poses"] if not split else torch.cat([mirrored[k] for k in POSE_SLICES[model]], -1)
    assert torch.allclose(fk(mirrored_poses, mirrored["trans"], rest, parents), mirror_points(joints, names), atol=1e-9)
    assert torch.allclose(mirrored["joint_velocities"], joint_velocities(mirrored["joints"], 30.0), atol=1e-9)
    left, right = [FOOT_JOINTS.index(f) for f in ("left_ankle", "left_foot")], [FOOT_JOINTS.index(f) for f in ("right_ankle", "right_foot")]
    assert torch.equal(mirrored["foot_contacts"][..., left], contacts[..., right])


def test_mirror_where_mirrors_exactly_the_chosen_clips():
    poses, trans = random_clips("smplx", 6, 4, 7)
    batch = {"poses": poses, "trans": trans, "foot_contacts": torch.rand(6, 4, 4) > 0.5, "fps": torch.full((6,), 30.0)}
    which = torch.tensor([True, False, False, True, True, False])
    half, full = mirror_where(batch, which), mirror(batch)
    for key in batch:
        assert torch.equal(half[key][which], full[key][which]) and torch.equal(half[key][~which], batch[key][~which]), key


def test_mirroring_keeps_a_canonical_clip_canonical():
    names = JOINT_NAMES["smplh"]
    rest, parents = symmetric_skeleton(names, 3), parents_of(names)
    poses, trans = random_clips("smplh", 4, 5, 3)
    canon = canonicalize({"poses": poses, "trans": trans, "joints": fk(poses, trans, rest, parents)}, pelvis=rest[0])
    mirrored = mirror(canon, pelvis=rest[0])
    again = canonicalize(mirrored, pelvis=rest[0])   # canonicalize reads AMASS's Z-up: a Y-up result is not its input
    for key in ("trans", "joints"): assert torch.allclose(again[key], mirrored[key], atol=1e-8)
    assert not torch.allclose(mirrored["joints"], canon["joints"])


def test_smplh_mean_skeleton_mirrors_within_its_asymmetry():
    "SMPL+H's rest skeleton is up to 10 mm asymmetric: FK of mirrored parameters differs from the mirror image by about that, chained."
    skeleton = Skeleton.smplh_body()
    asymmetry = (skeleton.rest_joints - mirror_points(skeleton.rest_joints, BODY_JOINTS)).norm(dim=-1).max()
    poses, trans = random_clips("smplh", 4, 6, 4)
    mirrored = mirror({"poses": poses, "trans": trans}, pelvis=skeleton.rest_joints[0])
    error = (joint_positions(mirrored["poses"], skeleton, mirrored["trans"])
             - mirror_points(joint_positions(poses, skeleton, trans), BODY_JOINTS)).norm(dim=-1)
    assert 0.005 < asymmetry < 0.015
    assert asymmetry / 2 < error.max() < 0.05


@settings(max_examples=15, deadline=None)
@given(seed=seeds, frames=st.integers(1, 12), fps=st.sampled_from([20.0, 30.0, 120.0]),
       height=st.floats(0.01, 0.3), speed=st.floats(0.05, 3.0), lowest=st.booleans())
def test_velocities_and_contacts_match_a_per_frame_reference(seed, frames, fps, height, speed, lowest):
    g = torch.Generator().manual_seed(seed)
    joints = torch.rand(2, frames, 22, 3, generator=g, dtype=F64) * torch.tensor([1.0, 1.0, 0.2], dtype=F64)
    velocities = joint_velocities(joints, fps)
    x = joints.numpy()
    for t in range(frames):
        before, after = max(t - 1, 0), min(t + 1, frames - 1)
        expected = (x[:, after] - x[:, before]) / max(after - before, 1) * fps
        assert np.allclose(velocities[:, t].numpy(), expected)
    contacts = foot_contacts(joints, fps, height=height, speed=speed, floor="lowest" if lowest else 0.0)
    feet = [BODY_JOINTS.index(f) for f in FOOT_JOINTS]
    for b in range(2):
        floor = x[b][:, feet, 2].min() if lowest else 0.0
        for t in range(frames):
            for k, j in enumerate(feet):
                low = x[b, t, j, 2] - floor < height
                slow = np.linalg.norm(velocities[b, t, j].numpy()) < speed
                assert bool(contacts[b, t, k]) == (low and slow)


def test_y_up_contacts_after_canonicalization_equal_z_up_contacts():
    names = JOINT_NAMES["smplh"]
    rest, parents = symmetric_skeleton(names, 5) + torch.tensor([0, 1.0, 0], dtype=F64), parents_of(names)
    poses, trans = random_clips("smplh", 2, 8, 5)
    poses = poses * 0.1
    batch = {"poses": poses, "trans": trans * torch.tensor([1, 1, 0.1], dtype=F64), "joints": fk(poses, trans, rest, parents)}
    y_up = canonicalize(batch, up="y", pelvis=rest[0])
    kwargs = dict(height=0.5, speed=20.0)
    assert torch.equal(foot_contacts(y_up["joints"], 30.0, up="y", **kwargs), foot_contacts(batch["joints"], 30.0, up="z", **kwargs))


def test_batch_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs 'trans'"): canonicalize({"poses": torch.zeros(2, 156)})
    with pytest.raises(ValueError, match="up must be one of"): canonicalize({"poses": torch.zeros(2, 156), "trans": torch.zeros(2, 3)}, up="x")
    with pytest.raises(ValueError, match="150 values per frame"): mirror({"poses": torch.zeros(2, 150)})
    with pytest.raises(ValueError, match="expected 52 joints"): mirror_points(torch.zeros(2, 50, 3), JOINT_NAMES["smplh"])
