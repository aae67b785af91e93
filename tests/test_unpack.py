"""Parallel bzip2 decoding gives the same trees as the standard library; bad archives among good ones."""
import shutil

import pytest

import llamass.unpack as unpack
from llamass.core import UnpackError, md5_dir, unpack_archives
from llamass.synthetic import tar_bz2_bytes, synthetic_sequence, write_tree

from conftest import SAMPLE_ARCHIVE


def trees_by_both_paths(archive, tmp_path):
    "md5_dir of each top folder, unpacked with Python's bz2 (threads=1) and with indexed_bzip2 (threads=2)."
    assert unpack.indexed_bzip2 is not None, "the dev install includes indexed_bzip2"
    sums = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        unpack.extract_archive(archive, out, threads=threads)
        sums.append({p.name: md5_dir(p) for p in sorted(out.iterdir())})
    return sums


def test_parallel_decoder_same_tree_synthetic(tmp_path):
    stdlib, parallel = trees_by_both_paths(SAMPLE_ARCHIVE, tmp_path)
    assert stdlib == parallel and sorted(stdlib) == ["CMU", "HumanEva", "SSM_synced"]


def test_parallel_decoder_same_tree_real(real_sample_archive, tmp_path):
    stdlib, parallel = trees_by_both_paths(real_sample_archive, tmp_path)
    assert stdlib == parallel == {"sample": "b5a86fe22ed2799d79101a532eb0ff27"}


def test_parallel_decoder_on_a_multi_block_archive(tmp_path):
    """Larger than one 900 kB bzip2 block, so the decoder really splits the work."""
    write_tree(tmp_path / "src", {f"Big/s/{i}_poses.npz": synthetic_sequence(400, i, decimals=15) for i in range(6)})
    (tmp_path / "Big.tar.bz2").write_bytes(tar_bz2_bytes(tmp_path / "src", ["Big"]))
    assert (tmp_path / "Big.tar.bz2").stat().st_size > 3_000_000
    stdlib, parallel = trees_by_both_paths(tmp_path / "Big.tar.bz2", tmp_path)
    assert stdlib == parallel == {"Big": md5_dir(tmp_path / "src" / "Big")}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_bad_archive_among_good_ones(tmp_path, n_jobs):
    (tmp_path / "tars").mkdir()
    shutil.copy(SAMPLE_ARCHIVE, tmp_path / "tars" / "good.tar.bz2")
    (tmp_path / "tars" / "bad.tar.bz2").write_bytes(SAMPLE_ARCHIVE.read_bytes()[:20000])
    table = {"good.tar.bz2": {"unpacks_to": "CMU", "hash": "0" * 32}}
    with pytest.raises(UnpackError) as error:
        unpack_archives(tmp_path / "tars", tmp_path / "out", n_jobs=n_jobs, verify=True, checksums=table, progress=False)
    message = str(error.value)
    assert "bad.tar.bz2: truncated or corrupt archive" in message and f"good.tar.bz2: checksum mismatch for CMU/: expected {'0' * 32}" in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".llamass.lock"]   # nothing half-unpacked, no .hash


def test_parallel_decoder_on_a_multi_stream_archive(tmp_path):
    """pbzip2 and lbzip2 write one bzip2 stream per chunk of the tar: both decoders read on through every stream."""
    import bz2
    write_tree(tmp_path / "src", {f"Multi/s/{i}_poses.npz": synthetic_sequence(50, i, decimals=15) for i in range(4)})
    tar = bz2.decompress(tar_bz2_bytes(tmp_path / "src", ["Multi"]))
    third = len(tar) // 3
    (tmp_path / "Multi.tar.bz2").write_bytes(b"".join(bz2.compress(tar[k * third:(k + 1) * third if k < 2 else None]) for k in range(3)))
    stdlib, parallel = trees_by_both_paths(tmp_path / "Multi.tar.bz2", tmp_path)
    assert stdlib == parallel == {"Multi": md5_dir(tmp_path / "src" / "Multi")}
