"""A split tree keeps what it is (issue 20.1), and split tables and amass_split_dirs refuse what they cannot do
(issue 19.12, 19.15; issue 20.6; issue 21): every tree here is the bundled sample, or built by the test."""
import contextlib
import errno
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import llamass.splits as splits_module
from llamass.dataset import AMASS
from llamass.index import index_sequences
from llamass.unpack import SPLIT_JOURNAL
from llamass.info import amass_info
from llamass.labels import clip_labels, read_babel
from llamass.splits import SplitError, console_split_dirs, move_dirs_into_splits, resolve_subdatasets, split_table
from llamass.store import amass_pack, open_store

METADATA = ["poses", "path", "subdataset", "start", "fps"]


@pytest.fixture
def trees(sample_root, tmp_path):
    "(the sample unsplit, the same sample split by amass_split_dirs)."
    shutil.copytree(sample_root, tmp_path / "plain")
    shutil.copytree(sample_root, tmp_path / "split")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                 # the 21 sub-datasets the sample lacks
        move_dirs_into_splits(tmp_path / "split")
    assert sorted(p.name for p in (tmp_path / "split").iterdir() if not p.name.startswith(".")) == ["test", "train", "val"]
    return tmp_path / "plain", tmp_path / "split"


def run(main, argv):
    "(exit status, stdout, stderr) of the console script `main` run in-process with `argv`."
    out, err, status = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try: main(argv)
        except SystemExit as e: status = e.code
    notes = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)   # as on a terminal
    return status, out.getvalue(), notes + err.getvalue()


def clips_of(root, **kwargs):
    "Sorted (path, sub-dataset, start, fps, poses checksum) of every clip of AMASS(root, 32)."
    ds = AMASS(root, 32, progress=False, data_keys=METADATA, **kwargs)
    return sorted((c["path"], c["subdataset"], int(c["start"]), float(c["fps"]), float(np.asarray(c["poses"]).sum())) for c in ds)


# 20.1: identity -------------------------------------------------------------------------------------------------

def test_clips_of_a_split_tree_are_the_clips_of_the_unsplit_tree(trees):
    plain, split = trees
    assert clips_of(split) == clips_of(plain) and len(clips_of(plain)) == 25
    assert {c[1] for c in clips_of(split)} == {"CMU", "HumanEva", "SSM_synced"}
    assert {c[0].split("/")[0] for c in clips_of(split)} == {"CMU", "HumanEva", "SSM_synced"}


def test_subdatasets_by_name_on_a_split_tree(trees):
    plain, split = trees
    assert clips_of(split, subdatasets=["CMU"]) == clips_of(plain, subdatasets=["CMU"]) and len(clips_of(plain, subdatasets=["CMU"])) == 17
    assert clips_of(split, subdatasets=["HumanEva", "SSM_synced"]) == clips_of(plain, subdatasets=["HumanEva", "SSM_synced"])
    with pytest.raises(FileNotFoundError, match=r"\['KIT'\] not found .* \(it has \['CMU', 'HumanEva', 'SSM_synced'\]\)"):
        AMASS(split, 32, subdatasets=["KIT"], progress=False)


def test_split_by_name_on_a_split_tree(trees):
    plain, split = trees
    for name in ("train", "val", "test"):
        assert clips_of(split, split=name) == clips_of(plain, split=name)
    assert {c[1] for c in clips_of(split, split="val")} == {"HumanEva"}


def test_fps_overrides_by_subdataset_and_path_on_a_split_tree(trees):
    plain, split = trees
    overrides = {"CMU": 60.0, "HumanEva/S1/Walking_1_poses.npz": 30.0}
    with_overrides = clips_of(split, fps_overrides=overrides, target_fps=30)
    assert with_overrides == clips_of(plain, fps_overrides=overrides, target_fps=30)
    assert len(with_overrides) == 13 and len(clips_of(split, target_fps=30)) == 4         # the overrides took effect
    assert len(clips_of(split, fps_overrides={"CMU": 60.0}, target_fps=30)) == 9          # the case: 9, not 4
    assert {c[3] for c in clips_of(split, fps_overrides=overrides)} == {60.0, 30.0, 120.00004577636719}


