"""Hostile archives and concurrent runs (issues 11 and 15): every hostile input is built here with tarfile directly.

Each test asserts the safe outcome: nothing outside DST created or changed, no trust file taken from an archive,
walks that end, one line and a non-zero exit status from the console script, and concurrent runs on one folder
that end with the tree of a single run.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from llamass.unpack import (SPLIT_JOURNAL, UNPACK_RECORD, UnpackError, extract_archive, load_checksums, md5_dir,
                            unpack_archives)

from conftest import ROOT, SAMPLE_ARCHIVE

SAMPLE_TABLE = ROOT / "sample_data" / "checksums.json"


def add(tar, name, kind=tarfile.REGTYPE, linkname="", data=b""):
    "Append one member to an open tar archive."
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o755 if kind == tarfile.DIRTYPE else 0o644
    if kind == tarfile.REGTYPE: info.size = len(data); tar.addfile(info, io.BytesIO(data))
    else: tar.addfile(info)


def cve_2025_4517_archive(path, victim):
    """The shape of CVE-2025-4517: a symlink chain whose resolved path passes PATH_MAX, a symlink that climbs
    out through it, a hard link to the victim through that, and a regular file written through the hard link."""
    comp, steps, deep = "d" * 247, "abcdefghijklmnop", "CMU"   # inside CMU/, so the chain is what is refused
    with tarfile.open(path, "w") as tar:
        add(tar, "CMU/ok.npz", data=b"harmless")                        # a normal first member
        for step in steps:
            add(tar, os.path.join(deep, comp), tarfile.DIRTYPE)
            add(tar, os.path.join(deep, step), tarfile.SYMTYPE, comp)
            deep = os.path.join(deep, comp)
        long_link = os.path.join("CMU", *steps, "l" * 254)
        add(tar, long_link, tarfile.SYMTYPE, "../" * len(steps))
        add(tar, "CMU/escape", tarfile.SYMTYPE, long_link[len("CMU/"):] + "/.." * (len(steps) + 1) + "/" + str(victim.parent).lstrip("/"))
        add(tar, "CMU/victim_link", tarfile.LNKTYPE, "CMU/escape/" + victim.name)
        add(tar, "CMU/victim_link", data=b"OVERWRITTEN by the archive")
    return path


def snapshot(root, skip):
    "{relative path: (kind, md5 of bytes)} of everything under `root` except under `skip` (links not followed)."
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents: continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path == skip: continue
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            result[str(path.relative_to(root))] = (path.is_symlink(), path.is_dir(), hashlib.md5(data).hexdigest())
    return result


def run_script(*args, timeout=60):
    "Run a console script of this package in a fresh process; (exit status, stdout, stderr)."
    name, rest = args[0], [str(a) for a in args[1:]]
    module, function = {"fast_amass_unpack": ("llamass.unpack", "fast_amass_unpack"),
                        "amass_split_dirs": ("llamass.splits", "console_split_dirs")}[name]
    code = f"import sys; from {module} import {function}; {function}(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, *rest], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return done.returncode, done.stdout, done.stderr


def run_here(capsys, *args):
    "A console script called in this process (same code, no interpreter start-up): (exit status, stdout, stderr)."
    from llamass.splits import console_split_dirs
    from llamass.unpack import fast_amass_unpack
    script = {"fast_amass_unpack": fast_amass_unpack, "amass_split_dirs": console_split_dirs}[args[0]]
    capsys.readouterr()
    try: script([str(a) for a in args[1:]]); status = 0
    except SystemExit as e: status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def hostile(tmp_path):
    "A download folder, a victim file outside DST, and DST."
    (tmp_path / "tars").mkdir()
    (tmp_path / "elsewhere").mkdir()
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.write_text("the user's file")
    return tmp_path, victim


@pytest.mark.parametrize("options,process", [(["-n", "1"], True), (["-n", "2", "--verify"], True), (["-n", "2"], False), (["-n", "1", "--verify"], False)])
def test_cve_2025_4517_shape_writes_nothing_outside(hostile, capsys, options, process):
    tmp, victim = hostile
    cve_2025_4517_archive(tmp / "tars" / "evil.tar", victim)
    before = snapshot(tmp, tmp / "dst")
    args = ("fast_amass_unpack", "-q", *options, tmp / "tars", tmp / "dst")
    status, out, err = run_script(*args) if process else run_here(capsys, *args)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("fast_amass_unpack: error: ")
    assert "refused unsafe member" in err and "symbolic link" in err
    assert snapshot(tmp, tmp / "dst") == before                       # nothing outside DST created or changed
    assert victim.read_text() == "the user's file"
    assert sorted(p.name for p in (tmp / "dst").iterdir()) == [".llamass.lock"]   # nothing inside either


@pytest.mark.parametrize("kind,linkname,why", [
    (tarfile.SYMTYPE, "../../elsewhere/victim.txt", "symbolic link"), (tarfile.SYMTYPE, "ok.npz", "symbolic link"),
    (tarfile.LNKTYPE, "CMU/ok.npz", "hard link"), (tarfile.FIFOTYPE, "", "a FIFO"),
    (tarfile.CHRTYPE, "", "character device"), (tarfile.BLKTYPE, "", "block device")])
def test_every_link_and_special_member_is_refused(hostile, kind, linkname, why):
    tmp, victim = hostile
    with tarfile.open(tmp / "tars" / "evil.tar", "w") as tar:
        add(tar, "CMU/ok.npz", data=b"x")
        add(tar, "CMU/member", kind, linkname)
    with pytest.raises(UnpackError, match=why):
        unpack_archives(tmp / "tars", tmp / "dst", progress=False)
    assert not (tmp / "dst" / "CMU").exists() and victim.read_text() == "the user's file"


@pytest.mark.parametrize("name", ["CMU.hash", "CMU/x.hash", SPLIT_JOURNAL, UNPACK_RECORD, ".llamass.lock",
                                  ".llamass-staging-abc/CMU/x.npz", ".llamass-old/CMU/x.npz", "CMU/../../x", "/etc/x"])
def test_llamass_names_and_escaping_names_are_refused(capsys, hostile, name):
    tmp, _ = hostile
    with tarfile.open(tmp / "tars" / "evil.tar", "w") as tar: add(tar, name, data=b"planted")
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tmp / "tars", tmp / "dst")
    assert status == 1 and err.count("\n") == 1 and f"refused unsafe member {name!r}" in err
    assert sorted(p.name for p in (tmp / "dst").iterdir()) == [".llamass.lock"]


def test_planted_trust_file_and_fake_folder_cannot_replace_a_verified_one(tmp_path):
    """15.2: a second archive (no checksum entry) ships a fake CMU/ and a CMU.hash holding the real md5."""
    table = load_checksums(SAMPLE_TABLE)
    (tmp_path / "tars").mkdir()
    shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    unpack_archives(tmp_path / "tars", tmp_path / "dst", verify=True, checksums=table, progress=False)
    real = md5_dir(tmp_path / "dst" / "CMU")
    with tarfile.open(tmp_path / "tars" / "zz_fake.tar", "w") as tar:
        add(tar, "CMU/fake_poses.npz", data=b"fake")
        add(tar, "CMU.hash", data=real.encode())
    with pytest.raises(UnpackError, match="zz_fake.tar: refused unsafe member 'CMU.hash'"):
        unpack_archives(tmp_path / "tars", tmp_path / "dst", verify=True, checksums=table, progress=False)
    with tarfile.open(tmp_path / "tars" / "zz_fake.tar", "w") as tar: add(tar, "CMU/fake_poses.npz", data=b"fake")
    with pytest.raises(UnpackError, match="CMU already exists and was unpacked from sample.tar.bz2"):
        unpack_archives(tmp_path / "tars", tmp_path / "dst", verify=True, checksums=table, progress=False)
    assert md5_dir(tmp_path / "dst" / "CMU") == real and (tmp_path / "dst" / "CMU.hash").read_text() == table["sample.tar.bz2"]["hash"][0]


@pytest.mark.parametrize("unpacks_to,why", [("../CMU", "is a path"), ("/tmp/CMU", "is a path"), ("a/b", "is a path"),
                                            ("..", "'.' or '..'"), (".llamass_splits.json", "own records")])
def test_checksum_table_names_folders_only(capsys, tmp_path, unpacks_to, why):
    (tmp_path / "tars").mkdir()
    shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    (tmp_path / "table.json").write_text(json.dumps({"sample.tar.bz2": {"unpacks_to": unpacks_to, "hash": "0" * 32}}))
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", "--verify", "--checksums", tmp_path / "table.json", tmp_path / "tars", tmp_path / "dst")
    assert status == 1 and err.count("\n") == 1 and why in err
    assert not (tmp_path / "CMU.hash").exists() and not (tmp_path / "dst").exists()


@pytest.mark.parametrize("member,why", [(".llamass-staging-" + hashlib.md5(b"evil.tar").hexdigest()[:16] + "/x", "own records"),
                                         ("n" * 243 + "/x.npz", "longer than 200 bytes")])
def test_staging_name_and_long_name_end_with_one_line(capsys, hostile, member, why):
    """15.11: a member named like the staging folder, a 243-byte top-level name: one line, nothing half-written."""
    tmp, _ = hostile
    with tarfile.open(tmp / "tars" / "evil.tar", "w") as tar: add(tar, member, data=b"x")
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tmp / "tars", tmp / "dst")
    assert status == 1 and err.count("\n") == 1 and why in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp / "dst").iterdir()) == [".llamass.lock"]


@pytest.mark.parametrize("record", ["{not json", "[1, 2]", '{"archives": {"a.tar": {"folders": ["../x"]}}}'])
def test_malformed_unpack_record_is_one_line(capsys, tmp_path, record):
    (tmp_path / "tars").mkdir(); (tmp_path / "dst").mkdir()
    shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    (tmp_path / "dst" / UNPACK_RECORD).write_text(record)
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tmp_path / "tars", tmp_path / "dst")
    assert status == 1 and err.count("\n") == 1 and UNPACK_RECORD in err


def test_symlink_loops_and_fifo_do_not_hang_verify(tmp_path):
    """15.3: links to `.` and `..` and a FIFO named like a sequence in the tree being checksummed."""
    extract_archive(SAMPLE_ARCHIVE, tmp_path / "a")
    expected = md5_dir(tmp_path / "a" / "CMU")
    (tmp_path / "a" / "CMU" / "dot").symlink_to(".")
    (tmp_path / "a" / "CMU" / "dotdot").symlink_to("..")
    os.mkfifo(tmp_path / "a" / "CMU" / "x_poses.npz")
    code = f"from llamass.unpack import md5_dir; print(md5_dir({str(tmp_path / 'a' / 'CMU')!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == expected


def folder_sums(root):
    "{name: md5_dir} of the sub-dataset folders of `root` (llamass's own records left out)."
    return {p.name: md5_dir(p) for p in sorted(Path(root).iterdir()) if p.is_dir() and not p.name.startswith(".")}


@pytest.mark.parametrize("verify", [False, True])
def test_two_concurrent_unpacks_give_the_tree_of_one(tmp_path, verify):
    """11.2: two real processes of fast_amass_unpack on one folder: both honest, the tree of a single run."""
    (tmp_path / "tars").mkdir()
    for name in ("sample.tar.bz2", "second.tar.bz2"):
        shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars" / name)
    table = {"sample.tar.bz2": {"unpacks_to": ["CMU", "HumanEva", "SSM_synced"], "hash": load_checksums(SAMPLE_TABLE)["sample.tar.bz2"]["hash"]}}
    with tarfile.open(tmp_path / "tars" / "second.tar.bz2", "w:bz2") as tar:   # a second archive, another folder
        add(tar, "Second/s1/a_poses.npz", data=b"second archive")
    (tmp_path / "table.json").write_text(json.dumps(table))
    extra = ["--verify", "--checksums", tmp_path / "table.json"] if verify else []
    single = tmp_path / "single"
    assert run_script("fast_amass_unpack", "-q", *extra, tmp_path / "tars", single)[0] == 0
    cmd = lambda: [sys.executable, "-c", "import sys; from llamass.unpack import fast_amass_unpack; fast_amass_unpack(sys.argv[1:])",
                   "-q", *map(str, extra), str(tmp_path / "tars"), str(tmp_path / "both")]
    runs = [subprocess.Popen(cmd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert folder_sums(tmp_path / "both") == folder_sums(single)
    assert sorted(folder_sums(single)) == ["CMU", "HumanEva", "SSM_synced", "Second"]
    assert all("mismatch" not in err and "Traceback" not in err for _, err in outputs)
    assert not list((tmp_path / "both").glob(".llamass-*"))


def test_split_tree_is_not_unpacked_again(tmp_path):
    """11.3: unpack -> split -> unpack again (verified and not): no doubling, the same folders in the same places."""
    (tmp_path / "tars").mkdir()
    shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    dst = tmp_path / "dst"
    extra = ["--checksums", SAMPLE_TABLE]
    assert run_script("fast_amass_unpack", "-q", "--verify", *extra, tmp_path / "tars", dst)[0] == 0
    assert run_script("amass_split_dirs", dst)[0] == 0
    layout = sorted(str(p.relative_to(dst)) for p in dst.glob("*/*") if p.is_dir())
    assert layout == ["test/SSM_synced", "train/CMU", "val/HumanEva"]
    status, out, _ = run_script("fast_amass_unpack", "-q", "--verify", *extra, tmp_path / "tars", dst)
    assert status == 0 and out.startswith("0 archives unpacked, 1 skipped (1 verified earlier)")
    status, out, _ = run_script("fast_amass_unpack", "-q", tmp_path / "tars", dst)   # a plain re-run keeps the records
    assert status == 0 and out.startswith("0 archives unpacked, 1 skipped (1 unpacked earlier, unchanged)")
    assert sorted(p.name for p in dst.glob("*.hash")) == ["CMU.hash", "HumanEva.hash", "SSM_synced.hash"]
    os.utime(tmp_path / "tars" / "sample.tar.bz2", (1, 1))                              # a changed archive is unpacked again
    status, out, _ = run_script("fast_amass_unpack", "-q", tmp_path / "tars", dst)
    assert status == 0 and out.startswith("1 archives unpacked (1 not verified)")
    assert sorted(str(p.relative_to(dst)) for p in dst.glob("*/*") if p.is_dir()) == layout
    assert sorted(p.name for p in dst.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["test", "train", "val"]


def test_the_archive_beats_this_interpreters_data_filter(hostile):
    """Why llamass does not rely on tarfile's `data` filter: on an unpatched Python the same archive overwrites the victim."""
    tmp, victim = hostile
    cve_2025_4517_archive(tmp / "evil.tar", victim)
    try:
        with tarfile.open(tmp / "evil.tar") as tar: tar.extractall(tmp / "stdlib", filter="data")
    except (tarfile.TarError, OSError, KeyError): pass
    if victim.read_text() == "the user's file": pytest.skip(f"this Python ({sys.version.split()[0]}) has the CVE-2025-4517 fix")
    assert victim.read_text() == "OVERWRITTEN by the archive"


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    """11.7: without -q, a run whose stderr is a pipe or a log file writes no progress bar (no carriage returns)."""
    (tmp_path / "tars").mkdir(); shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    status, out, err = run_script("fast_amass_unpack", tmp_path / "tars", tmp_path / "dst")
    assert status == 0 and err == "" and out.startswith("1 archives unpacked (1 not verified), 0 skipped: 9 files")


