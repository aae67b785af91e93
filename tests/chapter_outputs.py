"""Run chapters top to bottom and keep their outputs: GitHub renders the notebooks, and they are the documentation.

  python tests/chapter_outputs.py nbs/08_synthetic.ipynb [...]   (`make outputs` runs every chapter and the README)

Each notebook runs in a fresh `CaptureShell` in its own folder, skipping the cells nbdev_test skips
(`#| eval: false`, and the `tst_flags` of settings.ini: `notest`, `slow`), whose outputs stay as they were.
A notebook that raises is not written (the script names it and exits 1). The outputs are made repeatable, so
that running again changes nothing when nothing changed: progress bars (tqdm's lines on stderr) are dropped,
temporary folders are written `/tmp/tmpXXXXXXXX`, paths into this checkout or an installed library lose the
machine's part (`site-packages/torch/...`), and `nbdev_clean`'s rules remove execution counts, object ids in
reprs and the metadata settings.ini does not allow.
"""
import json
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from execnb.nbio import nb2dict, read_nb
from execnb.shell import CaptureShell
from nbdev.clean import clean_nb
from nbdev.config import get_config

PROGRESS_LINE = re.compile(r"\r|\d+%\|.*\||\d+(\.\d+)?(it|s|B|batch|file)/s\]")
TEMPORARY_FOLDER = re.compile(r"(/tmp|/var/folders/[^/\s]+/[^/\s]+/T)/tmp[a-z0-9_]{8}")
MACHINE_PATH = re.compile(r"/[^\s'\"]*/((site|dist)-packages/)")   # where this machine installed a library
ROOT = Path(__file__).resolve().parent.parent


def directives(source):
    "The `#| name args` lines that open a code cell, as `{name: args}` (`eval:` keeps its colon, as nbdev reads it)."
    found = {}
    for line in source.splitlines():
        if not line.startswith("#|"): break
        name, _, args = line[2:].strip().partition(" ")
        found[name] = args.strip()
    return found


def skipped(cell, skip_flags): # the tst_flags of settings.ini
    "Whether nbdev_test would skip `cell`: not code, `#| eval: false`, a skip flag, or a call of nbdev_export."
    if cell.cell_type != "code": return True
    found = directives(cell.source)
    return found.get("eval:", "").lower() == "false" or bool(set(skip_flags) & found.keys()) or "nbdev_export(" in cell.source


def stable_text(text):
    "`text` without progress-bar lines, with temporary folders written alike and this machine's paths left out."
    lines = [line for line in text.splitlines(keepends=True) if not PROGRESS_LINE.search(line)]
    text = MACHINE_PATH.sub(r"\1", TEMPORARY_FOLDER.sub(r"\1/tmpXXXXXXXX", "".join(lines)))
    return text.replace(f"{ROOT}/", "")


def stable_lines(text): # a str, or a list of lines as notebooks store text
    "`text` as a list of lines (one JSON string per line: readable diffs), progress bars dropped, temporary folders alike."
    return stable_text("".join(text) if isinstance(text, list) else text).splitlines(keepends=True)


def stable_outputs(outputs):
    "The `outputs` of a cell, with progress bars dropped and temporary folders written alike."
    kept = []
    for output in outputs:
        if output.get("output_type") == "stream":
            output["text"] = stable_lines(output["text"])
            if not output["text"]: continue
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/"): output["data"][kind] = stable_lines(value)
        kept.append(output)
    return kept


def run_chapter(path, skip_flags): # a notebook; its folder is the working directory while it runs
    "Run the notebook at `path`; return it with stable outputs, or raise what a cell raised."
    path = Path(path).resolve()
    notebook, shell, before = read_nb(path), CaptureShell(path), os.getcwd()
    try:
        os.chdir(path.parent)
        shell.run_all(notebook, exc_stop=True, preproc=lambda cell: skipped(cell, skip_flags),
                      postproc=lambda cell: cell.__setitem__("outputs", stable_outputs(cell.get("outputs", []))))
    finally: os.chdir(before)
    return notebook


def keep_outputs(path, config): # a notebook; settings.ini's nbdev configuration
    "Run the notebook at `path` and write it back with its outputs; return an error line, or None on success."
    sys.path.insert(0, str(config.config_path))   # the package of this checkout, as nbdev_test imports it
    try: notebook = run_chapter(path, config.tst_flags.split())
    except BaseException as e:       # a cell's exception, whatever it is: the notebook stays as it was
        if isinstance(e, KeyboardInterrupt): raise
        return f"{path}: not written, a cell raised {type(e).__name__}: {e}"
    clean_nb(notebook, allowed_metadata_keys=config.allowed_metadata_keys.split(),
             allowed_cell_metadata_keys=config.allowed_cell_metadata_keys.split(), clean_ids=config.clean_ids)
    text = json.dumps(nb2dict(notebook), indent=1, ensure_ascii=False) + "\n"   # keys in the notebook's own order: a small diff
    if Path(path).read_text(encoding="utf-8") != text: Path(path).write_text(text, encoding="utf-8")
    return None


def keep_outputs_apart(path): # a notebook
    "`keep_outputs` in a process of its own, as nbdev_test runs each notebook: nothing one chapter sets reaches the next."
    # Forked, as nbdev_test's are: a spawned process would make the chapter's DataLoader workers spawn too, and
    # they cannot unpickle the classes a chapter defines in its own namespace.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as process:
        return process.submit(keep_outputs, path, get_config()).result()


def main(paths):
    "Keep the outputs of every notebook in `paths`; exit 1 naming those that raised."
    if not paths: raise SystemExit(__doc__)
    failures = []
    for path in paths:
        error = keep_outputs_apart(path)
        print(error or f"{path}: outputs kept", file=sys.stderr if error else sys.stdout)
        if error: failures.append(path)
    if failures: raise SystemExit(f"chapter_outputs: {len(failures)} notebook(s) raised and were left as they were: {' '.join(map(str, failures))}")


if __name__ == "__main__":
    main(sys.argv[1:])
