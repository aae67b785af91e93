"""Corrupted, truncated and hostile downloads (issue 19, points 1-3, 5-8, 10, 11): each one fails with one line and
leaves nothing half-written, whatever `-n` is; records survive re-runs; Ctrl-C stops cleanly.

Every archive is crafted here (tarfile, bz2, gzip, raw bytes) and kept small: sizes that would fill a disk are
declared, not written, and free space is reported by a stand-in where a test needs a nearly full disk.
"""
import bz2
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

import llamass.unpack as unpack
from llamass.unpack import (LEFTOVER_MARKER, UNPACK_RECORD, UnpackError, extract_archive, md5_dir, remove_tree,
                            unpack_archives, usable_cores)

from conftest import ROOT, SAMPLE_ARCHIVE
from test_unpack_safety import run_here, run_script

SAMPLE_TABLE = ROOT / "sample_data" / "checksums.json"
NINE = {f"DS/s{i // 3}/{i}_poses.npz": bytes(range(i, 256)) * 40 for i in range(9)}


def tar_bytes(members, form=tarfile.GNU_FORMAT, errors="surrogateescape"):
    "The bytes of a tar archive of `members` ({name: data}) as tarfile writes it."
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=form, errors=errors) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def header_offsets(data):
    "Where each member's header starts in the tar bytes `data`."
    with tarfile.open(fileobj=io.BytesIO(data)) as tar: return [m.offset for m in tar.getmembers()]


def members_end(data):
    "Where the last member's data (padded) ends in the tar bytes `data`: where the end-of-archive blocks start."
    with tarfile.open(fileobj=io.BytesIO(data)) as tar: last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def header(name, size, kind=tarfile.REGTYPE):
    "One 512-byte GNU header."
    info = tarfile.TarInfo(name); info.size, info.type = size, kind
    return info.tobuf(tarfile.GNU_FORMAT)


def padded(data):
    "`data` padded with zeros to whole 512-byte blocks."
    return data + bytes(-len(data) % 512)


def tars_with(tmp_path, name, data):
    "A download folder holding one archive `name` with bytes `data`."
    (tmp_path / "tars").mkdir(parents=True, exist_ok=True)
    (tmp_path / "tars" / name).write_bytes(data)
    return tmp_path / "tars"


def only_lock(dst):
    "True when `dst` holds nothing but its (released) lock file."
    return sorted(p.name for p in Path(dst).iterdir()) == [".llamass.lock"]


def one_line(err):
    "True when `err` is exactly one error line of fast_amass_unpack, without a traceback."
    return err.count("\n") == 1 and err.startswith("fast_amass_unpack: error: ") and "Traceback" not in err


# 1. one flipped byte ------------------------------------------------------------------------------------------