def test_progress_parallel_draws_only_on_rank_zero_terminals(monkeypatch):
    from llamass import tqdm as bars
    class Terminal(io.StringIO):
        def isatty(self): return True
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.delenv("RANK", raising=False); monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert bars.show_progress(True) and not bars.show_progress(False)
    monkeypatch.setenv("RANK", "3")
    assert not bars.show_progress(True)
    bars.ProgressParallel(n_jobs=1, total=2, desc="x")(iter([]))
    assert sys.stderr.getvalue() == ""


def test_verify_without_published_checksum_is_one_warning_line_then_skipped(tmp_path):
    """11.7: one warning line without a source line, an honest summary, and no unpacking again on the next run."""
    (tmp_path / "tars").mkdir(); shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars")
    status, out, err = run_script("fast_amass_unpack", "--verify", tmp_path / "tars", tmp_path / "dst")
    assert status == 0 and out.startswith("1 archives unpacked (1 with no published checksum (not verified)), 0 skipped:")
    assert err == ("llamass: warning: sample.tar.bz2: no published checksum; unpacked without verification "
                   "(re-runs with --verify skip it while it is unchanged)\n")
    status, out, err = run_script("fast_amass_unpack", "--verify", tmp_path / "tars", tmp_path / "dst")
    assert (status, err) == (0, "") and out.startswith("0 archives unpacked, 1 skipped (1 unpacked earlier, unchanged): 0 files")
    os.utime(tmp_path / "tars" / "sample.tar.bz2", (1, 1))                        # a changed archive is unpacked again
    assert run_script("fast_amass_unpack", "-q", "--verify", tmp_path / "tars", tmp_path / "dst")[1].startswith("1 archives unpacked")
