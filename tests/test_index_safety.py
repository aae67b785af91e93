"""Hostile and broken trees and npz files meet the index (issue 15, points 3-7; issue 11, points 6 and 7).

Every test builds its own hostile input. Walks that could hang run under a SIGALRM timeout in the main thread
(with `n_jobs=1`, so nothing runs in a thread the alarm cannot reach).
"""
import ast
import contextlib
import io
import os
import signal
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llamass.index
import llamass.info
from llamass.dataset import AMASS
from llamass.index import AMASSFileError, index_sequences, npz_paths, read_npy_header, sequence_info, width_check
from llamass.info import amass_info
from llamass.synthetic import synthetic_sequence, write_npz


@contextlib.contextmanager
def time_limit(seconds):
    "Raise TimeoutError in the main thread if the block runs longer than `seconds`."
    def expired(signum, frame): raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try: yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def legacy(n_frames=20, seed=0, **changes):
    "A legacy SMPL+H sequence's arrays with some replaced (None: removed)."
    arrays = {**synthetic_sequence(n_frames, seed=seed, n_markers=1), **changes}
    return {k: v for k, v in arrays.items() if v is not None}


def save(path, arrays):
    "Write `arrays` as an npz at `path` with np.savez (which also writes object arrays)."
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def tree(root, n_good=3, **bad):
    "`n_good` good sequences under root/DS and one file per `bad` {name: arrays}; returns root."
    for i in range(n_good): save(root / "DS" / f"good{i}_poses.npz", legacy(20 + 10 * i, seed=i))
    for name, arrays in bad.items(): save(root / "DS" / f"{name}_poses.npz", arrays)
    return root


def run_console(main, argv):
    "(exit status, stdout, stderr) of the console script `main`."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main(argv); status = 0
        except SystemExit as e: status = e.code
    return status, out.getvalue(), err.getvalue()


def skipped(call):
    "(result of `call()`, [messages of the warnings it gave])."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if "skipping" in str(w.message)]


def yielded_per_rank(root, world_size=2, **kwargs):
    "[(len, clips yielded)] of each rank of AMASS(root, 4, strict=False) over `world_size` ranks."
    counts = []
    for rank in range(world_size):
        ds, _ = skipped(lambda: AMASS(root, 4, strict=False, progress=False, rank=rank, world_size=world_size, **kwargs))
        clips, _ = skipped(lambda: list(ds))
        counts.append((len(ds), len(clips)))
    return counts


# ---------------------------------------------------------------- 11.6: thread-safe header reading

def test_headers_never_use_ast_literal_eval(tmp_path, monkeypatch):
    "numpy's parser (ast.literal_eval, racy in threads: CPython #106905) is not used for headers numpy writes."
    tree(tmp_path, n_good=5)
    def refuse(*args, **kwargs): raise AssertionError("ast.literal_eval called")
    monkeypatch.setattr(ast, "literal_eval", refuse)
    assert index_sequences(tmp_path, n_jobs=4, progress=False).n_frames.tolist() == [20, 30, 40, 50, 60]


def test_index_stress_200_files_20_rounds_8_threads(tmp_path):
    "200 tiny files indexed 20 times by 8 threads: the same index every time, no error."
    for i in range(200):
        write_npz(tmp_path / "DS" / f"{i:03d}_poses.npz", {"poses": np.zeros((1 + i % 7, 156), np.float32),
                                                         "trans": np.zeros((1 + i % 7, 3), np.float32),
                                                         "gender": np.array("male"), "mocap_framerate": np.array(120.0)})
    expected = [1 + i % 7 for i in range(200)]
    for _ in range(20): assert index_sequences(tmp_path, n_jobs=8, progress=False).n_frames.tolist() == expected