def decodes_to(packed, expected):
    "True when Python's bz2 decodes `packed` to exactly `expected` (a flip in an unused Huffman code length does)."
    try: return bz2.decompress(packed) == expected
    except (OSError, EOFError, ValueError): return False


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_one_flipped_byte_is_an_error_with_any_n(tmp_path, capsys, jobs):
    whole = tar_bytes(NINE)
    packed = bz2.compress(whole)
    extract_archive(tars_with(tmp_path, "whole.tar.bz2", packed) / "whole.tar.bz2", tmp_path / "ref")
    reference = md5_dir(tmp_path / "ref" / "DS")
    positions = range(10, len(packed) - 10, len(packed) // 24)
    for k, position in enumerate(positions):
        flipped = packed[:position] + bytes([packed[position] ^ 0x10]) + packed[position + 1:]
        tars = tars_with(tmp_path / str(k), "flip.tar.bz2", flipped)
        status, out, err = run_here(capsys, "fast_amass_unpack", "-q", "-n", jobs, tars, tmp_path / str(k) / "dst")
        if status == 0 and decodes_to(flipped, whole):   # the same bytes come out: the same tree, rightly accepted
            assert md5_dir(tmp_path / str(k) / "dst" / "DS") == reference
            continue
        assert status == 1 and one_line(err) and "flip.tar.bz2: " in err, (position, err)
        assert only_lock(tmp_path / str(k) / "dst")


# 2. cut at a member boundary, garbage after the end --------------------------------------------------------------

def cut_archives():
    "{name: bytes} of downloads cut after the second of four members."
    whole = tar_bytes({f"DS/{i}.npz": bytes([65 + i]) * 3000 for i in range(4)})
    cut = whole[:header_offsets(whole)[2]]
    return {"cut.tar": cut, "cut.tar.bz2": bz2.compress(cut), "cut.tar.gz": gzip.compress(cut),
            "cut.tbz2": bz2.compress(cut[:4096]) + bz2.compress(cut[4096:])}   # two streams, each whole


@pytest.mark.parametrize("name", sorted(cut_archives()))
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_archive_cut_at_a_member_boundary_fails_and_is_never_trusted(tmp_path, capsys, name, jobs):
    tars = tars_with(tmp_path, name, cut_archives()[name])
    for extra in ([], ["--verify"], ["--verify"]):   # a later --verify run does not skip it as "unpacked earlier"
        status, _, err = run_here(capsys, "fast_amass_unpack", "-q", "-n", jobs, *extra, tars, tmp_path / "dst")
        assert status == 1 and one_line(err) and f"{name}: truncated or corrupt archive" in err
        assert "after member 'DS/1.npz' without the end-of-archive blocks" in err
        assert only_lock(tmp_path / "dst")


def joined_and_padded():
    "{name: (bytes, why)} of archives with something after their end."
    whole = tar_bytes(NINE)
    return {"joined.tar": (whole + whole, "data after the end-of-archive block"),
            "joined.tar.bz2": (bz2.compress(whole) + bz2.compress(whole), "data after the end-of-archive block"),
            "padded.tar.bz2": (bz2.compress(whole) + b"\0" * 100, "does not end where a bzip2 stream ends"),
            "junk.tar.bz2": (bz2.compress(whole) + b"BZh9 not a stream", "does not end where a bzip2 stream ends"),
            "padded.tar.gz": (gzip.compress(whole) + b"junk", "truncated or corrupt archive"),
            "plain.tar.bz2": (whole, "it is not a bzip2 file"),
            "empty.tar.bz2": (b"", "it is not a bzip2 file"),
            "empty.tar": (b"", "it ends before its first member"),
            "lone.tar": (whole[:members_end(whole)] + bytes(512), "ends inside the end-of-archive blocks")}


@pytest.mark.parametrize("name", sorted(joined_and_padded()))
def test_anything_after_the_end_is_an_error(tmp_path, name):
    data, why = joined_and_padded()[name]
    tars = tars_with(tmp_path, name, data)
    for jobs in (1, 2):
        with pytest.raises(UnpackError, match=why):
            unpack_archives(tars, tmp_path / "dst", n_jobs=jobs, progress=False)
        assert only_lock(tmp_path / "dst")


def test_zeros_after_the_end_are_bounded(tmp_path):
    """Tar pads its end with zeros to a record (10 KiB by default, 1 MiB with -b 2048): accepted; 65 MiB is a bomb."""
    zeros = bz2.compress(bytes(1 << 20))   # bzip2 streams in a row are one byte stream
    tars = tars_with(tmp_path, "padded.tar.bz2", bz2.compress(tar_bytes(NINE)) + zeros)
    assert [r["status"] for r in unpack_archives(tars, tmp_path / "ok", progress=False)] == ["unpacked"]
    tars.joinpath("padded.tar.bz2").write_bytes(bz2.compress(tar_bytes(NINE)) + zeros * 65)
    with pytest.raises(UnpackError, match="more than 67,108,864 bytes of zeros after the end"):
        unpack_archives(tars, tmp_path / "bomb", progress=False)
    assert only_lock(tmp_path / "bomb")


def test_an_unreadable_archive_is_one_line(tmp_path, capsys):
    tars = tars_with(tmp_path, "locked.tar.bz2", bz2.compress(tar_bytes(NINE)))
    (tars / "locked.tar.bz2").chmod(0)
    if os.access(tars / "locked.tar.bz2", os.R_OK): pytest.skip("this user reads any file (root)")
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tars, tmp_path / "dst")
    assert status == 1 and one_line(err) and "locked.tar.bz2: cannot read it (Permission denied)" in err