def babel_file(tmp_path, index):
    "A BABEL json labelling every sequence of `index` from its first frame to its last."
    data = {}
    for sid, (path, n, fps) in enumerate(zip(index.relative_paths(), index.n_frames, index.fps)):
        label = {"act_cat": ["walk"], "proc_label": "walk", "raw_label": "walk", "seg_id": f"s{sid}", "start_t": 0.0, "end_t": float(n / fps)}
        data[str(sid)] = {"babel_sid": sid, "dur": float(n / fps), "feat_p": f"{path.split('/')[0]}/{path}", "seq_ann": None,
                          "frame_ann": {"labels": [label]}}
    (tmp_path / "babel.json").write_text(json.dumps(data))
    return read_babel(tmp_path / "babel.json")


def test_babel_labels_match_every_clip_before_and_after_the_split(trees, tmp_path):
    plain, split = trees
    table = babel_file(tmp_path, index_sequences(plain, progress=False))
    for root in (plain, split):
        clips = list(AMASS(root, 32, progress=False, data_keys=["path", "start", "fps"]))
        found = clip_labels(table, [c["path"] for c in clips], [int(c["start"]) for c in clips], 32, [float(c["fps"]) for c in clips])
        assert found.has_labels().sum() == len(clips) == 25, root


def test_amass_info_rows_are_subdatasets_on_a_split_tree(trees):
    plain, split = trees
    reports = [json.loads(run(amass_info, [str(root), "--json", "-q"])[1]) for root in (plain, split)]
    assert [r["subdataset"] for r in reports[1]["subdatasets"]] == ["CMU", "HumanEva", "SSM_synced"]
    assert reports[1]["subdatasets"] == reports[0]["subdatasets"] and reports[1]["total"] == reports[0]["total"]
    assert reports[1]["splits"] == {"test": ["SSM_synced"], "train": ["CMU"], "val": ["HumanEva"]} and "splits" not in reports[0]
    tables = [run(amass_info, [str(root)]) for root in (plain, split)]
    assert tables[1][1] == tables[0][1]                                 # the same table, row for row
    assert "split by amass_split_dirs: test: SSM_synced; train: CMU; val: HumanEva" in tables[1][2]


def test_a_store_of_a_split_tree_records_the_unsplit_identity(trees, tmp_path):
    plain, split = trees
    stores = [open_store(amass_pack(root, tmp_path / f"store_{root.name}", progress=False) and tmp_path / f"store_{root.name}") for root in (plain, split)]
    order = np.argsort(stores[1].tables["path"])
    assert stores[1].tables["path"][order].tolist() == stores[0].tables["path"].tolist()
    assert stores[1].tables["subdataset"][order].tolist() == ["CMU"] * 3 + ["HumanEva", "SSM_synced"]
    assert stores[1].tables["source_path"][order][0] == "train/CMU/01/01_01_poses.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # the source is unchanged: no warning
        open_store(tmp_path / "store_split")
        assert amass_pack(split, tmp_path / "store_split", progress=False)["n_sequences"] == 5   # already packed
    (split / "train/CMU/01/01_01_poses.npz").write_bytes((split / "train/CMU/01/01_01_poses.npz").read_bytes() + b"")
    import os; os.utime(split / "train/CMU/01/01_01_poses.npz", ns=(1, 1))
    with pytest.warns(UserWarning, match=r"changed since it was packed \(e\.g\. train/CMU/01/01_01_poses\.npz\)"):
        open_store(tmp_path / "store_split")


def test_a_split_made_by_llamass_004_is_recognised(sample_root, tmp_path):
    "0.0.4 moved folders into train/ val/ test/ and kept no journal."
    root = tmp_path / "old"
    for split, name in [("train", "CMU"), ("val", "HumanEva"), ("test", "SSM_synced")]:
        shutil.copytree(sample_root / name, root / split / name)
    (root / "val" / "MPI_HDM05").mkdir()                               # an empty folder 0.0.4 moved is fine too
    assert not (root / SPLIT_JOURNAL).exists()
    assert clips_of(root) == clips_of(sample_root)
    assert clips_of(root, subdatasets=["CMU"]) == clips_of(sample_root, subdatasets=["CMU"])
    (root / "train" / "Mine").mkdir()                                  # not 0.0.4's: train/ is then a sub-dataset as before
    assert {c[1] for c in clips_of(root)} == {"train", "HumanEva", "SSM_synced"}


