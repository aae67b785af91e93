"""The packed store never destroys the user's data, locks its destination, checks itself when opened, and turns
hostile inputs into one line: every input here is built by the test (issues 11.2, 11.5, 11.7, 15.9, 15.11)."""
import errno
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import llamass.store as store_module
from llamass.store import StoreError, amass_pack, amass_pack_cli, open_store, read_manifest
from llamass.synthetic import identified_sequence, write_npz, write_tree
from llamass.tqdm import folder_lock

LENGTHS = [23, 7, 40, 12]
CLI = [sys.executable, "-c", "from llamass.store import amass_pack_cli; amass_pack_cli()"]


def contents(folder):
    "{relative path: bytes} of every file under `folder`."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def tree(tmp_path):
    "A source tree of identified sequences: trans[:, 0] is the sequence, trans[:, 1] the frame."
    write_tree(tmp_path / "src", {f"DS{i % 2}/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(LENGTHS)})
    return tmp_path / "src"


def one_line_error(capsys, argv):
    "Run `amass_pack` with `argv`; assert it exits 1 with exactly one line on stderr; return that line."
    with pytest.raises(SystemExit) as exit:
        amass_pack_cli(argv + ["-q"])
    err = capsys.readouterr().err
    assert exit.value.code == 1 and err.count("\n") == 1 and err.startswith("amass_pack: error: "), err
    return err.strip()


def hidden_leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith((".partial", ".old")))


# 11.5: nothing of the user's is destroyed ------------------------------------------------------------------------------

@pytest.mark.parametrize("dst", ["{src}", "{src}/DS0", "{src}/packed", "{src}/DS0/s0/packed", "{src}/.."])
def test_destination_overlapping_the_source_is_refused_even_with_force(tree, capsys, dst):
    before = contents(tree)
    line = one_line_error(capsys, ["--force", str(tree), dst.format(src=tree)])
    assert "its own source folder" in line or "inside its source" in line or "contain its source" in line
    assert contents(tree) == before                                   # nothing deleted, nothing added (no lock, no .partial)


def test_subfolder_as_source_of_its_parent_is_refused(tree, capsys):
    before = contents(tree)
    line = one_line_error(capsys, ["--force", str(tree / "DS0"), str(tree)])
    assert line == f"amass_pack: error: the store {tree.resolve()} would contain its source {(tree / 'DS0').resolve()}; choose a folder outside it"
    assert contents(tree) == before


def test_link_to_the_source_is_the_source(tree, tmp_path, capsys):
    (tmp_path / "link").symlink_to(tree, target_is_directory=True)
    before = contents(tree)
    assert "its own source folder" in one_line_error(capsys, ["--force", str(tree), str(tmp_path / "link")])
    assert contents(tree) == before


def test_force_never_replaces_a_folder_llamass_did_not_make(tree, tmp_path, capsys):
    other = tmp_path / "other_amass"
    write_tree(other, {"CMU/a_poses.npz": identified_sequence(9, 4)})
    before = contents(other)
    line = one_line_error(capsys, ["--force", str(tree), str(other)])
    assert "exists and is not a packed store (it holds CMU, ...); llamass replaces only stores it made" in line
    assert contents(other) == before
    # a real store with one file of the user's added: not only a store any more
    amass_pack(tree, tmp_path / "store", progress=False)
    (tmp_path / "store" / "my_notes.txt").write_text("mine")
    assert "is not a packed store" in one_line_error(capsys, ["--force", str(tree), str(tmp_path / "store")])
    assert (tmp_path / "store" / "my_notes.txt").read_text() == "mine"


def test_changed_source_is_noticed_on_open_and_on_repack(tree, tmp_path, capsys):
    store = tmp_path / "store"
    amass_pack(tree, store, progress=False)
    changed = tree / "DS0/s2/take_poses.npz"
    arrays = identified_sequence(2, LENGTHS[2])
    arrays["trans"][:, 2] = 7.0                                       # same name, same frame count, new content
    write_npz(changed, arrays)
    os.utime(changed, ns=(1, 1))                                      # an mtime that cannot be the one recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opened = open_store(store)
    assert [str(w.message) for w in caught] == [f"{store}: 1 of 4 files of its source {tree.resolve()} changed since it was packed "
                                                "(e.g. DS0/s2/take_poses.npz); re-pack with amass_pack --force to refresh it"]
    assert (opened.arrays["trans"][:, 2] == 0).all()                  # the store still holds what it held
    line = one_line_error(capsys, [str(tree), str(store)])
    assert "whose files changed since (1 of them, e.g. DS0/s2/take_poses.npz); pass force=True (--force)" in line
    amass_pack(tree, store, force=True, progress=False)
    trans = open_store(store).arrays["trans"]
    assert (trans[trans[:, 0] == 2, 2] == 7).all() and (trans[trans[:, 0] != 2, 2] == 0).all()


def test_out_of_space_is_one_line_and_leaves_nothing(tree, tmp_path, capsys, monkeypatch):
    "A full disk while writing (after space was reserved, e.g. a file system without fallocate) is an OSError, not SIGBUS."
    calls, real_pwrite = [], os.pwrite
    def fills_up(fd, data, offset):
        calls.append(offset)
        if len(calls) > 2: raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)
    monkeypatch.setattr(store_module.os, "pwrite", fills_up)
    line = one_line_error(capsys, ["-n", "1", str(tree), str(tmp_path / "store")])
    assert line == f"amass_pack: error: not enough space for the store {(tmp_path / 'store').resolve()} (it needs 0.1 MB): No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llamass.lock", "src"]


