"""Every `bash` and `python` block of README.md runs, in order, in a fresh folder, as a user would paste them.

A `text` block right after a block is that block's output: each of its lines must be a line of what the block
printed. `sh` blocks (the install lines and the two developer commands) are shown, not run.
"""
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
RUN, NOT_RUN, OUTPUT = {"bash", "python"}, {"sh"}, {"text"}
NOT_RUN_LINES = ("pip install ", "make ")


def readme_blocks(text):
    "The fenced blocks of a README as `(language, body)` pairs, in order."
    return FENCE.findall(text)


def block_errors(blocks):
    "What is wrong with the kinds and order of `blocks`: a list of messages, empty when all is well."
    errors = []
    for i, (language, body) in enumerate(blocks):
        if language not in RUN | NOT_RUN | OUTPUT: errors.append(f"block {i}: language {language!r} is none of bash, python, sh, text")
        if language in NOT_RUN:
            errors += [f"block {i}: an sh block may hold only install and make lines, not {line!r}"
                       for line in body.splitlines() if line.strip() and not line.startswith(NOT_RUN_LINES)]
        if language in OUTPUT and (i == 0 or blocks[i - 1][0] not in RUN):
            errors.append(f"block {i}: an output block must follow a bash or python block")
    return errors


def user_environment(folder):
    "The environment of a user's shell: the console scripts on PATH, and `python` meaning this interpreter."
    bin_dir = Path(folder) / ".bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").symlink_to(sys.executable)
    path = os.pathsep.join([str(bin_dir), sysconfig.get_path("scripts"), str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


def run_block(language, body, folder, env):
    "Run one block in `folder` as pasted: bash in a shell that stops at the first failing line, python in a fresh interpreter."
    command = ["bash", "-euo", "pipefail", "-c", body] if language == "bash" else [sys.executable, "-"]
    return subprocess.run(command, input=None if language == "bash" else body, cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)   # a hang guard only


def missing_lines(shown, printed):
    "The lines of an output block `shown` that are not lines of what was `printed`."
    printed_lines = {line.rstrip() for line in printed.splitlines()}
    return [line for line in shown.splitlines() if line.strip() and line.rstrip() not in printed_lines]


def run_readme(text, folder):
    "Run every bash and python block of `text` in `folder`, checking each shown output; return how many ran."
    blocks, env, ran, printed = readme_blocks(text), user_environment(folder), 0, None
    for i, (language, body) in enumerate(blocks):
        if language in RUN:
            result = run_block(language, body, folder, env)
            assert result.returncode == 0, (f"README block {i} ({language}) exited {result.returncode}:\n{body}\n"
                                            f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
            ran, printed = ran + 1, result.stdout
        elif language in OUTPUT:
            missing = missing_lines(body, printed)
            assert not missing, f"README block {i}: the output shown is not what block {i - 1} printed; missing {missing}\n--- printed\n{printed}"
    return ran


def test_blocks_are_runnable_or_install_lines():
    blocks = readme_blocks((ROOT / "README.md").read_text())
    assert block_errors(blocks) == []
    assert sum(language in RUN for language, _ in blocks) >= 4


def test_every_chapter_is_linked():
    "The README says where the docs are: a link to every chapter."
    text = (ROOT / "README.md").read_text()
    unlinked = [path.name for path in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")) if f"](nbs/{path.name})" not in text]
    assert unlinked == [], f"chapters the README does not link to: {unlinked}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000


def test_block_rules_catch_mistakes():
    assert block_errors([("sh", "pip install llamass\nrm -rf data\n")]) == ["block 0: an sh block may hold only install and make lines, not 'rm -rf data'"]
    assert block_errors([("text", "42\n")]) == ["block 0: an output block must follow a bash or python block"]
    assert block_errors([("console", "$ ls\n")]) == ["block 0: language 'console' is none of bash, python, sh, text"]
    assert readme_blocks("a\n```python\nprint(1)\n```\nb\n```text\n1\n```\n") == [("python", "print(1)\n"), ("text", "1\n")]


def test_output_check_compares_lines():
    assert missing_lines("{'poses': (8, 32, 156)}\n", "{'poses': (8, 32, 156)}  \nmore\n") == []
    assert missing_lines("{'poses': (8, 32, 156)}\n", "{'poses': (13, 32, 156)}\n") == ["{'poses': (8, 32, 156)}"]


def test_a_failing_block_fails(tmp_path):
    with pytest.raises(AssertionError, match="exited 1"):
        run_readme("```python\nprint(model)\n```\n", tmp_path)      # the old Lightning example's undefined name


def test_readme_runs_as_pasted(tmp_path):
    "The quickstart and every other example, from `python -m llamass.synthetic sample` on, in a folder of their own."
    assert run_readme((ROOT / "README.md").read_text(), tmp_path) >= 4
    assert (tmp_path / "amass" / "CMU").is_dir()