def test_parallel_decoder_prints_nothing_of_its_own(tmp_path):
    """indexed_bzip2 warns on stderr about bytes after a stream; the archive is refused before it starts."""
    tars = tars_with(tmp_path, "padded.tar.bz2", bz2.compress(tar_bytes(NINE)) + b"appended")
    status, out, err = run_script("fast_amass_unpack", "-q", "-n", "2", tars, tmp_path / "dst")
    assert status == 1 and out == "" and one_line(err) and "does not end where a bzip2 stream ends" in err


def pax_archive(records):
    "A tar of one member 'DS/x.npz' (3 bytes) preceded by a pax header holding the raw bytes `records`."
    return header("././@PaxHeader", len(records), tarfile.XHDTYPE) + padded(records) + header("DS/x.npz", 3) + padded(b"abc") + bytes(1024)


def pax(keyword, value):
    "One pax record, its length counting itself."
    body = b" %s=%s\n" % (keyword, value)
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length: length += 1
    return b"%d" % length + body


@pytest.mark.parametrize("records,why", [
    (b"99 path=DS/y.npz\n", "malformed pax header"), (b"14 path=DS/y\n", "malformed pax header"),
    (b"9" * 5000 + b" path=x\n", "malformed pax header"), (pax(b"size", b"-3"), "a negative pax size for member 'DS/x.npz'"),
    (pax(b"size", b"abc"), "pax size 'abc' of member 'DS/x.npz' is not a number"),
    (pax(b"GNU.sparse.map", b"0,3"), "sparse file"), (pax(b"linkpath", b"/etc/passwd") + pax(b"path", b"DS/y.npz"), None)])
