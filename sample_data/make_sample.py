"""Make `sample_data/sample.tar.bz2`, the synthetic AMASS sample bundled with llamass.

The data is synthetic (AMASS's licence forbids redistributing real files) and deterministic:
running this script again writes the same bytes. Usage: python sample_data/make_sample.py
"""
from pathlib import Path

from llamass.synthetic import make_sample_archive

if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "sample.tar.bz2"
    print(f"wrote {out} ({make_sample_archive(out):,} bytes)")
