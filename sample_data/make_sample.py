"""Make `sample_data/sample.tar.bz2`, the synthetic AMASS sample bundled with llamass, and its checksums.

The data is synthetic (AMASS's licence forbids redistributing real files) and deterministic: running this
script again writes the same bytes. `checksums.json` holds the `md5_dir` of each folder the archive unpacks
to, in the format of `llamass.unpack.hashes`, for `fast_amass_unpack --verify --checksums`.

Usage: python sample_data/make_sample.py
"""
import json
import tempfile
from pathlib import Path

from llamass.synthetic import make_sample_archive
from llamass.unpack import extract_archive, md5_dir


def sample_checksums(archive):
    "The checksum table of `archive`: each top-level folder it unpacks to, with its md5_dir."
    with tempfile.TemporaryDirectory() as tmp:
        extract_archive(archive, tmp)
        folders = sorted(p.name for p in Path(tmp).iterdir())
        return {archive.name: {"unpacks_to": folders, "hash": [md5_dir(Path(tmp) / f) for f in folders]}}


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    archive = here / "sample.tar.bz2"
    print(f"wrote {archive} ({make_sample_archive(archive):,} bytes)")
    (here / "checksums.json").write_text(json.dumps(sample_checksums(archive), indent=1) + "\n")
    print(f"wrote {here / 'checksums.json'}")
