"""Split tables for every release, journals that know their table, hostile tables and journals, concurrent runs (issues 11, 15)."""
import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from llamass.dataset import AMASS
from llamass.splits import (JOURNAL, REST, SplitError, console_split_dirs, move_dirs_into_splits, move_dirs_out_of_splits,
                            names_of, resolve_subdatasets, split_presets, subdataset_names)
from llamass.synthetic import synthetic_sequence, write_tree
from llamass.unpack import md5_dir

from conftest import ROOT, SAMPLE_ARCHIVE

# The folder names of the SMPL+H G and SMPL-X N / G releases (the AMASS download page's names)
NEWER_RELEASE_FOLDERS = ["ACCAD", "BMLhandball", "BMLmovi", "BMLrub", "CMU", "CNRS", "DanceDB", "DFaust", "EKUT",
                         "EyesJapanDataset", "GRAB", "HDM05", "HUMAN4D", "HumanEva", "KIT", "MoSh", "PosePrior", "SFU",
                         "SOMA", "SSM", "TCDHands", "TotalCapture", "Transitions", "WEIZMANN"]
LEGACY_OF = {"BMLrub": "BioMotionLab_NTroje", "DFaust": "DFaust_67", "EyesJapanDataset": "Eyes_Japan_Dataset",
             "HDM05": "MPI_HDM05", "MoSh": "MPI_mosh", "PosePrior": "MPI_Limits", "SSM": "SSM_synced",
             "TCDHands": "TCD_handMocap", "Transitions": "Transitions_mocap"}
PAPER = {"val": {"HumanEva", "HDM05", "SFU", "MoSh"}, "test": {"Transitions", "SSM"}}


def split_in(table, name):
    "The split of `table` whose folder list takes `name` (with all its names), the '*' split otherwise."
    for split, names in table.items():
        if names != REST and any(name in names_of(n) for n in names if n != REST): return split
    return next(split for split, names in table.items() if names == REST or REST in names)


@pytest.mark.parametrize("preset", sorted(split_presets))
@pytest.mark.parametrize("folder", NEWER_RELEASE_FOLDERS + ["MPIHDM05", "MPImosh", "SSMsynced", "Transitionsmocap", "DFaust67"])
def test_every_release_name_lands_with_its_legacy_name(preset, folder):
    legacy = names_of(folder)[0]
    assert legacy == LEGACY_OF.get(folder, legacy) and legacy in subdataset_names
    table = split_presets[preset]
    assert split_in(table, folder) == split_in(table, legacy)


def tree_with(root, folders, frames=40):
    "A tree with one short synthetic sequence in each of `folders`."
    write_tree(root, {f"{name}/s1/a_poses.npz": synthetic_sequence(frames, i) for i, name in enumerate(folders)})
    return root


