"""Helpers the tests share: trees of identifying sequences, the check that a restarted loader continues exactly, and
the reading of benchmark tables."""
import re

from llamass.dataset import clip_ids
from llamass.synthetic import identified_sequence, write_tree


def write_identified(root, lengths):
    "`identified_sequence`s of `lengths` frames (trans[:, 0] = sequence, trans[:, 1] = frame) as DS/s{i}/take_poses.npz in `root`."
    write_tree(root, {f"DS/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate(lengths)})
    return root


def middle_stops(n_batches):
    "Where to stop a pass of `n_batches` batches: after the first, half-way, before the last."
    return (1, n_batches // 2, n_batches - 1)


def check_resumes(make_loader, stops=middle_stops, ids=clip_ids):
    "Stop a fresh loader after each of `stops(len(epoch))` batches, restart another from its state: head + rest is the whole epoch. Returns the epoch."
    whole = [ids(b) for b in make_loader()]
    for k in stops(len(whole)):
        first = make_loader()
        head = [ids(b) for _, b in zip(range(k), first)]
        again = make_loader()
        again.load_state_dict(first.state_dict())
        assert head + [ids(b) for b in again] == whole, k
    return whole


RATE = re.compile(r"^\d+(\.\d+)?[kMG]?$")   # a benchmark's frames/s as printed: 892, 45.5k, 2.12M


def markdown_rows(markdown):
    "[[cells]] of each row of the markdown tables in `markdown` (header and separator lines left out)."
    lines = [l for l in markdown.splitlines() if l.startswith("| ")]
    return [[c.strip() for c in l.strip("|").split(" | ")] for l in lines]