def test_pax_headers_are_parsed_strictly(tmp_path, records, why):
    if why is None:   # a linkpath on a regular file is ignored, the path applies
        extract_archive(tars_with(tmp_path, "pax.tar", pax_archive(records)) / "pax.tar", tmp_path / "out")
        assert (tmp_path / "out" / "DS" / "y.npz").read_bytes() == b"abc"
        return
    with pytest.raises(UnpackError, match=why):
        extract_archive(tars_with(tmp_path, "pax.tar", pax_archive(records)) / "pax.tar", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").rglob("*")] in ([], ["DS"])


# 3. records that last ----------------------------------------------------------------------------------------

def sample_tars(tmp_path):
    (tmp_path / "tars").mkdir()
    (tmp_path / "tars" / "sample.tar.bz2").write_bytes(SAMPLE_ARCHIVE.read_bytes())
    return tmp_path / "tars"


def test_plain_rerun_keeps_the_verification_records(tmp_path, capsys):
    tars, dst = sample_tars(tmp_path), tmp_path / "dst"
    assert run_here(capsys, "fast_amass_unpack", "-q", "--verify", "--checksums", SAMPLE_TABLE, tars, dst)[0] == 0
    inode = os.stat(dst / "CMU" / "01" / "shape.npz").st_ino
    status, out, _ = run_here(capsys, "fast_amass_unpack", "-q", tars, dst)
    assert status == 0 and out.startswith("0 archives unpacked, 1 skipped (1 unpacked earlier, unchanged)")
    assert sorted(p.name for p in dst.glob("*.hash")) == ["CMU.hash", "HumanEva.hash", "SSM_synced.hash"]
    status, out, _ = run_here(capsys, "fast_amass_unpack", "-q", "--verify", "--checksums", SAMPLE_TABLE, tars, dst)
    assert status == 0 and out.startswith("0 archives unpacked, 1 skipped (1 verified earlier)")
    assert os.stat(dst / "CMU" / "01" / "shape.npz").st_ino == inode   # never extracted again


def test_checksums_imply_verify_and_an_unpacked_tree_is_checked_in_place(tmp_path, capsys):
    tars, dst = sample_tars(tmp_path), tmp_path / "dst"
    assert run_here(capsys, "fast_amass_unpack", "-q", tars, dst)[0] == 0
    inode = os.stat(dst / "CMU" / "01" / "shape.npz").st_ino
    status, out, _ = run_here(capsys, "fast_amass_unpack", "-q", "--checksums", SAMPLE_TABLE, tars, dst)   # no --verify
    assert status == 0 and out.startswith("0 archives unpacked, 1 skipped (1 verified in place)")
    table = json.loads(SAMPLE_TABLE.read_text())["sample.tar.bz2"]
    assert [(dst / f"{f}.hash").read_text() for f in table["unpacks_to"]] == table["hash"]
    assert os.stat(dst / "CMU" / "01" / "shape.npz").st_ino == inode
    (dst / "CMU.hash").unlink(); (dst / "CMU" / "01" / "shape.npz").write_bytes(b"damaged")   # a damaged tree: unpacked again
    status, out, _ = run_here(capsys, "fast_amass_unpack", "-q", "--checksums", SAMPLE_TABLE, tars, dst)
    assert status == 0 and out.startswith("1 archives unpacked (1 verified)")
    assert md5_dir(dst / "CMU") == table["hash"][0]


def test_an_unreadable_hash_record_is_not_trusted(tmp_path, capsys):
    tars, dst = sample_tars(tmp_path), tmp_path / "dst"
    assert run_here(capsys, "fast_amass_unpack", "-q", "--checksums", SAMPLE_TABLE, tars, dst)[0] == 0
    (dst / "CMU.hash").write_bytes(b"\xff\xfe not text")
    status, out, err = run_here(capsys, "fast_amass_unpack", "-q", "--checksums", SAMPLE_TABLE, tars, dst)
    assert status == 0 and err == "" and out.startswith("0 archives unpacked, 1 skipped (1 verified in place)")
    assert (dst / "CMU.hash").read_text() == json.loads(SAMPLE_TABLE.read_text())["sample.tar.bz2"]["hash"][0]


def test_a_record_without_read_to_end_is_not_trusted(tmp_path, capsys):
    """Records of older versions said 'complete' for archives cut at a member boundary."""
    tars, dst = sample_tars(tmp_path), tmp_path / "dst"
    assert run_here(capsys, "fast_amass_unpack", "-q", tars, dst)[0] == 0
    record = json.loads((dst / UNPACK_RECORD).read_text())
    assert record["archives"]["sample.tar.bz2"]["read_to_end"] is True
    del record["archives"]["sample.tar.bz2"]["read_to_end"]
    (dst / UNPACK_RECORD).write_text(json.dumps(record))
    status, out, _ = run_here(capsys, "fast_amass_unpack", "-q", tars, dst)
    assert status == 0 and out.startswith("1 archives unpacked (1 not verified)")


# 5. checksums independent of the file system ----------------------------------------------------------------------

def test_md5_dir_is_the_same_in_any_directory_order(tmp_path, monkeypatch):
    (tmp_path / "t" / "sub").mkdir(parents=True)
    for name in ("a", "A", "b", "B"): (tmp_path / "t" / name).write_bytes(name.encode() * 3)
    (tmp_path / "t" / "sub" / "Z").write_bytes(b"z"); (tmp_path / "t" / "sub" / "z").write_bytes(b"Z")
    as_listed = md5_dir(tmp_path / "t")
    real_scandir = os.scandir

    class Reversed:
        "os.scandir listing its entries in the opposite order (as another file system might)."
        def __init__(self, path):
            with real_scandir(path) as entries: self.entries = sorted(entries, key=lambda e: e.name, reverse=True)
        def __enter__(self): return iter(self.entries)
        def __exit__(self, *exc): return False
        def __iter__(self): return iter(self.entries)
    for order in (True, False):
        monkeypatch.setattr(os, "scandir", lambda path: Reversed(path) if order else real_scandir(path))
        assert md5_dir(tmp_path / "t") == as_listed
    expected = hashlib.md5(b"A" + b"AAA" + b"a" + b"aaa" + b"B" + b"BBB" + b"b" + b"bbb" + b"sub" + b"Z" + b"z" + b"z" + b"Z")
    assert as_listed == expected.hexdigest()


def test_md5_dir_of_the_bundled_sample_is_the_published_one(sample_root):
    table = json.loads(SAMPLE_TABLE.read_text())["sample.tar.bz2"]
    assert [md5_dir(sample_root / f) for f in table["unpacks_to"]] == table["hash"]


def test_md5_dir_of_the_real_sample_is_the_published_one(real_sample_root):
    assert md5_dir(real_sample_root / "sample") == "b5a86fe22ed2799d79101a532eb0ff27"


# 6. declared sizes against free space -----------------------------------------------------------------------------

def test_a_member_larger_than_the_free_space_is_refused_before_writing(tmp_path, capsys, monkeypatch):
    """A few hundred bytes of bzip2 that declare (and hold) 4 MiB of zeros, on a disk with 1 MiB free."""
    tars = tars_with(tmp_path, "zeros.tar.bz2", bz2.compress(tar_bytes({"DS/zeros.npz": bytes(4 << 20)})))
    assert tars.joinpath("zeros.tar.bz2").stat().st_size < 1000
    monkeypatch.setattr(unpack, "free_bytes", lambda folder: 1 << 20, raising=False)
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tars, tmp_path / "dst")
    assert status == 1 and one_line(err)
    assert "refused unsafe member 'DS/zeros.npz' (it declares 4,194,304 bytes and only 1,048,576 are free in" in err
    assert only_lock(tmp_path / "dst")