def test_newer_release_tree_splits_like_the_paper(tmp_path):
    """11.1: no test or validation data in train, and split="test" finds the test sub-datasets."""
    root = tree_with(tmp_path, NEWER_RELEASE_FOLDERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # a tree whose every folder a table knows: no notice at all
        chosen = {split: set(resolve_subdatasets(root, split=split)[1]) for split in ("train", "val", "test")}
    assert chosen["val"] == PAPER["val"] and chosen["test"] == PAPER["test"]
    assert chosen["train"] == set(NEWER_RELEASE_FOLDERS) - PAPER["val"] - PAPER["test"]
    assert set(AMASS(root, 1, split="test", progress=False).index.subdatasets) == {"SSM", "Transitions"}


def test_unknown_folders_are_named(tmp_path):
    root = tree_with(tmp_path, ["CMU", "MyMocap", "Other"])
    with pytest.warns(UserWarning, match=r"MyMocap, Other named by no split table; put in 'train' by the \"everything else\" rule"):
        assert resolve_subdatasets(root, split="train")[1] == ["CMU", "MyMocap", "Other"]
    with pytest.warns(UserWarning, match=r"put in 'train' by the \"everything else\" rule: MyMocap, Other"):
        move_dirs_into_splits(root, "amass")


def test_test_split_missing_says_what_it_looked_for(tmp_path):
    root = tree_with(tmp_path, ["CMU", "HDM05"])
    with pytest.raises(FileNotFoundError, match="split 'test' has no sub-dataset in .*: looked for Transitions_mocap, "
                       "Transitionsmocap, Transitions, SSM_synced, SSMsynced, SSM; it has CMU, HDM05"):
        resolve_subdatasets(root, split="test")


def run_split(*args, timeout=60):
    "amass_split_dirs in a fresh process: (exit status, stdout, stderr)."
    code = "import sys; from llamass.splits import console_split_dirs; console_split_dirs(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def run_here(capsys, *args):
    "amass_split_dirs called in this process (same code, no interpreter start-up): (exit status, stdout, stderr)."
    capsys.readouterr()
    try: console_split_dirs([str(a) for a in args]); status = 0
    except SystemExit as e: status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def layout(root):
    "Sorted 'split/sub-dataset' (or top-level sub-dataset) paths of `root`."
    top = [p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    return sorted([f"{s}/{p.name}" for s in top if s in ("train", "val", "test") for p in (root / s).iterdir()]
                  + [s for s in top if s not in ("train", "val", "test")])


def test_another_preset_after_a_split_is_refused_then_resplit(tmp_path):
    """11.4: --preset humor after a default split no longer says "moved 0" with HumanEva left in val/."""
    root = tree_with(tmp_path, ["CMU", "HumanEva", "SSM_synced"])
    assert run_split(root)[0] == 0
    status, out, err = run_split(root, "--preset", "humor")
    assert (status, out) == (1, "") and err.count("\n") == 1 and "already split with another table" in err and "--resplit" in err
    with pytest.raises(ValueError, match="split by amass_split_dirs with another table"):
        resolve_subdatasets(root, split="val", splits="humor")
    status, out, _ = run_split(root, "--preset", "humor", "--resplit")
    assert status == 0 and out.startswith("moved 3 ")
    assert layout(root) == ["test/HumanEva", "train/CMU", "train/SSM_synced"]
    assert resolve_subdatasets(root, split="test", splits="humor") == (root / "test", None)


def test_empty_journal_is_no_commitment(capsys, tmp_path):
    """11.4: split run once on an empty folder, then unpack, then split again: the folders are moved.
    20.6: the first run is refused (not an AMASS folder) and writes nothing; an empty journal (as earlier runs left) commits to nothing."""
    (tmp_path / "a").mkdir()
    status, _, err = run_here(capsys, tmp_path / "a")
    assert status == 1 and "is not an AMASS folder" in err and list((tmp_path / "a").iterdir()) == []
    (tmp_path / "a" / JOURNAL).write_text(json.dumps({"table": split_presets["amass"], "moves": [], "created": []}))
    shutil.unpack_archive(SAMPLE_ARCHIVE, tmp_path / "a")
    status, out, _ = run_here(capsys, tmp_path / "a", "--preset", "humor")
    assert status == 0 and out.startswith("moved 3 ")
    assert layout(tmp_path / "a") == ["test/HumanEva", "test/SSM_synced", "train/CMU"] or layout(tmp_path / "a") == ["test/HumanEva", "train/CMU", "train/SSM_synced"]
    assert json.loads((tmp_path / "a" / JOURNAL).read_text())["table"] == split_presets["humor"]


@pytest.mark.parametrize("table,why", [({"train": ["../outside"]}, "is a path"), ({"train": ["/abs"]}, "is a path"),
                                       ({"train": ["a/b"]}, "is a path"), ({"../up": ["CMU"]}, "split '../up' is a path"),
                                       ({"train": "everything"}, "expected a list")])
def test_split_tables_name_folders_only(capsys, tmp_path, table, why):
    root = tree_with(tmp_path / "amass", ["CMU"])
    (tmp_path / "outside").mkdir()
    (tmp_path / "table.json").write_text(json.dumps(table))
    status, _, err = run_here(capsys, root, "--splits", tmp_path / "table.json")
    assert status == 1 and err.count("\n") == 1 and why in err
    assert layout(root) == ["CMU"] and (tmp_path / "outside").is_dir() and not (root / JOURNAL).exists()


@pytest.mark.parametrize("journal", [{"moves": [["../outside", "train/../outside"]], "created": []},
                                     {"moves": [["CMU", "../sibling/CMU"]], "created": []},
                                     {"moves": [["CMU", "/abs/CMU"]], "created": []},
                                     {"moves": [["CMU", "train/CMU"]], "created": ["../x"]},
                                     "{not json", [1, 2]])
@pytest.mark.parametrize("undo", [False, True])
def test_planted_or_malformed_journal_moves_nothing(capsys, tmp_path, journal, undo):
    """15.2/15.11: a journal with ../ paths (as an archive could have shipped before) or a malformed one: one line, nothing moved."""
    root = tree_with(tmp_path / "amass", ["CMU"])
    (tmp_path / "outside").mkdir()
    (root / JOURNAL).write_text(journal if isinstance(journal, str) else json.dumps(journal))
    status, _, err = run_here(capsys, root, *(["--undo"] if undo else []))
    assert status == 1 and err.count("\n") == 1 and "journal" in err and "Traceback" not in err
    assert layout(root) == ["CMU"] and (tmp_path / "outside").is_dir() and not (tmp_path / "sibling").exists()


@pytest.mark.parametrize("code,why", [(errno.EXDEV, "Invalid cross-device link"), (errno.EROFS, "Read-only file system")])
def test_failed_move_leaves_nothing_half_done(tmp_path, monkeypatch, capsys, code, why):
    """15.11: a cross-device or read-only split destination: one line, the moves made are reversed, no journal left."""
    root = tree_with(tmp_path, ["CMU", "HumanEva", "SSM_synced"])
    real_rename = Path.rename
    def rename(self, target):
        if Path(target).parent.name == "train": raise OSError(code, os.strerror(code))
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(SystemExit) as exit_:
        console_split_dirs([str(root)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count("\n") == 1 and f"cannot move {root / 'CMU'} to {root / 'train' / 'CMU'}: {why}" in err
    assert layout(root) == ["CMU", "HumanEva", "SSM_synced"] and not (root / JOURNAL).exists()
    assert sorted(p.name for p in root.iterdir()) == [".llamass.lock", "CMU", "HumanEva", "SSM_synced"]


def test_links_are_not_followed(tmp_path):
    """15.3: a linked folder is not a sub-dataset to move, and a split folder that is a link is refused."""
    root = tree_with(tmp_path / "amass", ["CMU", "HumanEva"])
    tree_with(tmp_path / "elsewhere", ["SFU"])
    (root / "SFU").symlink_to(tmp_path / "elsewhere" / "SFU")
    (root / "loop").symlink_to(".")
    (root / "train").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SplitError, match="train is a link or a file"):
        move_dirs_into_splits(root, "amass")
    (root / "train").unlink()
    assert move_dirs_into_splits(root, "amass") == 2
    assert layout(root) == ["train/CMU", "val/HumanEva"] and (tmp_path / "elsewhere" / "SFU").is_dir()
    assert move_dirs_out_of_splits(root) == 2


def test_two_concurrent_splits_and_split_with_unpack(tmp_path):
    """11.2: two amass_split_dirs at once, and amass_split_dirs with fast_amass_unpack --verify: the tree of one run, honest output."""
    table = ROOT / "sample_data" / "checksums.json"
    (tmp_path / "tars").mkdir(); shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    unpack = [sys.executable, "-c", "import sys; from llamass.unpack import fast_amass_unpack; fast_amass_unpack(sys.argv[1:])",
              "-q", "--verify", "--checksums", str(table), str(tmp_path / "tars")]
    split = [sys.executable, "-c", "import sys; from llamass.splits import console_split_dirs; console_split_dirs(sys.argv[1:])"]
    assert subprocess.run(unpack + [str(tmp_path / "single")], timeout=60).returncode == 0
    assert subprocess.run(split + [str(tmp_path / "single")], timeout=60, capture_output=True).returncode == 0
    reference = {p: md5_dir(tmp_path / "single" / p) for p in layout(tmp_path / "single")}
    assert sorted(reference) == ["test/SSM_synced", "train/CMU", "val/HumanEva"]

    assert subprocess.run(unpack + [str(tmp_path / "two")], timeout=60).returncode == 0
    runs = [subprocess.Popen(split + [str(tmp_path / "two")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(run.communicate(timeout=60)[0] for run in runs)
    assert [run.returncode for run in runs] == [0, 0] and [o.split(" sub-dataset")[0] for o in outs] == ["moved 0", "moved 3"]
    assert {p: md5_dir(tmp_path / "two" / p) for p in layout(tmp_path / "two")} == reference

    assert subprocess.run(unpack + [str(tmp_path / "mixed")], timeout=60).returncode == 0
    runs = [subprocess.Popen(cmd + [str(tmp_path / "mixed")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd in (split, unpack)]
    results = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert results[1][0].startswith("0 archives unpacked, 1 skipped (1 verified earlier)")
    assert {p: md5_dir(tmp_path / "mixed" / p) for p in layout(tmp_path / "mixed")} == reference
