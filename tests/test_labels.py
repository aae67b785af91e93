"""Labels: synthetic BABEL and HumanML3D files in their published layouts; each clip gets exactly the segments overlapping it."""
import json
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from llamass.labels import (HUMANML3D_TRIM, clip_labels, concat_labels, has_labels, humanml3d_stride, read_babel,
                            read_humanml3d, sequence_key)

TREE_PATHS = ["CMU/01/01_01_poses.npz", "CMU/01/01_02_poses.npz", "BioMotionLab_NTroje/rub001/0000_walk_poses.npz",
              "ACCAD/Female1Running_c3d/C5 - walk to run_poses.npz"]
ARCHIVE = {"CMU": "CMU", "BioMotionLab_NTroje": "BMLrub", "ACCAD": "ACCAD"}  # BABEL's feat_p starts with the archive name


def babel_feat_p(tree_path):
    "BABEL's `feat_p` for a path of the unpacked tree: the archive name, then the tree path."
    return f"{ARCHIVE[tree_path.split('/')[0]]}/{tree_path}"


segment_ms = st.tuples(st.integers(0, 6000), st.integers(1, 3000)).map(lambda t: (t[0], t[0] + t[1]))  # [start, end) in ms


@st.composite
def babel_files(draw):
    "A BABEL json dict over some of TREE_PATHS, and the reference [(tree path, start ms, end ms, text)] of its segments."
    data, reference = {}, []
    for sid, path in enumerate(draw(st.lists(st.sampled_from(TREE_PATHS), unique=True, max_size=len(TREE_PATHS)))):
        dur_ms = draw(st.integers(500, 9000))
        segments = draw(st.lists(segment_ms, max_size=5))
        labels = [{"act_cat": [f"cat{sid}_{i}"], "end_t": e / 1000, "proc_label": f"s{sid}_{i}", "raw_label": "r",
                   "seg_id": f"id{sid}_{i}", "start_t": s / 1000} for i, (s, e) in enumerate(segments)]
        seq = {"anntr_id": "a", "babel_lid": "b", "mul_act": False,
               "labels": [{"act_cat": None, "proc_label": f"whole{sid}", "raw_label": "w", "seg_id": f"w{sid}"}]}
        data[str(sid)] = {"babel_sid": sid, "dur": dur_ms / 1000, "feat_p": babel_feat_p(path), "seq_ann": seq,
                          "frame_ann": {"anntr_id": "a", "babel_lid": "c", "mul_act": True, "labels": labels} if segments else None}
        reference += [(path, s, e, f"s{sid}_{i}") for i, (s, e) in enumerate(segments)] or [(path, 0, dur_ms, f"whole{sid}")]
    return data, reference


clips = st.lists(st.tuples(st.sampled_from(TREE_PATHS + ["CMU/02/02_01_poses.npz"]), st.integers(0, 1200),
                           st.integers(1, 300), st.sampled_from([30, 60, 100, 120])), min_size=1, max_size=12)


def covered(start_ms, end_ms, frame, fps):
    "Exactly: is `frame` at `fps` inside [start_ms, end_ms)?"
    t = Fraction(frame, fps)
    return Fraction(start_ms, 1000) <= t < Fraction(end_ms, 1000)


def reference_labels(reference, clip):
    "Brute force over the clip's frames: (text, first, end) in clip frames of each segment that covers one."
    path, start, length, fps = clip
    found = []
    for p, s, e, text in reference:
        frames = [f - start for f in range(start, start + length) if p == path and covered(s, e, f, fps)]
        if frames: found.append((text, frames[0], frames[-1] + 1))
    return sorted(found)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(babel=babel_files(), batch=clips)
def test_each_clip_gets_exactly_the_babel_segments_overlapping_it(tmp_path, babel, batch):
    data, reference = babel
    (tmp_path / "train.json").write_text(json.dumps(data))
    table = read_babel(tmp_path / "train.json")
    paths, starts, lengths, fps = zip(*batch)
    found = clip_labels(table, paths, starts, lengths, fps)
    lists = found.lists()
    for i, clip in enumerate(batch):
        got = sorted(zip(lists["label_text"][i], *np.asarray(lists["label_bounds"][i]).reshape(-1, 2).T.tolist()))
        assert got == reference_labels(reference, clip), clip
    assert np.all(np.diff(found.clip) >= 0)  # ordered by clip
    assert found.has_labels().tolist() == [bool(reference_labels(reference, c)) for c in batch]
    assert has_labels(table, paths, starts, lengths, fps).tolist() == found.has_labels().tolist()