def test_header_parser_in_8_threads():
    "read_npy_header on many headers from 8 threads at once: every result right, no exception."
    blobs = []
    for shape in [(i, 156) for i in range(50)] + [(), (3,), (2, 3, 4)]:
        buffer = io.BytesIO(); np.save(buffer, np.zeros(shape, np.float32)); blobs.append((shape, buffer.getvalue()))
    errors = []
    def work():
        try:
            for _ in range(40):
                for shape, blob in blobs: assert read_npy_header(io.BytesIO(blob))[0] == shape
        except Exception as e: errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert errors == []


# ---------------------------------------------------------------- 15.3: walks that end

def test_two_links_to_dot_end(tmp_path):
    root = tree(tmp_path / "amass", n_good=2)
    (root / "DS" / "a").symlink_to("."); (root / "DS" / "b").symlink_to(".")
    with time_limit(20):
        assert [p.name for p in npz_paths(root)] == ["good0_poses.npz", "good1_poses.npz"]
        assert len(index_sequences(root, n_jobs=1, progress=False)) == 2
        status, out, _ = run_console(amass_info, [str(root), "--json", "-n", "1"])
    assert status == 0 and '"sequences": 2' in out


def test_link_to_parent_does_not_multiply_files(tmp_path):
    "A folder link to `..` (and to `/`): 2 files are 2 sequences, not 82."
    root = tree(tmp_path / "amass", n_good=2)
    (root / "DS" / "up").symlink_to("..")
    (root / "DS" / "top").symlink_to("/")
    (root / "up_from_root").symlink_to("..")
    with time_limit(20): index = index_sequences(root, n_jobs=1, progress=False)
    assert index.relative_paths() == ["DS/good0_poses.npz", "DS/good1_poses.npz"]


def test_link_to_a_folder_elsewhere_is_followed_once(tmp_path):
    "A sub-dataset kept elsewhere and linked in is read; a second link to it adds nothing."
    elsewhere = tree(tmp_path / "elsewhere", n_good=1)
    root = tree(tmp_path / "amass", n_good=1)
    (root / "KIT").symlink_to(elsewhere / "DS")
    (root / "KIT2").symlink_to(elsewhere / "DS")
    (root / "DS" / "again").symlink_to(root / "DS")
    assert index_sequences(root, n_jobs=1, progress=False).relative_paths() == ["DS/good0_poses.npz", "KIT/good0_poses.npz"]


def test_fifo_named_like_a_sequence_never_blocks(tmp_path):
    root = tree(tmp_path, n_good=2)
    os.mkfifo(root / "DS" / "x_poses.npz")
    with time_limit(20):
        with pytest.raises(AMASSFileError, match=r"x_poses.npz: not a regular file \(a FIFO\)"):
            index_sequences(root, n_jobs=1, progress=False)
        index, messages = skipped(lambda: index_sequences(root, n_jobs=1, strict=False, progress=False))
        status, _, err = run_console(amass_info, [str(root), "-q", "-n", "1"])
    assert len(index) == 2 and len(messages) == 1 and "x_poses.npz" in messages[0]
    assert status == 1 and err.count("\n") == 1 and "x_poses.npz: not a regular file" in err


def test_device_link_named_like_a_sequence_is_refused(tmp_path):
    root = tree(tmp_path, n_good=1)
    (root / "DS" / "zero_poses.npz").symlink_to("/dev/zero")
    with time_limit(20), pytest.raises(AMASSFileError, match=r"zero_poses.npz: not a regular file \(a character device\)"):
        index_sequences(root, n_jobs=1, progress=False)


# ---------------------------------------------------------------- 15.4: bad arrays found at construction

BAD_ARRAYS = {"objects": legacy(dmpls=np.array([None] * 20)),
              "bools": legacy(trans=np.zeros((20, 3), bool)),
              "strings": legacy(dmpls=np.array([["a"] * 8] * 20)),
              "trans_frames": legacy(trans=np.zeros((19, 3))),
              "dmpls_frames": legacy(dmpls=np.zeros((21, 8))),
              "betas_frames": legacy(betas=np.zeros((19, 16)))}


