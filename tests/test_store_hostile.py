"""amass_pack deletes only what it made, says which file holds NaN or inf, refuses members it cannot bound, and a
store whose manifest lies about its body model is refused when opened (issue 19.4, 19.9, 19.14; issue 20.5)."""
import contextlib
import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from llamass.dataset import AMASS
from llamass.index import AMASSFileError, index_sequences
from llamass.store import LEFTOVER_MARK, StoreError, amass_pack, amass_pack_cli, open_store
from llamass.synthetic import identified_sequence, stageii_sequence, write_npz, write_tree


@pytest.fixture
def tree(tmp_path):
    "A small source tree of three sequences."
    write_tree(tmp_path / "src", {f"DS/s{i}/take_poses.npz": identified_sequence(i, n) for i, n in enumerate([12, 7, 20])})
    return tmp_path / "src"


def run_pack(argv):
    "(exit status, stdout, stderr and warnings) of amass_pack run in-process with `argv`."
    out, err, status = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try: amass_pack_cli(argv + ["-q"])
        except SystemExit as e: status = e.code
    return status, out.getvalue(), "".join(f"llamass: warning: {w.message}\n" for w in caught) + err.getvalue()


def files_under(folder):
    "{relative path: bytes} of every file under `folder`."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# 19.4: only our own leftovers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("force", [False, True])
def test_the_users_folders_named_like_leftovers_are_kept(tree, tmp_path, force):
    out = tmp_path / "out"
    for name in (".store.old", ".store.partial", ".store.1234abcd.partial", ".store.x.old"):
        (out / name).mkdir(parents=True); (out / name / "mine.txt").write_text(f"the user's {name}")
    before = files_under(out)
    assert run_pack([str(tree), str(out / "store")])[0] == 0
    if force: assert run_pack(["--force", str(tree / "DS" / "s0"), str(out / "store")])[0] == 0   # a replacement too
    after = files_under(out)
    assert {k: v for k, v in after.items() if not k.startswith("store/") and k != ".llamass.lock"} == before
    assert open_store(out / "store").manifest["n_sequences"] == (1 if force else 3)


def test_marked_leftovers_of_a_killed_run_are_removed(tree, tmp_path):
    out = tmp_path / "out"
    for name in (".store.0badf00d.partial", ".store.feedf00d.old"):
        (out / name).mkdir(parents=True); (out / name / "poses.npy").write_bytes(b"half")
        (out / name / LEFTOVER_MARK).write_text(json.dumps({"made_by": "amass_pack", "store": "store"}))
    (out / ".other.0badf00d.partial").mkdir(); (out / ".other.0badf00d.partial" / LEFTOVER_MARK).write_text(
        json.dumps({"made_by": "amass_pack", "store": "other"}))        # another store's: not this run's business
    assert run_pack([str(tree), str(out / "store")])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [".llamass.lock", ".other.0badf00d.partial", "store"]
    assert not (out / "store" / LEFTOVER_MARK).exists()


# 20.5: non-finite values -----------------------------------------------------------------------------------------

def test_nan_is_refused_naming_file_and_key_and_allowed_on_request(tmp_path):
    bad = identified_sequence(1, 9)
    bad["trans"][6, 2] = np.inf
    bad_betas = identified_sequence(2, 5)
    bad_betas["betas"][3] = np.nan
    write_tree(tmp_path / "src", {"DS/a_poses.npz": identified_sequence(0, 5), "DS/b_poses.npz": bad, "DS/c_poses.npz": bad_betas})
    status, out, err = run_pack(["-n", "1", str(tmp_path / "src"), str(tmp_path / "store")])   # one thread: b before c
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    assert "b_poses.npz: 'trans' holds 1 non-finite values (NaN or inf), the first in frame 6" in err and "--allow-nonfinite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llamass.lock", "src"]            # nothing half-written
    status, out, err = run_pack(["--allow-nonfinite", str(tmp_path / "src"), str(tmp_path / "store")])
    assert status == 0 and err.count("llamass: warning:") == 2, err                        # one line per file
    assert "c_poses.npz: 'betas' holds 1 non-finite values" in err
    assert np.isinf(open_store(tmp_path / "store").arrays["trans"]).sum() == 1