def test_babel_keys_match_the_tree_and_the_newer_releases(tmp_path):
    data = {"1": {"babel_sid": 1, "dur": 2.0, "feat_p": "ACCAD/ACCAD/Female1Running_c3d/C5 - walk to run_poses.npz", "seq_ann": None,
                  "frame_ann": {"labels": [{"act_cat": ["run"], "start_t": 0, "end_t": 1, "proc_label": "run", "raw_label": "running", "seg_id": "x"}]}},
            "2": {"babel_sid": 2, "dur": 2.0, "feat_p": "BMLrub/BioMotionLab_NTroje/rub001/0000_walk_poses.npz", "seq_ann": None,
                  "frame_ann": {"labels": [{"act_cat": ["walk"], "start_t": 0, "end_t": 1, "proc_label": "walk", "raw_label": "walking", "seg_id": "y"}]}}}
    (tmp_path / "val.json").write_text(json.dumps(data))
    table = read_babel(tmp_path / "val.json")
    paths = ["ACCAD/Female1Running_c3d/C5 - walk to run_poses.npz", "ACCAD/Female1Running_c3d/C5_-_walk_to_run_stageii.npz",
             "BioMotionLab_NTroje/rub001/0000_walk_poses.npz", "BMLrub/rub001/0000_walk_stageii.npz", "CMU/01/01_01_poses.npz"]
    lists = clip_labels(table, paths, 0, 10, 120.0).lists()
    assert lists["label_text"] == [["run"], ["run"], ["walk"], ["walk"], []]
    assert lists["label_categories"][0] == [("run",)]
    assert sequence_key("train/CMU/01/01_01_poses.npz") == sequence_key("CMU/01/01_01_poses.npz")  # 20.1: a split folder is no part of it
    assert sequence_key("MyMocap/CMU/01_poses.npz") == "CMU/01"  # a first folder that is no sub-dataset, before one that is
    assert sequence_key("KIT/CMU/01_poses.npz") == "KIT/CMU/01"  # a sub-dataset's own folder named CMU: kept


def test_babel_extra_files_with_several_annotators(tmp_path):
    lab = lambda text, s, e: {"act_cat": [text], "start_t": s, "end_t": e, "proc_label": text, "raw_label": text, "seg_id": text}
    data = {"5": {"babel_sid": 5, "dur": 4.0, "feat_p": "CMU/CMU/01/01_01_poses.npz", "seq_anns": None,
                  "frame_anns": [{"labels": [lab("a", 0, 2)]}, {"labels": [lab("b", 1, 4)]}]}}
    (tmp_path / "extra_train.json").write_text(json.dumps(data))
    lists = clip_labels(read_babel(tmp_path / "extra_train.json"), ["CMU/01/01_01_poses.npz"], 150, 100, 100.0).lists()
    assert lists["label_text"] == [["a", "b"]]
    assert np.asarray(lists["label_bounds"][0]).tolist() == [[0, 50], [0, 100]]


HML_SOURCES = [("KIT/3/kick_high_left02_poses.npz", 100.0), ("MPI_HDM05/dg/HDM_dg_01_poses.npz", 120.0),
               ("Eyes_Japan_Dataset/aita/walk-01-aita_poses.npz", 250.0), ("CMU/143/143_09_poses.npz", 59.94),
               ("Transitions_mocap/mazen_c3d/walk_turn_poses.npz", 120.0)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.integers(0, len(HML_SOURCES) - 1), st.integers(0, 100), st.integers(1, 100)), min_size=1, max_size=8),
       batch=st.lists(st.tuples(st.integers(0, len(HML_SOURCES) - 1), st.integers(0, 3000), st.integers(1, 400)), min_size=1, max_size=8))