@pytest.mark.parametrize("name", sorted(BAD_ARRAYS))
def test_bad_array_refused_at_construction(tmp_path, name):
    root = tree(tmp_path, **{name: BAD_ARRAYS[name]})
    with pytest.raises(AMASSFileError, match=f"{name}_poses.npz: "):
        AMASS(root, 4, progress=False)


def test_bad_files_skipped_and_len_exact_on_every_rank(tmp_path):
    "strict=False: one warning per bad file, and on each of 2 ranks len() equals the clips it yields."
    root = tree(tmp_path, n_good=4, **BAD_ARRAYS)
    index, messages = skipped(lambda: index_sequences(root, progress=False, strict=False))
    assert len(index) == 4
    assert sorted(m.split("/")[-1].split(":")[0] for m in messages) == sorted(f"{n}_poses.npz" for n in BAD_ARRAYS)
    counts = yielded_per_rank(root)
    assert all(n == yielded for n, yielded in counts)
    good_only = tree(tmp_path / "good_only", n_good=4)
    assert [n for n, _ in counts] == [len(AMASS(good_only, 4, progress=False, rank=r, world_size=2)) for r in range(2)]


def flip_data_byte(path, member="poses.npy"):
    "Change one data byte of a stored member of the npz at `path` (its CRC no longer matches)."
    with zipfile.ZipFile(path) as zf: info = zf.getinfo(member)
    data = bytearray(path.read_bytes())
    name_length = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_length + extra_length + 200] ^= 0xFF  # a data byte, past the 128-byte npy header
    path.write_bytes(bytes(data))


def test_crc_error(tmp_path):
    """A flipped data bit: the headers cannot show it (the index accepts the file); check_finite=True reads every
    array, so zip's CRC check refuses it at construction, or skips it with len() exact."""
    root = tree(tmp_path, n_good=3)
    flip_data_byte(root / "DS" / "good1_poses.npz")
    assert len(index_sequences(root, progress=False)) == 3
    with pytest.raises(AMASSFileError, match=r"good1_poses.npz: .*Bad CRC-32"):
        AMASS(root, 4, progress=False, check_finite=True)
    ds, messages = skipped(lambda: AMASS(root, 4, progress=False, check_finite=True, strict=False))
    assert len(messages) == 1 and "good1_poses.npz" in messages[0]
    assert [p.name for p in ds.index.paths] == ["good0_poses.npz", "good2_poses.npz"]
    assert len(ds) == len(skipped(lambda: list(ds))[0]) > 0