def test_a_declared_size_beyond_the_real_free_space_is_refused(tmp_path, capsys):
    free = unpack.free_bytes(tmp_path)
    tars = tars_with(tmp_path, "huge.tar", header("DS/huge.npz", free + (1 << 30)) + bytes(4096))
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tars, tmp_path / "dst")
    assert status == 1 and one_line(err) and f"declares {free + (1 << 30):,} bytes" in err
    assert only_lock(tmp_path / "dst")


# 7. header size caps ----------------------------------------------------------------------------------------------

def long_header_archive(kind, size):
    "A tar whose GNU long-name (kind 'L') or pax ('x') header holds a real name and then `size` zero bytes."
    name = b"DS/x_poses.npz"
    record = b" path=" + name + b"\n"
    body = name + b"\0" if kind == tarfile.GNUTYPE_LONGNAME else b"%d" % (len(record) + 2) + record   # a 2-digit length
    body += bytes(size)
    return header("././@LongLink", len(body), kind) + padded(body) + header("short", 3) + padded(b"abc") + bytes(10240)


@pytest.mark.parametrize("kind,what", [(tarfile.GNUTYPE_LONGNAME, "GNU long-name"), (tarfile.XHDTYPE, "pax")])
def test_huge_long_name_and_pax_headers_are_refused(tmp_path, capsys, kind, what):
    tars = tars_with(tmp_path, "long.tar.bz2", bz2.compress(long_header_archive(kind, 1 << 20)))
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", tars, tmp_path / "dst")
    assert status == 1 and one_line(err) and f"refused a {what} header of 1,048,5" in err
    assert only_lock(tmp_path / "dst")


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE])
def test_headers_under_the_cap_still_work(tmp_path, kind):
    extract_archive(tars_with(tmp_path, "ok.tar", long_header_archive(kind, 1000)) / "ok.tar", tmp_path / "out")
    assert (tmp_path / "out" / "DS" / "x_poses.npz").read_bytes() == b"abc"