def test_file_size_limit_in_a_real_process(tree, tmp_path):
    "A real process whose files may not grow past 16 kB (RLIMIT_FSIZE): the space reservation fails at once, one line, no .partial."
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))
    run = subprocess.run(CLI + ["-q", str(tree), str(tmp_path / "store")], capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"amass_pack: error: not enough space for the store {(tmp_path / 'store').resolve()}"), run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llamass.lock", "src"]


# 11.2: one writer per folder -------------------------------------------------------------------------------------------

def test_two_concurrent_packs_give_one_store(tree, tmp_path):
    reference = tmp_path / "reference" / "store"
    amass_pack(tree, reference, progress=False)
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out, quiet=True):                               # both start while a third party holds the folder
        logs = [open(tmp_path / f"err{i}", "w+") for i in range(2)]
        runs = [subprocess.Popen(CLI + ["-q", str(tree), str(out / "store")], stdout=subprocess.PIPE, stderr=log, text=True) for log in logs]
        deadline = time.monotonic() + 60
        while not all("waiting for another run" in (tmp_path / f"err{i}").read_text() for i in range(2)):
            assert time.monotonic() < deadline and all(r.poll() is None for r in runs), "the runs did not wait for the lock"
            time.sleep(0.1)
    outputs = [r.communicate(timeout=120)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0]
    assert sorted(o.split(": ", 1)[1].split(" in ")[0].strip() for o in outputs) == [
        "4 sequences, 82 frames of poses, dmpls, trans", "already packed (4 sequences, 82 frames of poses, dmpls, trans), nothing to do"]
    assert contents(out / "store") == contents(reference)             # byte-identical to a single run's store
    assert hidden_leftovers(out) == []


def test_packing_is_deterministic(tree, tmp_path):
    amass_pack(tree, tmp_path / "a", progress=False)
    amass_pack(tree, tmp_path / "b", progress=False)
    assert contents(tmp_path / "a") == contents(tmp_path / "b")


# 15.9: stores that check themselves ------------------------------------------------------------------------------------

@pytest.fixture
def store(tree, tmp_path):
    amass_pack(tree, tmp_path / "store", progress=False)
    return tmp_path / "store"


def edit_tables(store, **columns):
    "Rewrite the store's per-sequence tables with some columns replaced."
    with np.load(store / "sequences.npz") as npz: tables = {k: npz[k] for k in npz.files}
    np.savez(store / "sequences.npz", **{**tables, **columns})


def edit_manifest(store, **fields):
    path = store / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


