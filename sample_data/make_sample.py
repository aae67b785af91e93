"""Make `sample_data/sample.tar.bz2`, the synthetic AMASS sample bundled with llamass, and its checksums.

The data is synthetic (AMASS's licence forbids redistributing real files) and deterministic: running this
script again writes the same bytes. `checksums.json` holds the `md5_dir` of each folder the archive unpacks
to, in the format of `llamass.unpack.hashes`, for `fast_amass_unpack --verify --checksums`. Without a clone,
`python -m llamass.synthetic sample FOLDER` writes the same two files.

Usage: python sample_data/make_sample.py
"""
from pathlib import Path

from llamass.synthetic import write_sample

if __name__ == "__main__":
    archive, checksums = write_sample(Path(__file__).resolve().parent)
    print(f"wrote {archive} ({archive.stat().st_size:,} bytes) and {checksums}")