def test_a_300_mib_header_does_not_reach_memory(tmp_path):
    """The issue's case: 300 MiB of zeros behind a long-name header, a few KB of bzip2; peak memory stays flat."""
    zeros = bz2.compress(bytes(1 << 20))   # concatenated bzip2 streams are one byte stream
    name = b"DS/x_poses.npz\0"
    data = (bz2.compress(header("././@LongLink", len(name) + (300 << 20), tarfile.GNUTYPE_LONGNAME) + name)
            + zeros * 300 + bz2.compress(bytes(-(len(name) + (300 << 20)) % 512) + header("short", 0) + bytes(10240)))
    tars = tars_with(tmp_path, "long.tar.bz2", data)
    code = ("import resource, sys; from llamass.unpack import fast_amass_unpack\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try: fast_amass_unpack(sys.argv[1:])\nexcept SystemExit as e: print(e.code)\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    done = subprocess.run([sys.executable, "-c", code, "-q", "-n", "1", str(tars), str(tmp_path / "dst")],
                          capture_output=True, text=True, timeout=300)
    status, grown_mib = done.stdout.split()
    assert status == "1" and "refused a GNU long-name header" in done.stderr
    assert int(grown_mib) < 32, done.stdout


# 8. memory flat in the member count -------------------------------------------------------------------------------

def many_members(path, count):
    "A .tar.gz of `count` members, all the folder DS/ again (cheap to write, cheap to extract)."
    block = header("DS/", 0, tarfile.DIRTYPE)
    chunk = gzip.compress(block * 1000, 1)
    path.write_bytes(chunk * (count // 1000) + gzip.compress(header("DS/end.npz", 1) + padded(b"x") + bytes(10240)))
    return path


def test_memory_does_not_grow_with_the_member_count(tmp_path):
    peaks = []
    for count in (1_000, 16_000):
        archive = many_members(tmp_path / f"many{count}.tar.gz", count)
        tracemalloc.start()
        assert extract_archive(archive, tmp_path / f"out{count}") == (1, 1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] - peaks[0] < 1 << 20, peaks   # tarfile kept ~0.45 KB per member: 7 MB more for 15,000 more


# 10. names that are not UTF-8 -------------------------------------------------------------------------------------

def test_a_member_name_that_is_not_utf8_is_one_line(tmp_path, capsys):
    name = os.fsdecode(b"DS/s0/\xff_poses.npz")
    tars = tars_with(tmp_path, "odd.tar.bz2", bz2.compress(tar_bytes({"DS/s0/ok_poses.npz": b"ok", name: b"x"})))
    (tmp_path / "table.json").write_text(json.dumps({"odd.tar.bz2": {"unpacks_to": "DS", "hash": "0" * 32}}))
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", "--verify", "--checksums", tmp_path / "table.json",
                              tars, tmp_path / "dst")
    assert status == 1 and one_line(err) and "a name that is not UTF-8" in err and "'DS/s0/\\udcff_poses.npz'" in err
    assert only_lock(tmp_path / "dst")


def test_a_checksum_table_naming_a_lone_surrogate_is_one_line(tmp_path, capsys):
    (tmp_path / "table.json").write_text('{"x.tar": {"unpacks_to": "\\udcff", "hash": "%s"}}' % ("0" * 32))
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", "--checksums", tmp_path / "table.json", SAMPLE_ARCHIVE.parent,
                              tmp_path / "dst")
    assert status == 1 and one_line(err) and "is not UTF-8 text" in err


# 11. deep paths and leftovers ---------------------------------------------------------------------------------------

def deep_folder(root, depth):
    "Make `root`/d/d/.../d (`depth` folders) without recursion; the deepest one."
    folder = root
    for _ in range(depth): folder = folder / "d"; folder.mkdir(parents=folder.parent == root)
    return folder


def test_a_member_1200_folders_deep_is_one_line(tmp_path, capsys):
    tars = tars_with(tmp_path, "deep.tar", tar_bytes({"DS/" + "d/" * 1200 + "x.npz": b"x"}))
    for extra in ([], ["--verify"]):
        status, _, err = run_here(capsys, "fast_amass_unpack", "-q", *extra, tars, tmp_path / "dst")
        assert status == 1 and one_line(err) and "a path 1202 names deep, more than 64" in err and len(err) < 1000
        assert only_lock(tmp_path / "dst")