def test_a_file_in_two_places_of_a_split_tree_is_refused(trees):
    _, split = trees
    shutil.copytree(split / "train" / "CMU" / "02", split / "CMU" / "02")
    with pytest.raises(ValueError, match="are both CMU/02/02_01_poses.npz of the unsplit tree"):
        index_sequences(split, progress=False)


# 19.15: tables that say two things ------------------------------------------------------------------------------

TWO_SPLITS = {"train": ["CMU", "KIT"], "val": ["CMU", "HumanEva"], "test": ["SSM_synced"]}
ALIAS_TWICE = {"train": ["HDM05", "*"], "val": ["MPI_HDM05"]}
SPLIT_LIKE_A_SUBDATASET = {"KIT": ["HumanEva"], "train": ["CMU", "*"]}
SPLIT_LIKE_ITS_OWN = {"train": ["Mine", "*"], "Mine": ["HumanEva"]}


@pytest.mark.parametrize("table,message", [
    (TWO_SPLITS, "sub-dataset 'CMU' is in split 'val' and in split 'train': a sub-dataset belongs to one split"),
    (ALIAS_TWICE, "sub-dataset 'MPI_HDM05' is in split 'val' and, as 'HDM05', in split 'train'"),
    (SPLIT_LIKE_A_SUBDATASET, "split 'KIT' is named like the sub-dataset 'KIT'"),
    (SPLIT_LIKE_ITS_OWN, "split 'Mine' is named like the sub-dataset 'Mine'")])
def test_a_table_that_says_two_things_is_refused_everywhere(sample_root, tmp_path, table, message):
    root = tmp_path / "amass"
    shutil.copytree(sample_root, root)
    (root / "KIT").mkdir()
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    (tmp_path / "table.json").write_text(json.dumps(table))
    status, out, err = run(console_split_dirs, [str(root), "--splits", str(tmp_path / "table.json")])
    assert (status, out) == (1, "") and err.count("\n") == 1 and message in err, err
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before          # nothing moved, no journal, no lock
    with pytest.raises(ValueError, match=message.split(":")[0].replace("(", r"\(")):
        AMASS(root, 32, split=next(iter(table)), splits=table, progress=False)
    with pytest.raises(ValueError):
        resolve_subdatasets(root, split="val" if "val" in table else "train", splits=table)


def test_a_split_named_like_a_subdataset_folder_of_the_tree_is_refused(sample_root, tmp_path):
    root = tmp_path / "amass"
    shutil.copytree(sample_root, root)
    shutil.copytree(root / "CMU", root / "holdout" / "x")              # a sub-dataset of the user's called holdout
    with pytest.raises(SplitError, match=r"split 'holdout' is named like the sub-dataset folder .*holdout \(it holds x\)"):
        move_dirs_into_splits(root, {"holdout": ["HumanEva"], "train": ["*"]})
    assert (root / "HumanEva").is_dir() and not (root / SPLIT_JOURNAL).exists()
    with pytest.raises(ValueError, match=r"split 'holdout' is named like the sub-dataset folder"):   # reading it as a split: the same
        AMASS(root, 32, split="holdout", splits={"holdout": ["HumanEva"], "train": ["*"]}, progress=False)


def test_the_presets_are_consistent():
    for preset in ("amass", "humor"):
        assert split_table(preset)


# 20.6: a folder that is not AMASS -------------------------------------------------------------------------------

@pytest.mark.parametrize("undo", [False, True])
def test_a_folder_that_is_not_amass_is_refused_and_nothing_written(tmp_path, undo):
    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True); (home / "photos" / "a.jpg").write_bytes(b"jpg")
    (home / "notes.txt").write_text("mine")
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    status, out, err = run(console_split_dirs, [str(home)] + (["--undo"] if undo else []))
    assert (status, out) == (1, "") and err.count("\n") == 1 and "is not an AMASS folder" in err and "photos" in err, err
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before        # no .llamass.lock, no journal