def test_stored_member_size_mismatch(tmp_path):
    "A stored member whose directory sizes disagree is refused from the zip directory alone."
    root = tree(tmp_path, n_good=1)
    path = root / "DS" / "good0_poses.npz"
    with zipfile.ZipFile(path) as zf: info = zf.getinfo("poses.npy")
    data = bytearray(path.read_bytes())
    # the central directory entry of poses.npy: its compressed size is 20 bytes after its signature
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + 9] != b"poses.npy": entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 20:entry + 24] = (info.compress_size - 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(AMASSFileError, match=r"good0_poses.npz: member 'poses.npy' is stored uncompressed but its sizes differ"):
        index_sequences(root, progress=False)


# ---------------------------------------------------------------- 15.5: frame counts the file cannot hold

def claim_frames(path, n_frames, claimed):
    "Rewrite the header of poses.npy in the npz at `path` to claim `claimed` frames (same header length)."
    data = path.read_bytes()
    old = f"'shape': ({n_frames}, 156), }}".encode()
    start = data.index(old)
    end = data.index(b"\n", start)
    new = f"'shape': ({claimed}, 156), }}".encode().ljust(end - start)
    path.write_bytes(data[:start] + new + data[end:])


def test_header_claiming_a_trillion_frames(tmp_path):
    root = tree(tmp_path, n_good=2, huge=legacy(20))
    claim_frames(root / "DS" / "huge_poses.npz", 20, 10**12)
    with pytest.raises(AMASSFileError, match=r"huge_poses.npz: member 'poses.npy': its header claims shape \(1000000000000, 156\)"):
        AMASS(root, 4, progress=False)
    ds, messages = skipped(lambda: AMASS(root, 4, strict=False, progress=False))
    assert len(messages) == 1 and len(ds.index) == 2 and ds.index.n_frames.max() == 30
    status, out, err = run_console(amass_info, [str(root)])
    assert status == 1 and out == "" and err.startswith("amass_info: error: ") and "huge_poses.npz" in err and err.count("\n") == 1


def test_header_claiming_fewer_frames_than_stored(tmp_path):
    "A header that does not account for every byte of its member is refused too (the file was cut or altered)."
    root = tree(tmp_path, n_good=1, short=legacy(20))
    claim_frames(root / "DS" / "short_poses.npz", 20, 19)
    with pytest.raises(AMASSFileError, match=r"short_poses.npz: .*claims shape \(19, 156\)"):
        index_sequences(root, progress=False)


# ---------------------------------------------------------------- 15.6: gender, frame rate and body model as scalars

SCALARS = {"gender_pair": ({"gender": np.array(["male", "female"])}, "'gender' should be a single str or bytes value, has shape (2,) of <U6"),
           "gender_empty": ({"gender": np.array([], dtype="U4")}, "'gender' should be a single str or bytes value, has shape (0,) of <U4"),
           "gender_ff": ({"gender": np.array(b"\xff")}, "'gender' is not text (b'\\xff')"),
           "gender_number": ({"gender": np.array(1.0)}, "'gender' should be a single str or bytes value, has shape () of float64"),
           "rate_abc": ({"mocap_framerate": np.array("abc")}, "'mocap_framerate' should be a single real number, has shape () of <U3"),
           "rate_pair": ({"mocap_framerate": np.array([120, 60])}, "'mocap_framerate' should be a single real number, has shape (2,) of int64"),
           "rate_complex": ({"mocap_framerate": np.array(120 + 0j)}, "'mocap_framerate' should be a single real number, has shape () of complex128"),
           "rate_nan": ({"mocap_framerate": np.array(np.nan)}, "'mocap_framerate' should be a positive frame rate, is nan"),
           "model_array": ({"surface_model_type": np.array(["smplh", "smplh"])}, "'surface_model_type' should be a single str or bytes value, has shape (2,) of <U5"),
           "model_wrong": ({"surface_model_type": np.array("smplx")}, "surface_model_type 'smplx' but 'poses' has 156 parameters per frame (smplh)")}


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_bad_scalar_named_in_one_line(tmp_path, name):
    changes, message = SCALARS[name]
    root = tree(tmp_path, n_good=2, **{name: legacy(**changes)})
    with pytest.raises(AMASSFileError) as error: AMASS(root, 4, progress=False)
    assert str(error.value) == f"{root / 'DS' / name}_poses.npz: {message}"
    ds, messages = skipped(lambda: AMASS(root, 4, strict=False, progress=False))
    assert len(ds.index) == 2 and len(messages) == 1 and f"{name}_poses.npz" in messages[0]
    status, out, err = run_console(amass_info, [str(root), "-q"])
    assert (status, out, err.count("\n")) == (1, "", 1) and message in err and "Traceback" not in err


# ---------------------------------------------------------------- 15.7: shapes, complex values, unreadable folders

SHAPES = {"trans_1d": (legacy(trans=np.zeros(20)), "'trans' should be 2-d (frames, parameters), has shape (20,)"),
          "trans_3d": (legacy(trans=np.zeros((20, 3, 1))), "'trans' should be 2-d (frames, parameters), has shape (20, 3, 1)"),
          "trans_wide": (legacy(trans=np.zeros((20, 4))), "'trans' should have 3 parameters per frame, has 4"),
          "betas_2d": (legacy(betas=np.zeros((20, 16))), "'betas' should be 1-d (one value per shape parameter), has shape (20, 16)"),
          "poses_complex": (legacy(poses=np.zeros((20, 156), complex)), "'poses' should hold real numbers, has dtype complex128"),
          "dmpls_complex": (legacy(dmpls=np.zeros((20, 8), np.complex64)), "'dmpls' should hold real numbers, has dtype complex64")}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_bad_shape_or_complex_refused(tmp_path, name):
    arrays, message = SHAPES[name]
    root = tree(tmp_path, n_good=1, **{name: arrays})
    with pytest.raises(AMASSFileError) as error: AMASS(root, 4, progress=False)
    assert str(error.value) == f"{root / 'DS' / name}_poses.npz: {message}"


def test_betas_of_another_width_found_by_width_check(tmp_path):
    "betas (10,) beside files with 16: each file is fine alone, width_check names the odd one."
    root = tree(tmp_path, n_good=3, ten=legacy(betas=np.zeros(10)))
    index = index_sequences(root, progress=False)
    check = width_check(index, ["poses", "trans", "dmpls", "betas"])
    problems = [check(i) for i in range(len(index))]
    assert problems[:3] == [None, None, None]
    assert problems[3] == f"{root / 'DS' / 'ten_poses.npz'}: 'betas' has shape (10,), other files have (16,) per sequence"


def test_unreadable_folder_is_a_problem(tmp_path, monkeypatch):
    "A folder that cannot be listed raises with strict=True, and is skipped with one warning naming it otherwise."
    root = tree(tmp_path, n_good=2)
    tree(root / "Other", n_good=1)
    locked = root / "Other" / "DS"
    real_scandir = os.scandir
    def scandir(path="."):
        if Path(path) == locked: raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(AMASSFileError, match=r"Other/DS: cannot list this folder \(Permission denied\)"):
        index_sequences(root, progress=False)
    index, messages = skipped(lambda: index_sequences(root, strict=False, progress=False))
    assert len(index) == 2 and messages == [f"skipping {locked}: cannot list this folder (Permission denied)"]
    assert len(index_sequences(root, subdatasets=["DS"], progress=False)) == 2  # a problem elsewhere does not matter


# ---------------------------------------------------------------- 11.7: amass_info

def test_amass_info_plots_index_once_and_quiet(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    root = tree(tmp_path / "amass", n_good=3)
    calls = []
    def counting(*args, **kwargs): calls.append(args); return index_sequences(*args, **kwargs)
    monkeypatch.setattr(llamass.info, "index_sequences", counting)
    status, out, err = run_console(amass_info, [str(root), "--plots", str(tmp_path / "png"), "-q"])
    assert (status, err, len(calls)) == (0, "", 1)
    assert out.splitlines()[-1].split()[:4] == ["all", "3", "90", "0.000"]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["amass_durations.png", "amass_file_sizes.png", "amass_hours.png"]


def test_histogram_bins_keep_the_smallest_value():
    from llamass.info import log_bins
    values = np.array([694366.0, 700000.0, 2e6, 1.2e8])
    assert 10 ** np.log10(values.min()) > values.min()  # the rounding that used to drop it
    counts, edges = np.histogram(values, bins=log_bins(values))
    assert (counts.sum(), edges[0], edges[-1]) == (4, 694366.0, 1.2e8)


def test_no_progress_bar_before_an_error(tmp_path, monkeypatch):
    "An empty folder: no indexing bar is even made, and the error is one line."
    made = []
    class Recording(llamass.index.ProgressParallel):
        def __init__(self, *args, **kwargs): made.append(kwargs); super().__init__(*args, **kwargs)
    monkeypatch.setattr(llamass.index, "ProgressParallel", Recording)
    (tmp_path / "empty" / "DS").mkdir(parents=True)
    status, out, err = run_console(amass_info, [str(tmp_path / "empty")])
    assert (status, out, made) == (1, "", [])
    assert err == f"amass_info: error: no AMASS sequences (*.npz files) found in {tmp_path / 'empty'}\n"


# ---------------------------------------------------------------- 15, Tests: the property

DTYPES = ["<f8", "<f4", "<i2", "|u1", "|b1", "<c8", "<U5", "|S5", "|O"]
GENDERS = [np.array("male"), np.array(b"female"), np.array(["male"]), np.array(["male", "female"]), np.array(b"\xff"),
           np.array("robot"), np.array(1.0)]
RATES = [np.array(120.0), np.array(60), np.array(0.0), np.array("abc"), np.array([120, 60]), np.array(np.nan), np.array(1j)]
MODELS = [np.array("smplh"), np.array(b"smplh"), np.array("smplx"), np.array(["smplh", "smplh"]), np.array(3)]
KNOWN = ["poses", "trans", "dmpls", "betas", "root_orient", "pose_hand"]


def make_array(dtype, shape):
    "An array of `dtype` and `shape` (text and objects filled with something)."
    if dtype == "|O": return np.full(shape, None, dtype=object)
    if dtype[1] in "US": return np.full(shape, "male", dtype=dtype)
    return np.ones(shape, dtype=dtype)


def npy_bytes(array):
    "`array` as the bytes of an .npy file."
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def sequence_files(draw):
    "The members (name, bytes) of one synthetic npz: random headers for the known arrays, random other members."
    n_frames = draw(st.integers(0, 12))
    dims = st.sampled_from([0, 1, 3, 8, 16, 156, n_frames, n_frames, n_frames])
    members = []
    for key in KNOWN:
        choice = draw(st.sampled_from(["good", "good", "absent", "random"]) if key != "poses" else st.sampled_from(["good", "good", "random"]))
        if choice == "absent": continue
        if choice == "good":
            shape = {"poses": (n_frames, 156), "trans": (n_frames, 3), "dmpls": (n_frames, 8), "betas": (16,),
                     "root_orient": (n_frames, 3), "pose_hand": (n_frames, 90)}[key]
            array = make_array(draw(st.sampled_from(["<f8", "<f4"])), shape)
        else: array = make_array(draw(st.sampled_from(DTYPES)), tuple(draw(st.lists(dims, max_size=3))))
        members.append((draw(st.sampled_from([f"{key}.npy", f"{key}.npy", key])), npy_bytes(array)))
    for key, values in [("gender", GENDERS), ("mocap_framerate", RATES), ("surface_model_type", MODELS)]:
        if draw(st.booleans()): members.append((f"{key}.npy", npy_bytes(draw(st.sampled_from(values)))))
    for name in draw(st.lists(st.text("abeoprsny._/", min_size=1, max_size=10), max_size=3)):
        payload = draw(st.sampled_from([b"", b"not npy", npy_bytes(np.zeros(3)), npy_bytes(np.array(["x"])), npy_bytes(np.array([None]))]))
        members.append((name, payload))
    return members


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=st.lists(sequence_files(), min_size=1, max_size=3), strict=st.booleans(), world_size=st.sampled_from([1, 2]))
def test_property_construction_is_exact_or_names_a_file(tmp_path_factory, files, strict, world_size):
    "Random headers, dtypes and member names: AMASS either builds with len() equal to what each rank yields, or names a file."
    root = tmp_path_factory.mktemp("prop")
    for i, members in enumerate(files):
        (root / "DS").mkdir(exist_ok=True)
        with warnings.catch_warnings(), zipfile.ZipFile(root / "DS" / f"f{i}_poses.npz", "w") as zf:
            warnings.simplefilter("ignore")  # duplicate member names are part of the game
            for name, payload in members: zf.writestr(name, payload)
    for rank in range(world_size):
        try: ds, _ = skipped(lambda: AMASS(root, 2, strict=strict, progress=False, n_jobs=2, rank=rank, world_size=world_size))
        except (AMASSFileError, ValueError, FileNotFoundError) as e:
            no_clip = str(e).startswith("no clip of clip_length=2")  # every sequence too short: about the argument, not a file
            assert str(root) in str(e) or no_clip, f"{type(e).__name__} without a path: {e}"
            return
        clips, _ = skipped(lambda: list(ds))
        assert len(clips) == len(ds)


# ---------------------------------------------------------------- read_npz: what load_sequence could read with

def test_read_npz_matches_np_load_on_the_real_sample_in_threads(real_sample_root):
    "read_npz gives np.load's arrays (dtype and values) for the real AMASS files, from 8 threads at once."
    from concurrent.futures import ThreadPoolExecutor
    from llamass.index import read_npz
    paths = sorted(real_sample_root.rglob("*.npz"))
    keys = ["poses", "trans", "dmpls", "betas", "gender", "mocap_framerate"]
    expected = {}
    for path in paths:
        with np.load(path) as npz: expected[path] = {k: npz[k] for k in keys}
    with ThreadPoolExecutor(8) as pool: results = list(pool.map(lambda p: (p, read_npz(p, keys)), paths * 20))
    assert len(results) == 40
    for path, arrays in results:
        assert all(np.array_equal(arrays[k], expected[path][k]) and arrays[k].dtype == expected[path][k].dtype for k in keys)
    index = index_sequences(real_sample_root, progress=False)
    assert index.n_frames.tolist() == [601, 235] and index.shapes[0]["betas"] == (16,)


def test_read_npz_checks_the_crc(tmp_path):
    from llamass.index import read_npz
    root = tree(tmp_path, n_good=1)
    flip_data_byte(root / "DS" / "good0_poses.npz")
    assert read_npz(root / "DS" / "good0_poses.npz", ["trans"])["trans"].shape == (20, 3)
    with pytest.raises(AMASSFileError, match=r"good0_poses.npz: not a readable npz \(BadZipFile: Bad CRC-32 for file 'poses.npy'\)"):
        read_npz(root / "DS" / "good0_poses.npz", ["poses"])


def test_read_npz_reads_what_numpy_reads_and_checks_local_headers(tmp_path):
    "Stored members are read in one call from the file: the same arrays as np.load, and a local header that names another member is refused."
    from llamass.index import read_npz
    root = tree(tmp_path, n_good=1)
    path = root / "DS" / "good0_poses.npz"
    with np.load(path) as npz: expected = {k: npz[k] for k in ("poses", "trans", "betas")}
    got = read_npz(path, list(expected))
    assert all(np.array_equal(got[k], expected[k]) and got[k].dtype == expected[k].dtype for k in expected)
    with zipfile.ZipFile(path) as zf: info = zf.getinfo("trans.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30:info.header_offset + 30 + len("trans.npy")] = b"tranx.npy"   # the local name only
    path.write_bytes(bytes(data))
    with pytest.raises(AMASSFileError, match=r"good0_poses.npz: not a readable npz \(BadZipFile: File name in directory 'trans.npy' and header b'tranx.npy' differ"):
        read_npz(path, ["trans"])


def test_a_store_beside_the_sequences_is_not_indexed(tmp_path):
    "amass/train_packed next to amass/train: indexing amass reads the sequences, not the store's tables."
    from llamass.core import AMASS, amass_pack
    from llamass.synthetic import identified_sequence, write_tree
    write_tree(tmp_path / "amass" / "train", {f"DS/s{i}/take_poses.npz": identified_sequence(i, 20) for i in range(3)})
    amass_pack(tmp_path / "amass" / "train", tmp_path / "amass" / "train_packed", progress=False)
    assert len(AMASS(tmp_path / "amass", 1, keep=1.0, progress=False)) == 60


def test_a_header_only_numpys_parser_reads_is_still_read():
    "An .npy header our strict parser does not know (double quotes) goes to numpy's parser, under its lock."
    import io as _io, struct as _struct
    from llamass.index import read_npy_header
    text = '{"descr": "<f8", "fortran_order": False, "shape": (3, 4), }'
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    stream = _io.BytesIO(b"\x93NUMPY\x01\x00" + _struct.pack("<H", len(text)) + text.encode("latin1"))
    shape, fortran_order, dtype, offset = read_npy_header(stream)
    assert (shape, fortran_order, str(dtype), offset) == ((3, 4), False, "float64", 10 + len(text))
