"""Facts about the real two-file AMASS sample (skipped when ../shared is absent) and the bundled synthetic one."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llamass.core import AMASS, load_sequence, md5_dir, md5_file, npz_lens, unpack_archives
from llamass.unpack import extract_archive

from conftest import ROOT, SAMPLE_ARCHIVE


def test_real_sample_checksums(real_sample_root):
    assert md5_dir(real_sample_root / "sample") == "b5a86fe22ed2799d79101a532eb0ff27"
    assert md5_file(real_sample_root / "sample/subdir/amass_sample.npz") == "d0b546b3619c8579ade39e3a8ccdc4e2"
    assert md5_file(real_sample_root / "sample/subdir/dmpl_sample.npz") == "576bb76b2a6328dc5c276c4150c466f0"


def test_real_sample_verified_unpack(real_sample_archive, tmp_path):
    table = {"sample.tar.bz2": {"unpacks_to": "sample", "hash": "b5a86fe22ed2799d79101a532eb0ff27"}}
    (tmp_path / "tars").mkdir()
    shutil.copy(real_sample_archive, tmp_path / "tars")
    first = unpack_archives(tmp_path / "tars", tmp_path / "out", verify=True, checksums=table, progress=False)
    again = unpack_archives(tmp_path / "tars", tmp_path / "out", verify=True, checksums=table, progress=False)
    assert [r["status"] for r in first + again] == ["verified", "skipped"]
    assert (tmp_path / "out" / "sample.hash").read_text() == "b5a86fe22ed2799d79101a532eb0ff27"


def test_real_sample_lengths_and_epoch(real_sample_root):
    assert sorted(n for _, _, n in npz_lens(real_sample_root, progress=False)) == [235, 601]
    dataset = AMASS(real_sample_root, clip_length=1, keep=0.8, overlapping=False, progress=False)
    assert len(dataset) == 668
    assert sum(1 for _ in dataset) == 668


def test_real_sample_both_gender_encodings(real_sample_root):
    with np.load(real_sample_root / "sample/subdir/amass_sample.npz") as male, np.load(real_sample_root / "sample/subdir/dmpl_sample.npz") as female:
        assert male["gender"].dtype.kind == "U" and female["gender"].dtype.kind == "S"
        assert male["mocap_framerate"] == 120.0 and female["mocap_framerate"] == 120.00004577636719
    assert set(load_sequence(real_sample_root / "sample/subdir/amass_sample.npz")["gender"]) == {-1.0}
    assert set(load_sequence(real_sample_root / "sample/subdir/dmpl_sample.npz")["gender"]) == {1.0}


def test_synthetic_sample_schema(sample_root):
    """The bundled sample has AMASS's schema: both gender encodings, a non-round rate, shape.npz per subject."""
    genders, rates = set(), set()
    for path in sorted(sample_root.rglob("*_poses.npz")):
        with np.load(path) as npz:
            n = npz["poses"].shape[0]
            assert {k: npz[k].shape for k in ("poses", "trans", "dmpls", "betas")} == {"poses": (n, 156), "trans": (n, 3), "dmpls": (n, 8), "betas": (16,)}
            assert npz["poses"].dtype == np.float64 and npz["marker_data"].shape[:1] == (n,) and npz["marker_labels"].dtype.kind == "S"
            genders.add(npz["gender"].dtype.kind); rates.add(float(npz["mocap_framerate"]))
        with np.load(path.parent / "shape.npz") as shape:
            assert sorted(shape.files) == ["betas", "gender"]
    assert genders == {"U", "S"} and rates == {120.0, 120.00004577636719}


def test_sample_checksums_file_matches_archive(tmp_path):
    table = json.loads((ROOT / "sample_data" / "checksums.json").read_text())["sample.tar.bz2"]
    extract_archive(SAMPLE_ARCHIVE, tmp_path)
    assert [md5_dir(tmp_path / f) for f in table["unpacks_to"]] == table["hash"]
