"""Shared fixtures: the bundled synthetic sample unpacked once, and the real AMASS sample when present."""
import shutil
from pathlib import Path

import pytest

from llamass.unpack import extract_archive

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ARCHIVE = ROOT / "sample_data" / "sample.tar.bz2"
REAL_SAMPLE_ARCHIVE = ROOT.parent / "shared" / "amass_real_sample" / "sample.tar.bz2"


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    "The synthetic sample, unpacked once per test session."
    root = tmp_path_factory.mktemp("sample")
    extract_archive(SAMPLE_ARCHIVE, root)
    return root


@pytest.fixture(scope="session")
def real_sample_archive():
    "Path of the real two-file AMASS sample (../shared), or skip when it is absent."
    if not REAL_SAMPLE_ARCHIVE.is_file(): pytest.skip("real AMASS sample not present (../shared/amass_real_sample)")
    return REAL_SAMPLE_ARCHIVE


@pytest.fixture(scope="session")
def real_sample_root(real_sample_archive, tmp_path_factory):
    "The real sample, unpacked once (it holds sample/subdir/{amass,dmpl}_sample.npz)."
    root = tmp_path_factory.mktemp("real")
    extract_archive(real_sample_archive, root)
    return root
