"""Hostile inputs on the dataset side: files changed after the dataset was built, resume states from elsewhere, bad rates."""
import pytest

from llamass.core import AMASS, IterableLoader, PackedAMASS, amass_pack
from llamass.index import AMASSFileError
from common import check_resumes, write_identified
from llamass.synthetic import identified_sequence, write_npz

LENGTHS = [23, 7, 40, 12]


@pytest.fixture()
def tree(tmp_path):
    return write_identified(tmp_path / "tree", LENGTHS)


def test_a_file_shortened_after_construction_is_named(tree):
    dataset = AMASS(tree, 4, keep=1.0, progress=False)
    write_npz(tree / "DS/s2/take_poses.npz", identified_sequence(2, 5))                  # 40 frames -> 5
    with pytest.raises(AMASSFileError, match=r"s2/take_poses.npz: has 5 frames, but had 40 when the dataset was built"):
        list(dataset)
    lenient = AMASS(tree, 4, keep=1.0, progress=False, strict=False)
    write_npz(tree / "DS/s0/take_poses.npz", identified_sequence(0, 3))
    with pytest.warns(UserWarning, match=r"skipping .*s0/take_poses.npz: has 3 frames"):
        clips = list(lenient)
    assert all(c["poses"].shape == (4, 156) for c in clips)                             # never a short clip


@pytest.mark.parametrize("change,field", [({"clip_length": 3}, "clip_length"), ({"keep": 0.5}, "keep"),
                                          ({"shuffle": False}, "shuffle"), ({"overlapping": True}, "overlapping"),
                                          ({"rank": 0, "world_size": 2}, "world_size"), ({"seed": 9}, "seed")])
def test_a_resume_state_from_other_settings_is_refused(tree, change, field):
    settings = dict(clip_length=2, keep=1.0, shuffle=True, seed=1)
    first = IterableLoader(AMASS(tree, progress=False, **settings), batch_size=3)
    next(iter(first))
    other = IterableLoader(AMASS(tree, progress=False, **{**settings, **change}), batch_size=3)
    with pytest.raises(ValueError, match=f"cannot resume: state has {field}="):
        other.load_state_dict(first.state_dict())


def test_a_resume_state_from_other_data_is_refused(tree, tmp_path):
    first = IterableLoader(AMASS(tree, 2, keep=1.0, shuffle=True, progress=False), batch_size=3)
    write_identified(tmp_path / "other", [n + 1 for n in LENGTHS])
    other = IterableLoader(AMASS(tmp_path / "other", 2, keep=1.0, shuffle=True, progress=False), batch_size=3)
    with pytest.raises(ValueError, match="cannot resume: state has fingerprint="):
        other.load_state_dict(first.state_dict())
    amass_pack(tree, tmp_path / "store", progress=False)
    packed = IterableLoader(PackedAMASS(tmp_path / "store", 2, keep=1.0, shuffle=True), batch_size=3)
    with pytest.raises(ValueError, match="cannot resume: state has dataset='AMASS', this dataset has 'PackedAMASS'"):
        packed.load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="not an IterableLoader state"):
        packed.load_state_dict({"epoch": 0})


def test_unshuffled_resumes_whatever_the_seed(tree):
    def loader(): return IterableLoader(AMASS(tree, 2, keep=1.0, seed=None, progress=False), batch_size=3)
    check_resumes(loader, stops=lambda n: (4,), ids=lambda b: b["trans"][:, 0, :2].tolist())


@pytest.mark.parametrize("target_fps", [0, -30, float("nan"), float("inf"), "30", True])
def test_target_fps_is_validated(tree, target_fps):
    with pytest.raises(ValueError, match="target_fps must be a finite number > 0"):
        AMASS(tree, 2, target_fps=target_fps, progress=False)
