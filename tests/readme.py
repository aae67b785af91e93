"""Render README.md from nbs/index.ipynb, since nbdev_readme needs Quarto, which is not available here.

Markdown cells are copied; code cells become ```python blocks; cells marked `#| hide` are left out.
In the README, ```bash and ```python blocks are run by tests/test_readme.py (in order, in a fresh folder), a
```text block right after one is its output, and ```sh blocks (install lines, make commands) are shown only.
  python tests/readme.py          write README.md
  python tests/readme.py --check  exit 1 if README.md differs from the rendering
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render(notebook):
    "The README text for the notebook at `notebook`."
    blocks = []
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        source = "".join(cell["source"]).strip()
        if not source or source.startswith("#| hide"): continue
        if cell["cell_type"] == "code":
            lines = [l for l in source.splitlines() if not l.startswith("#|")]
            source = "```python\n" + "\n".join(lines).strip() + "\n```"
        blocks.append(source)
    return "<!-- Generated from nbs/index.ipynb by tests/readme.py: edit the notebook, then run `make readme`. -->\n\n" + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    text = render(ROOT / "nbs" / "index.ipynb")
    if "--check" in sys.argv[1:]:
        if (ROOT / "README.md").read_text() != text: raise SystemExit("README.md differs from nbs/index.ipynb: run `make readme`")
    else:
        (ROOT / "README.md").write_text(text)
