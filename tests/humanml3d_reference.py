"""A per-clip transcription of HumanML3D's `process_file` (motion_representation.ipynb) and
`recover_from_ric`, in plain numpy float64 (vectorized over the frames of one clip, as HumanML3D's own code is; loops over clips, chains
and joints), written from its algorithm: the thing `llamass.humanml3d` is checked against.

It follows HumanML3D step by step, quirks included: quaternions (w, x, y, z), shortest-arc quaternions, inverse
kinematics chain by chain (the hips unpacked as (l_hip, r_hip) from (r_hip, l_hip, ...)), forward kinematics with the
target offsets, scipy's gaussian_filter1d on the facing direction, 6D from the matrix columns.
"""
import numpy as np
from scipy.ndimage import gaussian_filter1d

RAW_OFFSETS = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
                        [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
                        [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]], dtype=np.float64)
CHAINS = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]
FACE = [2, 1, 17, 16]          # as HumanML3D passes it: r_hip, l_hip, sdr_r, sdr_l
LEFT_FOOT, RIGHT_FOOT = [7, 10], [8, 11]
LEG = (5, 8)


def parents():
    out = [-1] * 22
    for chain in CHAINS:
        for a, b in zip(chain[:-1], chain[1:]): out[b] = a
    return out


def q_mul(q, r):
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def q_inv(q):
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def q_rot(q, v):
    vec = q[..., 1:]
    uv = np.cross(vec, v)
    return v + 2 * (q[..., :1] * uv + np.cross(vec, uv))


def q_between(u, v):
    w = np.sqrt((u ** 2).sum(-1, keepdims=True) * (v ** 2).sum(-1, keepdims=True)) + (u * v).sum(-1, keepdims=True)
    q = np.concatenate([w, np.cross(u, v)], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def q_matrix(q):
    w, x, y, z = np.moveaxis(q, -1, 0)
    s = 2.0 / (q * q).sum(-1)
    return np.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
                     s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
                     s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1).reshape(q.shape[:-1] + (3, 3))


def offsets_of(frame):
    "Rest offsets of one frame's skeleton: raw direction times the bone's length."
    par, out = parents(), RAW_OFFSETS.copy()
    for j in range(1, 22): out[j] = np.linalg.norm(frame[j] - frame[par[j]]) * RAW_OFFSETS[j]
    return out


