"""Every chapter shows what it does: its code cells carry their outputs (kept by `make outputs`), none an error.

GitHub renders the notebooks with their outputs, and they are the documentation. `tests/chapter_outputs.py`
runs a chapter and keeps its outputs; these tests fail for a chapter nobody has run it on since it changed.
"""
import json
from pathlib import Path

import pytest

from chapter_outputs import PROGRESS_LINE, TEMPORARY_FOLDER, directives, keep_outputs_apart, stable_outputs

EXPORTED = {"export", "exporti", "exports", "default_exp", "hide"}

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))
FEW = 3   # example cells with an output, at least, in every chapter (every example cell, where it has fewer)


def code_cells(path):
    "The code cells of the notebook at `path`."
    return [cell for cell in json.loads(Path(path).read_text())["cells"] if cell["cell_type"] == "code"]


def example_cells(cells):
    "The cells of `cells` that are examples: not exported to the package, not hidden."
    return [cell for cell in cells if not EXPORTED & directives("".join(cell["source"])).keys()]


def output_texts(cell):
    "Every text a cell's outputs hold (streams, and the text forms of results and displays)."
    for output in cell.get("outputs", []):
        if "text" in output: yield "".join(output["text"])
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/"): yield "".join(value)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_shows_its_outputs(chapter):
    cells = code_cells(chapter)
    errors = [cell["id"] for cell in cells for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert errors == [], f"{chapter.name}: cells {errors} show an error"
    examples = example_cells(cells)
    shown = sum(bool(cell.get("outputs")) for cell in examples)
    assert shown >= min(FEW, len(examples)), (
        f"{chapter.name}: {shown} of its {len(examples)} example cells show an output. Run `python tests/chapter_outputs.py "
        f"{chapter.relative_to(ROOT)}`; if it has run, end a few examples with what they compute (a shape, a count, a table)")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_outputs_are_repeatable(chapter):
    "No progress bar and no temporary folder's random name in an output: running again changes nothing."
    for cell in code_cells(chapter):
        for text in output_texts(cell):
            assert not PROGRESS_LINE.search(text), f"{chapter.name}, cell {cell['id']}: a progress bar in the output"
            assert "tmpXXXXXXXX" in text or not TEMPORARY_FOLDER.search(text), f"{chapter.name}, cell {cell['id']}: a temporary folder's name"


def test_directives_are_read_as_nbdev_reads_them():
    assert directives("#| export\n#| eval: false\nx = 1\n#| not a directive") == {"export": "", "eval:": "false"}
    assert directives("x = 1") == {}


def test_example_cells_leave_out_exported_ones():
    cells = [{"source": "#| export\ndef f(): pass"}, {"source": ["#| hide\n", "import x"]}, {"source": "f()"}, {"source": "#| slow\nf()"}]
    assert example_cells(cells) == cells[2:]


def test_outputs_lose_progress_bars_and_temporary_names():
    outputs = [{"output_type": "stream", "name": "stderr", "text": "epoch 0:  50%|#####     | 1/2 [00:00<00:00, 9.1it/s]\r"},
               {"output_type": "stream", "name": "stdout", "text": ["wrote /tmp/tmpab_12xyz/x.npz\n", "done\n"]},
               {"output_type": "stream", "name": "stderr", "text": "/usr/lib/python3/dist-packages/torch/data.py:4: UserWarning: x\n"},
               {"output_type": "execute_result", "data": {"text/plain": "PosixPath('/tmp/tmp0a1b2c3d')"}, "metadata": {}}]
    assert stable_outputs(outputs) == [
        {"output_type": "stream", "name": "stdout", "text": ["wrote /tmp/tmpXXXXXXXX/x.npz\n", "done\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["dist-packages/torch/data.py:4: UserWarning: x\n"]},
        {"output_type": "execute_result", "data": {"text/plain": ["PosixPath('/tmp/tmpXXXXXXXX')"]}, "metadata": {}}]


def notebook(*sources):
    "A notebook of code cells with these sources, as a JSON-ready dict."
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i:07d}", "metadata": {}, "outputs": [], "source": s}
             for i, s in enumerate(sources)]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def test_outputs_kept_and_a_raising_notebook_left_alone(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    good.write_text(json.dumps(notebook("print(6 * 7)", "#| eval: false\nraise SystemExit('never run')", "{'shape': (2, 3)}"), indent=1))
    bad.write_text(json.dumps(notebook("print('ran')", "1 / 0"), indent=1))
    bad_before = bad.read_text()
    assert keep_outputs_apart(good) is None
    outputs = [cell["outputs"] for cell in code_cells(good)]
    assert outputs[0] == [{"name": "stdout", "output_type": "stream", "text": ["42\n"]}]
    assert outputs[1] == []
    assert outputs[2][0]["data"]["text/plain"] == ["{'shape': (2, 3)}"]
    assert "ZeroDivisionError" in keep_outputs_apart(bad)
    assert bad.read_text() == bad_before