def test_a_deep_leftover_of_ours_is_cleaned_and_one_not_ours_is_kept(tmp_path, capsys):
    dst = tmp_path / "dst"
    ours = dst / ".llamass-staging-0123456789abcdef"
    deep_folder(ours, 1200).joinpath("x.npz").write_bytes(b"x")
    (ours / LEFTOVER_MARKER).write_text("{}")
    theirs = dst / ".llamass-staging-user"
    deep_folder(theirs, 5).joinpath("keep.txt").write_text("mine")
    status, out, err = run_here(capsys, "fast_amass_unpack", "-q", SAMPLE_ARCHIVE.parent, dst)
    assert status == 0 and err == "" and not ours.exists()
    assert (theirs / "d" / "d" / "d" / "d" / "d" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_unreadable_tree_under_verify_is_one_line(tmp_path, capsys, monkeypatch, jobs):
    """The tree is checked in place (-n 2: in the main thread, -n 1: in a worker); a file in it cannot be read."""
    tars, dst = sample_tars(tmp_path), tmp_path / "dst"
    assert run_here(capsys, "fast_amass_unpack", "-q", tars, dst)[0] == 0
    def unreadable(folder): raise PermissionError(13, "Permission denied", str(Path(folder) / "01" / "shape.npz"))
    monkeypatch.setattr(unpack, "md5_dir", unreadable)   # as chmod 0 would, for any user (root reads everything)
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", "-n", jobs, "--checksums", SAMPLE_TABLE, tars, dst)
    assert status == 1 and one_line(err) and "Permission denied" in err and "shape.npz" in err


def test_an_unmarked_folder_in_the_staging_place_is_kept_and_named(tmp_path, capsys):
    dst = tmp_path / "dst"
    staging = unpack._staging_dir(dst, SAMPLE_ARCHIVE)
    staging.mkdir(parents=True); (staging / "mine.txt").write_text("mine")
    status, _, err = run_here(capsys, "fast_amass_unpack", "-q", SAMPLE_ARCHIVE.parent, dst)
    assert status == 1 and one_line(err) and f"{staging} is in the way and llamass did not make it" in err
    assert (staging / "mine.txt").read_text() == "mine"


def test_remove_tree_deletes_deep_trees_and_never_follows_links(tmp_path):
    (tmp_path / "outside").mkdir(); (tmp_path / "outside" / "keep").write_text("keep")
    deepest = deep_folder(tmp_path / "tree", 1200)
    (deepest / "link").symlink_to(tmp_path / "outside")
    remove_tree(tmp_path / "tree")
    assert not (tmp_path / "tree").exists() and (tmp_path / "outside" / "keep").read_text() == "keep"


# the console script: default -n, --help, Ctrl-C ------------------------------------------------------------------

def test_default_jobs_are_all_usable_cores(tmp_path, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(unpack, "unpack_archives", lambda *a, **kw: seen.update(kw) or [])
    assert run_here(capsys, "fast_amass_unpack", "-q", SAMPLE_ARCHIVE.parent, tmp_path / "dst")[0] == 0
    assert seen["n_jobs"] == usable_cores() == len(os.sched_getaffinity(0))
    status, out, _ = run_here(capsys, "fast_amass_unpack", "--help")
    out = " ".join(out.split())
    assert status == 0 and f"(default: every usable core, {usable_cores()} here)" in out and "(implies --verify)" in out


def test_help_imports_no_torch():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import llamass.unpack"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines()]
    assert "llamass.unpack" in imported and not [name for name in imported if name.split(".")[0] == "torch"]


def test_ctrl_c_prints_one_line_exits_130_and_keeps_nothing_half_written(tmp_path):
    (tmp_path / "tars").mkdir()
    archive = many_members(tmp_path / "tars" / "many.tar.gz", 400_000)   # seconds of work: time to interrupt it
    dst = tmp_path / "dst"
    run = subprocess.Popen([sys.executable, "-c", "import sys; from llamass.unpack import fast_amass_unpack; fast_amass_unpack(sys.argv[1:])",
                            "-q", str(archive.parent), str(dst)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(dst.glob(".llamass-staging-*")) and time.monotonic() < deadline and run.poll() is None: time.sleep(0.01)
    assert run.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130 and out == ""
    assert err == "fast_amass_unpack: interrupted; nothing half-written was kept\n"
    assert only_lock(dst)   # no staging folder, no record, nothing a later run could trust