# 19.14: the manifest's body model against the width of poses ----------------------------------------------------

@pytest.mark.parametrize("edit,message", [
    ({"model": "smplx"}, "body model 'smplx' has 165 parameters per frame of 'poses', the store's 'poses' has 156 (smplh)"),
    ({"model": "smplh", "keys": {"poses": 165}}, None)])
def test_a_manifest_that_lies_about_the_body_model_is_refused(tree, tmp_path, edit, message):
    amass_pack(tree, tmp_path / "store", progress=False)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    manifest.update({k: {**manifest[k], **v} if isinstance(v, dict) else v for k, v in edit.items()})
    (tmp_path / "store" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError) as error:
        open_store(tmp_path / "store")
    assert "manifest.json" in str(error.value) and "\n" not in str(error.value)
    if message: assert message in str(error.value)


def test_an_smplx_store_with_smplh_parts_is_refused(tmp_path):
    write_tree(tmp_path / "src", {"DS/a_stageii.npz": stageii_sequence(10, "smplx")})
    amass_pack(tmp_path / "src", tmp_path / "store", keys=["poses", "pose_hand"], progress=False)
    assert open_store(tmp_path / "store").manifest["model"] == "smplx"
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    (tmp_path / "store" / "manifest.json").write_text(json.dumps({**manifest, "keys": {**manifest["keys"], "pose_jaw": 3}}))
    with pytest.raises(StoreError):
        open_store(tmp_path / "store")


# 19.9: compression methods numpy does not write ------------------------------------------------------------------

def rezip(path, method, only=None):
    "Rewrite the npz at `path` with its members (or only the member `only`) compressed by zip `method`."
    members = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist(): members[info.filename] = zf.read(info)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items(): zf.writestr(name, data, compress_type=method if only in (None, name) else zipfile.ZIP_STORED)


@pytest.mark.parametrize("method,name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")])
@pytest.mark.parametrize("member", [None, "poses.npy", "marker_data.npy"])
def test_members_compressed_other_than_numpy_does_are_refused_when_indexed(tmp_path, method, name, member):
    write_tree(tmp_path / "src", {"DS/good_poses.npz": identified_sequence(0, 5)})
    path = write_npz(tmp_path / "src" / "DS" / "odd_poses.npz", identified_sequence(1, 5))
    rezip(path, method, member)
    with pytest.raises(AMASSFileError) as error:
        index_sequences(tmp_path / "src", progress=False)
    assert str(error.value).startswith(f"{path}: member '") and f"is compressed with {name}" in str(error.value)
    if member: assert repr(member) in str(error.value)
    with pytest.raises(AMASSFileError, match="odd_poses.npz: member"):
        AMASS(tmp_path / "src", 2, progress=False)
    status, _, err = run_pack([str(tmp_path / "src"), str(tmp_path / "store")])
    assert status == 1 and err.count("\n") == 1 and f"is compressed with {name}" in err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(index_sequences(tmp_path / "src", strict=False, progress=False)) == 1          # skipped, with a warning
    assert any("odd_poses.npz: member" in str(w.message) for w in caught)


def test_a_kill_between_marking_the_old_store_and_moving_it_aside(tree, tmp_path):
    "--force marks the old store, then renames it aside: killed in between, the next run finds its store, mark removed."
    amass_pack(tree, tmp_path / "store", progress=False)
    (tmp_path / "store" / LEFTOVER_MARK).write_text(json.dumps({"made_by": "amass_pack", "store": "store"}))
    status, out, _ = run_pack([str(tree), str(tmp_path / "store")])
    assert status == 0 and "already packed" in out
    assert not (tmp_path / "store" / LEFTOVER_MARK).exists() and open_store(tmp_path / "store").manifest["n_sequences"] == 3
