"""llamass.humanml3d_data: HumanML3D's frames, names, features and files from an AMASS tree, checked against a
transcription of raw_pose_processing's frame selection and against llamass.humanml3d computed independently."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import humanml3d_reference as ref
from llamass import humanml3d as h
from llamass.humanml3d_data import HumanML3D, humanml3d_plan, source_frames, write_humanml3d
from llamass.index import index_sequences
from llamass.synthetic import stageii_sequence, synthetic_sequence, write_tree
from test_humanml3d import write_body_model

ROWS = [("./pose_data/CMU/01/01_01_poses.npy", 3, 43, "000010.npy"),
        ("./pose_data/humanact12/humanact12/P01G01R01F0001T0064A0101.npy", 0, 64, "000011.npy"),
        ("./pose_data/KIT/3/kick_poses.npy", 0, 10, "000012.npy"),
        ("./pose_data/MPI_HDM05/bk/HDM_bk_01-01_01_120_poses.npy", 2, 30, "000013.npy"),
        ("./pose_data/CMU/01/missing_poses.npy", 0, 10, "000014.npy"),
        ("./pose_data/CMU/01/01_02_poses.npy", 29, 500, "000015.npy"),
        ("./pose_data/Transitions_mocap/mazen_c3d/walk_poses.npy", 0, 20, "000016.npy")]


def raw_pose_frames(n_frames, fps, source_path, start, end):
    "The frames raw_pose_processing keeps, transcribed: [::int(fps / 20)], its per-dataset trims (by substring), [start:end]."
    data = np.arange(n_frames)[::int(fps / 20)]
    for name, seconds in (("Eyes_Japan_Dataset", 3), ("MPI_HDM05", 3), ("TotalCapture", 1), ("MPI_Limits", 1), ("Transitions_mocap", 0.5)):
        if name in source_path: data = data[int(seconds * 20):]
    return data[start:end]


def tree(root, newer=False):
    "An AMASS tree holding the sequences ROWS name (legacy names, or the newer release's folder and file names)."
    files = {"CMU/01/01_01_poses.npz": synthetic_sequence(400, seed=1, gender="male"),
             "CMU/01/01_02_poses.npz": synthetic_sequence(200, seed=2, gender="female", framerate=60.0),
             "MPI_HDM05/bk/HDM_bk_01-01_01_120_poses.npz": synthetic_sequence(700, seed=3),
             "Transitions_mocap/mazen_c3d/walk_poses.npz": synthetic_sequence(500, seed=4, framerate=100.0)}
    if newer:
        files = {"CMU/01/01_01_stageii.npz": stageii_sequence(400, "smplh", seed=1, gender="male"),
                 "CMU/01/01_02_stageii.npz": stageii_sequence(200, "smplh", seed=2, gender="female", framerate=60.0),
                 "HDM05/bk/HDM_bk_01-01_01_120_stageii.npz": stageii_sequence(700, "smplh", seed=3, gender="male"),
                 "Transitions/mazen_c3d/walk_stageii.npz": stageii_sequence(500, "smplh", seed=4, gender="male", framerate=100.0)}
    write_tree(root, files)
    return root


@pytest.fixture
def humanml3d_files(tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("source_path,start_frame,end_frame,new_name\n" + "".join(f"{p},{a},{b},{n}\n" for p, a, b, n in ROWS))
    texts = tmp_path / "texts"
    texts.mkdir()
    for _, _, _, name in ROWS: (texts / name.replace(".npy", ".txt")).write_text(f"caption of {name}#tok/NOUN#0.0#0.0\n")
    return index, texts


def test_frames_match_raw_pose_processing():
    for n_frames, fps, path in ((700, 120.0, "MPI_HDM05/x"), (500, 100.0, "Transitions_mocap/y"), (1000, 59.94, "CMU/z"),
                                (900, 250.0, "Eyes_Japan_Dataset/w"), (300, 60.0, "TotalCapture/v"), (300, 120.0, "MPI_Limits/u")):
        for start, end in ((0, 10), (3, 1000), (50, 60)):
            subdataset = path.split("/")[0]
            assert source_frames(n_frames, fps, subdataset, start, end).tolist() == raw_pose_frames(n_frames, fps, path, start, end).tolist()


@pytest.mark.parametrize("newer", [False, True])
def test_plan_names_frames_and_reasons(tmp_path, humanml3d_files, newer):
    index = index_sequences(tree(tmp_path / "amass", newer), progress=False)
    motions, skipped = humanml3d_plan(index, humanml3d_files[0])
    assert [m.name for m in motions] == ["000010", "M000010", "000013", "M000013", "000015", "M000015", "000016", "M000016"]
    assert motions[2].frames.tolist() == raw_pose_frames(700, 120.0, "MPI_HDM05", 2, 30).tolist()
    assert len(motions[4].frames) == len(range(0, 200, 3)) - 29      # 01_02: every 3rd of 200 frames at 60 fps, from 29 to the end
    assert {(n, r) for n, _, r in skipped} == {("000011", "HumanAct12 motion (not part of AMASS)"),
                                               ("000012", "sub-dataset KIT is not in the AMASS tree"),
                                               ("000014", "sequence not in the AMASS tree")}


def test_items_equal_features_of_the_selected_frames(tmp_path, humanml3d_files):
    root, models = tree(tmp_path / "amass"), tmp_path / "models"
    for seed, gender in enumerate(("male", "female")): write_body_model(models / "smplh" / gender / "model.npz", seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = HumanML3D(root, humanml3d_files[0], texts=humanml3d_files[1], body_models=models, progress=False)
    item, mirrored = data[2], data[3]
    assert item["name"] == "000013" and mirrored["name"] == "M000013"
    arrays = dict(np.load(root / "MPI_HDM05/bk/HDM_bk_01-01_01_120_poses.npz"))
    frames = raw_pose_frames(700, 120.0, "MPI_HDM05", 2, 30)
    params = {"poses": arrays["poses"][frames], "trans": arrays["trans"][frames], "betas": arrays["betas"], "gender": np.array(-1)}
    joints = h.humanml3d_joints(params, models)
    assert np.abs(item["features"] - ref.process_file(joints, ref_target())).max() < 1e-4
    assert np.abs(mirrored["features"] - ref.process_file(ref.swap_left_right(joints), ref_target())).max() < 1e-4
    assert np.abs(item["joints"] - ref.recover_from_ric(item["features"].astype(np.float64))).max() < 1e-5
    assert item["captions"] == [("caption of 000013.npy", "tok/NOUN", 0.0, 0.0)] == mirrored["captions"]
    assert item["features"].dtype == np.float32 and item["features"].shape == (27, 263)


def ref_target():
    return np.array(h.HUMANML3D_DIRECTIONS, float) * np.array(h.HUMANML3D_BONE_LENGTHS)[:, None]


def test_write_resume_and_stats(tmp_path, humanml3d_files):
    root, dst = tree(tmp_path / "amass"), tmp_path / "HumanML3D"
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("000010\nM000010\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = write_humanml3d(root, dst, humanml3d_files[0], texts=humanml3d_files[1], splits=splits, n_jobs=1, progress=False)
        assert (first["made"], first["skipped"], first["texts"], first["splits"]) == (8, 3, 7, ["train.txt"])
        before = np.load(dst / "new_joint_vecs" / "000015.npy")
        (dst / "new_joints" / "000015.npy").unlink()                  # an interrupted run: one file missing
        again = write_humanml3d(root, dst, humanml3d_files[0], n_jobs=1, progress=False)
    assert (again["made"], again["already there"]) == (1, 7)
    assert np.array_equal(np.load(dst / "new_joint_vecs" / "000015.npy"), before)
    assert not list(dst.rglob("*.tmp"))
    names = sorted(p.stem for p in (dst / "new_joint_vecs").iterdir())
    data = np.concatenate([np.load(dst / "new_joint_vecs" / f"{n}.npy").astype(np.float64) for n in names])
    std = data.std(0)
    for a, b in ((0, 1), (1, 3), (3, 4), (4, 67), (67, 193), (193, 259), (259, 263)): std[a:b] = std[a:b].mean()
    assert np.allclose(np.load(dst / "Mean.npy"), data.mean(0), atol=1e-5) and np.allclose(np.load(dst / "Std.npy"), std, atol=1e-5)
    assert "sub-dataset KIT" in (dst / "skipped.csv").read_text()


def run_cli(*args):
    return subprocess.run([sys.executable, "-c", "from llamass.humanml3d_data import amass_humanml3d; amass_humanml3d()", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_cli(tmp_path, humanml3d_files):
    root = tree(tmp_path / "amass")
    done = run_cli(root, tmp_path / "out", "--index", humanml3d_files[0], "--jobs", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "8 motions made" in done.stdout and "3 index rows skipped" in done.stdout
    assert len(list((tmp_path / "out" / "new_joints").iterdir())) == 8
    missing = run_cli(root, tmp_path / "out2", "--index", tmp_path / "nowhere.csv", "--quiet")
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0 and "nowhere.csv" in missing.stderr
    assert "examples" in run_cli("--help").stdout