DAMAGE = {
    "poses shorter than its offsets": (lambda s: os.truncate(s / "poses.npy", 128 + 4 * 156 * 50),
                                       "poses.npy: 31200 bytes of data, its header says 51168 (truncated?)"),
    "100-wide array": (lambda s: np.save(s / "poses.npy", np.zeros((82, 100), np.float32)),
                       "poses.npy: holds a float32 array of shape (82, 100), the manifest says float32 (82, 156)"),
    "float64 array": (lambda s: np.save(s / "trans.npy", np.zeros((82, 3))), "trans.npy: holds a float64 array"),
    "offset out of range": (lambda s: edit_tables(s, offset=np.array([0, 23, 63, 1000])),
                            "sequence 3 starts at row 1000, expected 70 (offsets must follow the lengths)"),
    "negative length": (lambda s: edit_tables(s, length=np.array([23, 40, 7, -12])), "sequence 3 has a negative length"),
    "lengths beyond the arrays": (lambda s: edit_tables(s, length=np.array([23, 40, 7, 13])), "the sequences hold 83 frames, the manifest says 82"),
    "a table of another length": (lambda s: edit_tables(s, fps=np.full(3, 120.0)), "column 'fps' is float64 of shape (3,), expected 4 rows"),
    "a missing column": (lambda s: np.savez(s / "sequences.npz", offset=np.zeros(4, int)), "sequences.npz: no 'length' column"),
    "a negative frame rate": (lambda s: edit_tables(s, fps=np.array([120.0, -30, 120, 120])), "sequence 1 has frame rate -30.0"),
    "an unknown gender code": (lambda s: edit_tables(s, gender=np.array([1, 5, 1, 1], np.float32)), "sequence 1 has gender code 5.0"),
    "manifest without its arrays": (lambda s: (s / "poses.npy").unlink(), "poses.npy is missing: the store is incomplete"),
    "manifest without its tables": (lambda s: (s / "sequences.npz").unlink(), "sequences.npz is missing: the store is incomplete"),
    "not JSON": (lambda s: (s / "manifest.json").write_text('{"format": "llamass-packed", "vers'), "manifest.json: unreadable manifest (JSONDecodeError"),
    "a JSON list": (lambda s: (s / "manifest.json").write_text("[1, 2]"), "manifest.json: the manifest is not a JSON object"),
    "another version": (lambda s: edit_manifest(s, version=99), "store format version 99, this llamass reads version 2"),
    "a path as a key": (lambda s: edit_manifest(s, keys={"../../poses": 156}), "'../../poses' is not a per-frame key name"),
    "a width that is text": (lambda s: edit_manifest(s, keys={"poses": "156"}), "width of 'poses' should be a positive integer, is '156'"),
    "a negative frame count": (lambda s: edit_manifest(s, n_frames=-1), "'n_frames' should be a non-negative integer, is -1"),
    "an unknown model": (lambda s: edit_manifest(s, model="smpl"), "unknown body model 'smpl'"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_store_is_refused_when_opened(store, damage):
    make, message = DAMAGE[damage]
    make(store)
    with pytest.raises(StoreError) as error:
        open_store(store)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_kill_inside_the_replacement_never_opens_incomplete(tree, store, monkeypatch, step):
    "Die after each step of --force's swap (rename old aside, rename new in, delete old): old store, no store, or new store."
    old_trans = np.array(open_store(store).arrays["trans"])
    write_tree(tree, {"DS1/s9/take_poses.npz": identified_sequence(9, 5)})
    steps = []
    real_rename, real_rmtree = Path.rename, shutil.rmtree
    def step_then_die(real):
        def wrapped(*args, **kwargs):
            result = real(*args, **kwargs)
            steps.append(real)
            if len(steps) > step: raise KeyboardInterrupt("killed")
            return result
        return wrapped
    monkeypatch.setattr(Path, "rename", step_then_die(real_rename))
    monkeypatch.setattr(store_module.shutil, "rmtree", step_then_die(real_rmtree))
    with pytest.raises(KeyboardInterrupt):
        amass_pack(tree, store, force=True, progress=False)
    monkeypatch.undo()
    if step == 0:
        with pytest.raises(StoreError, match="is not a packed AMASS store"): open_store(store)
    else:
        assert open_store(store).manifest["n_frames"] == sum(LENGTHS) + 5
    assert amass_pack(tree, store, force=True, progress=False)["n_frames"] == sum(LENGTHS) + 5   # the next run finishes the job
    assert hidden_leftovers(store.parent) == [] and old_trans.shape == (sum(LENGTHS), 3)


# 15.11: one line, no traceback, nothing half-written -------------------------------------------------------------------

def test_destination_that_is_a_file(tree, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert one_line_error(capsys, [str(tree), str(tmp_path / "file")]).endswith("is a file, not a folder; choose another destination")
    assert (tmp_path / "file").read_text() == "x"


BAD_FILES = {  # arrays replaced in one file -> what read_sequence says about it
    "1-D trans": ({"trans": np.zeros(7)}, "'trans' has shape (7,), expected (7, 3)"),
    "3-D trans": ({"trans": np.zeros((7, 3, 1))}, "'trans' has shape (7, 3, 1), expected (7, 3)"),
    "betas (10,) among (16,)": ({"betas": np.zeros(10)}, "'betas' has shape (10,), expected (16,)"),
    "betas per frame": ({"betas": np.zeros((7, 16))}, "'betas' has shape (7, 16), expected (16,)"),
    "dmpls of another frame count": ({"dmpls": np.zeros((6, 8))}, "'dmpls' has shape (6, 8), expected (7, 8)"),
    "boolean dmpls": ({"dmpls": np.zeros((7, 8), bool)}, "'dmpls' is not an array of real numbers (bool)"),
    "complex dmpls": ({"dmpls": np.zeros((7, 8), complex)}, "'dmpls' is not an array of real numbers (complex128)"),
    "two genders": ({"gender": np.array(["male", "female"])}, "'gender' is not one name (<U6, shape (2,))"),
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_read_sequence_names_the_file_and_the_problem(tmp_path, bad):
    arrays, message = BAD_FILES[bad]
    path = write_npz(tmp_path / "x_poses.npz", {**identified_sequence(1, 7), **arrays})
    with pytest.raises(store_module.AMASSFileError) as error:
        store_module.read_sequence(path, "smplh", 7, {"poses": 156, "dmpls": 8, "trans": 3, "betas": 16})
    assert str(error.value) == f"{path}: {message}"


@pytest.mark.parametrize("bad", [b for b in BAD_FILES if b != "two genders"])   # (the index reads gender first: its own message)
def test_bad_file_is_one_line_naming_it_and_leaves_no_partial(tree, tmp_path, capsys, bad):
    arrays, message = BAD_FILES[bad]
    write_npz(tree / "DS1/s1/take_poses.npz", {**identified_sequence(1, 7), **arrays})
    line = one_line_error(capsys, ["-n", "2", str(tree), str(tmp_path / "store")])
    key = message.split("'")[1]
    assert line.startswith(f"amass_pack: error: {tree.resolve()}/DS1/s1/take_poses.npz: ") and f"'{key}'" in line, line
    assert hidden_leftovers(tmp_path) == [] and not (tmp_path / "store").exists()


def test_zero_frame_sequence_packs_as_an_empty_sequence(tree, tmp_path):
    write_npz(tree / "DS0/s0/take_poses.npz", identified_sequence(0, 0))
    amass_pack(tree, tmp_path / "store", progress=False)
    opened = open_store(tmp_path / "store")
    assert opened.tables["length"].tolist() == [0, 40, 7, 12]   # in path order: DS0/s0, DS0/s2, DS1/s1, DS1/s3
    assert opened.arrays["trans"][:, 0].tolist() == [2] * 40 + [1] * 7 + [3] * 12


def test_betas_of_ten_in_every_file_is_a_store_of_ten(tree, tmp_path):
    for i, n in enumerate(LENGTHS):
        write_npz(tree / f"DS{i % 2}/s{i}/take_poses.npz", {**identified_sequence(i, n), "betas": np.arange(10.0)})
    amass_pack(tree, tmp_path / "store", progress=False)
    assert open_store(tmp_path / "store").tables["betas"].tolist() == [list(range(10))] * 4


# 11.7: --keys ----------------------------------------------------------------------------------------------------------

def test_keys_before_the_folders(tree, tmp_path, capsys):
    amass_pack_cli(["--keys", "poses", "trans", str(tree), str(tmp_path / "poses_only"), "-q"])
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'poses_only'}: 4 sequences, 82 frames of poses, trans in ")
    assert read_manifest(tmp_path / "poses_only")["keys"] == {"poses": 156, "trans": 3}


def test_keys_derived_from_poses(tree, tmp_path):
    amass_pack_cli(["--keys", "poses", "root_orient", str(tree), str(tmp_path / "store"), "-q"])
    opened = open_store(tmp_path / "store")
    assert opened.manifest["keys"] == {"poses": 156, "root_orient": 3}
    assert np.array_equal(opened.arrays["root_orient"], opened.arrays["poses"][:, :3])


def test_a_key_that_is_a_path_is_refused(tree, tmp_path, capsys):
    assert one_line_error(capsys, ["--keys", "../x", str(tree), str(tmp_path / "store")]) == \
        "amass_pack: error: key '../x' is not a key name (letters, digits and _ only)"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llamass.lock", "src"]


def test_pack_waits_for_a_run_holding_its_source(tmp_path):
    "An unpack or split holds the source folder's lock: amass_pack starts reading only once it is released."
    import threading, time
    from llamass.synthetic import identified_sequence, write_tree
    from llamass.tqdm import folder_lock
    write_tree(tmp_path / "src", {f"DS/s{i}/take_poses.npz": identified_sequence(i, 10) for i in range(2)})
    done = []
    with folder_lock(tmp_path / "src"):
        worker = threading.Thread(target=lambda: done.append(amass_pack(tmp_path / "src", tmp_path / "store", progress=False)))
        worker.start()
        time.sleep(1.0)
        assert done == [] and not (tmp_path / "store").exists()         # still waiting for the source
    worker.join(30)
    assert done and done[0]["n_sequences"] == 2