def test_each_clip_gets_exactly_the_humanml3d_motions_overlapping_it(tmp_path, rows, batch):
    lines = ["source_path,start_frame,end_frame,new_name"]
    lines += [f"./pose_data/{HML_SOURCES[s][0][:-4]}.npy,{a},{a + n},{i:06d}.npy" for i, (s, a, n) in enumerate(rows)]
    lines += ["./pose_data/humanact12/humanact12/P01G01R01F0069T0143A0102.npy,0,74,999999.npy"]
    (tmp_path / "index.csv").write_text("\n".join(lines) + "\n")
    table = read_humanml3d(tmp_path / "index.csv", dict(HML_SOURCES))
    assert len(table) == len(rows)
    paths = [HML_SOURCES[s][0] for s, _, _ in batch]
    fps = [HML_SOURCES[s][1] for s, _, _ in batch]
    lists = clip_labels(table, paths, [a for _, a, _ in batch], [n for _, _, n in batch], fps).lists()
    for i, (s, start, length) in enumerate(batch):
        path, rate = HML_SOURCES[s]
        stride, trim = humanml3d_stride(rate), HUMANML3D_TRIM.get(path.split("/")[0], 0)
        expected = []
        for j, (t, a, n) in enumerate(rows):   # motion j is source frames [(trim + a) * stride, (trim + a + n) * stride)
            first, stop = max((trim + a) * stride, start), min((trim + a + n) * stride, start + length)
            if t == s and first < stop: expected.append((f"{j:06d}.npy", first - start, stop - start))
        names = list(table.name[clip_labels(table, [path], [start], [length], [rate]).segment])
        got = sorted(zip(names, *np.asarray(lists["label_bounds"][i]).reshape(-1, 2).T.tolist()))
        assert got == sorted(expected)


def test_humanml3d_strides_and_trims():
    assert [humanml3d_stride(f) for f in (120, 100, 60, 59.94, 250, 30, 10)] == [6, 5, 3, 2, 12, 1, 1]
    assert HUMANML3D_TRIM == {"Eyes_Japan_Dataset": 60, "MPI_HDM05": 60, "TotalCapture": 20, "MPI_Limits": 20, "Transitions_mocap": 10}


def test_humanml3d_captions_narrowed_by_their_tags_and_tables_merge(tmp_path):
    (tmp_path / "index.csv").write_text("source_path,start_frame,end_frame,new_name\n./pose_data/KIT/3/kick_poses.npy,10,110,000007.npy\n")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "000007.txt").write_text("a kick.#a/DET kick/NOUN#0.0#0.0\nthen a step.#then/ADV step/NOUN#2.0#4.0\n")
    captions = read_humanml3d(tmp_path / "index.csv", {"KIT/3/kick_poses.npz": 100.0}, texts=tmp_path / "texts")
    assert (np.round(captions.start * 100).tolist(), np.round(captions.end * 100).tolist()) == ([50, 250], [550, 450])
    babel = tmp_path / "train.json"
    babel.write_text(json.dumps({"1": {"babel_sid": 1, "dur": 9.0, "feat_p": "KIT/KIT/3/kick_poses.npz", "seq_ann": None, "frame_ann": {
        "labels": [{"act_cat": ["kick"], "start_t": 0.5, "end_t": 1.5, "proc_label": "kick", "raw_label": "kick", "seg_id": "k"}]}}}))
    both = concat_labels(read_babel(babel), captions)
    lists = clip_labels(both, ["KIT/3/kick_poses.npz"], 0, 300, 100.0).lists()
    assert lists["label_text"] == [["kick", "a kick.", "then a step."]]
    assert np.asarray(lists["label_bounds"][0]).tolist() == [[50, 150], [50, 300], [250, 300]]
    with pytest.raises(FileNotFoundError, match="000008"):
        (tmp_path / "index.csv").write_text("source_path,start_frame,end_frame,new_name\n./pose_data/KIT/3/kick_poses.npy,0,5,000008.npy\n")
        read_humanml3d(tmp_path / "index.csv", {"KIT/3/kick_poses.npz": 100.0}, texts=tmp_path / "texts")


def test_humanml3d_bad_index_and_unknown_sequences(tmp_path):
    (tmp_path / "index.csv").write_text("path,start,end\nx,0,1\n")
    with pytest.raises(ValueError, match="missing columns"): read_humanml3d(tmp_path / "index.csv", {})
    (tmp_path / "index.csv").write_text("source_path,start_frame,end_frame,new_name\n./pose_data/KIT/3/a_poses.npy,0,5,000000.npy\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(read_humanml3d(tmp_path / "index.csv", {"KIT/3/b_poses.npz": 100.0})) == 0
    assert "1 rows" in str(caught[0].message)
    empty = read_humanml3d(tmp_path / "index.csv", {"KIT/3/b_poses.npz": 100.0})
    assert clip_labels(empty, ["KIT/3/a_poses.npz"], 0, 5, 100.0).lists()["label_text"] == [[]]