def inverse_kinematics(joints, smooth_forward):
    "HumanML3D's Skeleton.inverse_kinematics_np: quaternions (T, 22, 4), chain by chain."
    l_hip, r_hip, sdr_r, sdr_l = FACE          # the quirk: unpacked in another order than given
    across = joints[:, r_hip] - joints[:, l_hip] + joints[:, sdr_r] - joints[:, sdr_l]
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward = np.cross(np.array([[0.0, 1.0, 0.0]]), across)
    if smooth_forward: forward = gaussian_filter1d(forward, 20, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    root = q_between(forward, np.broadcast_to([0.0, 0.0, 1.0], forward.shape))
    quats = np.zeros(joints.shape[:-1] + (4,))
    quats[:, 0] = root
    for chain in CHAINS:
        R = root
        for a, b in zip(chain[:-1], chain[1:]):
            v = joints[:, b] - joints[:, a]
            arc = q_between(np.broadcast_to(RAW_OFFSETS[b], v.shape), v / np.linalg.norm(v, axis=-1, keepdims=True))
            quats[:, b] = q_mul(q_inv(R), arc)
            R = q_mul(R, quats[:, b])
    return quats


def forward_kinematics(quats, root_positions, offsets):
    joints = np.zeros(quats.shape[:-1] + (3,))
    joints[:, 0] = root_positions
    for chain in CHAINS:
        R = quats[:, 0]
        for a, b in zip(chain[:-1], chain[1:]):
            R = q_mul(R, quats[:, b])
            joints[:, b] = q_rot(R, np.broadcast_to(offsets[b], R.shape[:-1] + (3,))) + joints[:, a]
    return joints


def uniform_skeleton(positions, target_offsets):
    source = offsets_of(positions[0])
    scale = (np.abs(target_offsets[LEG[0]]).max() + np.abs(target_offsets[LEG[1]]).max()) / \
            (np.abs(source[LEG[0]]).max() + np.abs(source[LEG[1]]).max())
    quats = inverse_kinematics(positions, smooth_forward=False)
    return forward_kinematics(quats, positions[:, 0] * scale, target_offsets)


def process_file(positions, target_offsets, feet_threshold=0.002):
    "HumanML3D's features (T-1, 263) of one motion (T, 22, 3)."
    positions = uniform_skeleton(np.array(positions, dtype=np.float64), target_offsets)
    positions[:, :, 1] -= positions.min(axis=0).min(axis=0)[1]
    first = positions[0].copy()
    positions = positions - first[0] * np.array([1.0, 0.0, 1.0])
    r_hip, l_hip, sdr_r, sdr_l = FACE
    across = first[r_hip] - first[l_hip] + first[sdr_r] - first[sdr_l]
    across = across / np.linalg.norm(across)
    forward = np.cross([0.0, 1.0, 0.0], across)
    forward = forward / np.linalg.norm(forward)
    turn = q_between(forward, np.array([0.0, 0.0, 1.0]))
    positions = q_rot(np.broadcast_to(turn, positions.shape[:-1] + (4,)), positions)
    global_positions = positions.copy()
    T = len(positions)
    feet = positions[:, LEFT_FOOT + RIGHT_FOOT]
    contacts = (((feet[1:] - feet[:-1]) ** 2).sum(-1) < feet_threshold).astype(np.float64)
    quats = inverse_kinematics(positions, smooth_forward=True)
    six_d = np.concatenate([q_matrix(quats)[..., 0], q_matrix(quats)[..., 1]], -1)
    r_rot = quats[:, 0].copy()
    velocity = q_rot(r_rot[1:], positions[1:, 0] - positions[:-1, 0])
    r_velocity = q_mul(r_rot[1:], q_inv(r_rot[:-1]))
    local = positions.copy()
    local[..., 0] -= positions[:, 0:1, 0]
    local[..., 2] -= positions[:, 0:1, 2]
    local = q_rot(np.repeat(r_rot[:, None], 22, axis=1), local)
    root_data = np.concatenate([np.arcsin(r_velocity[:, 2:3]), velocity[:, [0, 2]], local[:-1, 0, 1:2]], -1)
    local_velocity = q_rot(np.repeat(r_rot[:-1, None], 22, axis=1), global_positions[1:] - global_positions[:-1]).reshape(T - 1, -1)
    return np.concatenate([root_data, local[:-1, 1:].reshape(T - 1, -1), six_d[:-1, 1:].reshape(T - 1, -1),
                           local_velocity, contacts], -1)


def recover_from_ric(data):
    "HumanML3D's recover_from_ric on one motion (T, 263) -> (T, 22, 3)."
    T = len(data)
    angle = np.concatenate([[0.0], np.cumsum(data[:-1, 0])])
    quat = np.stack([np.cos(angle), np.zeros(T), np.sin(angle), np.zeros(T)], -1)
    step = np.zeros((T, 3))
    step[1:, [0, 2]] = data[:-1, 1:3]
    root = np.cumsum(q_rot(q_inv(quat), step), axis=0)
    root[:, 1] = data[:, 3]
    joints = data[:, 4:67].reshape(T, 21, 3)
    joints = q_rot(np.broadcast_to(q_inv(quat)[:, None], (T, 21, 4)), joints)
    joints[..., 0] += root[:, None, 0]
    joints[..., 2] += root[:, None, 2]
    return np.concatenate([root[:, None], joints], 1)


def swap_left_right(joints):
    out = joints.copy()
    out[..., 0] *= -1
    right, left = [2, 5, 8, 11, 14, 17, 19, 21], [1, 4, 7, 10, 13, 16, 18, 20]
    out[:, right], out[:, left] = out[:, left].copy(), out[:, right].copy()
    return out