def test_a_folder_of_packed_stores_is_not_amass(sample_root, tmp_path):
    amass_pack(sample_root, tmp_path / "stores" / "packed", progress=False)
    status, _, err = run(console_split_dirs, [str(tmp_path / "stores")])
    assert status == 1 and "is not an AMASS folder" in err and (tmp_path / "stores" / "packed" / "manifest.json").is_file()


@pytest.mark.parametrize("outdir", ["file", "file/images"])
def test_amass_info_plots_into_a_file_is_one_line(sample_root, tmp_path, outdir):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("mine")
    status, out, err = run(amass_info, ["--plots", str(tmp_path / outdir), str(sample_root)])
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    assert f"{tmp_path / 'file'} is a file: give a folder" in err and (tmp_path / "file").read_text() == "mine"


def test_a_tree_of_unknown_names_holding_sequences_is_amass(sample_root, tmp_path):
    root = tmp_path / "mine"
    shutil.copytree(sample_root / "CMU", root / "MyMocap")
    assert run(console_split_dirs, [str(root), "-q"])[0] == 0 and (root / "train" / "MyMocap").is_dir()


# 19.12: a full disk ---------------------------------------------------------------------------------------------

def test_a_full_disk_is_one_line_and_leaves_no_tmp_journal(sample_root, tmp_path, monkeypatch):
    root = tmp_path / "amass"
    shutil.copytree(sample_root, root)
    real_write_text = Path.write_text
    def full_disk(self, data, *args, **kwargs):
        if self.name.endswith(".tmp"):
            real_write_text(self, data[:10], *args, **kwargs)          # part of it written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, data, *args, **kwargs)
    monkeypatch.setattr(splits_module.Path, "write_text", full_disk)
    status, out, err = run(console_split_dirs, [str(root), "-q"])
    assert (status, out) == (1, "") and err.count("\n") == 1 and "No space left on device" in err and "nothing was moved" in err, err
    assert sorted(p.name for p in root.iterdir()) == [".llamass.lock", "CMU", "HumanEva", "SSM_synced"]


def test_a_full_tmpfs_is_one_line(sample_root, tmp_path):
    "The same on a real full file system, where this machine lets us mount one."
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for name in ("HumanEva", "SSM_synced"): shutil.copytree(sample_root / name, mount / "amass" / name)
        with contextlib.suppress(OSError), open(mount / "filler", "wb") as f:
            while True: f.write(b"\0" * 4096); f.flush()
        status, _, err = run(console_split_dirs, [str(mount / "amass"), "-q"])
        assert status in (0, 1) and err.count("\n") <= 1 and "Traceback" not in err, err
        assert not list((mount / "amass").glob("*.tmp"))
        if status == 1: assert sorted(p.name for p in (mount / "amass").iterdir() if p.name != ".llamass.lock") == ["HumanEva", "SSM_synced"]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# 21: -q and a quick --help --------------------------------------------------------------------------------------

def test_quiet_prints_no_notes(sample_root, tmp_path):
    root = tmp_path / "amass"
    shutil.copytree(sample_root, root)
    (root / "MyMocap").mkdir()                                          # a folder no table names: a note without -q
    loud = run(console_split_dirs, [str(root), "--undo"]), run(console_split_dirs, [str(root)])
    assert loud[1][0] == 0 and "llamass: warning:" in loud[1][2]
    run(console_split_dirs, [str(root), "--undo"])
    status, out, err = run(console_split_dirs, [str(root), "-q"])
    assert (status, err) == (0, "") and out.startswith("moved 4 ")


@pytest.mark.parametrize("module,main", [("llamass.splits", "console_split_dirs"), ("llamass.store", "amass_pack_cli")])
def test_help_loads_no_torch(module, main):
    code = f"import sys\nfrom {module} import {main}\ntry: {main}(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "examples:" in out and out.strip().endswith("False")


def test_a_file_or_a_missing_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, why in [(tmp_path / "file", "is a file, not a folder"), (tmp_path / "missing", "does not exist")]:
        status, out, err = run(console_split_dirs, [str(path)])
        assert (status, out) == (1, "") and err.count("\n") == 1 and why in err, err
