"""The dataset engine's contract, as users meet it: signatures, integer arguments, hooks, dtypes, batch types."""
import inspect

import numpy as np
import pytest
import torch

from llamass.clips import kept_windows
from llamass.core import AMASS, IterableLoader, PackedAMASS, amass_pack, compute_stats
from llamass.engine import PassState, ShardedClips
from llamass.packed import PackedBatches
from common import write_identified

LENGTHS = [23, 7, 40, 12]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    amass_pack(write_identified(root / "tree", LENGTHS), root / "store", progress=False)
    return root / "tree", root / "store"


def keyword_only(cls):
    return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]


def test_signatures_share_positions_and_order():
    amass, packed = inspect.signature(AMASS.__init__).parameters, inspect.signature(PackedAMASS.__init__).parameters
    assert list(amass)[1:11] == ["amass_location", "clip_length", "overlapping", "keep", "transform", "data_keys",
                                 "file_list_seed", "shuffle", "seed", "strict"]              # the original's positions
    assert list(packed)[1:7] == ["store", "clip_length", "overlapping", "keep", "transform", "data_keys"]
    shared = [k for k in keyword_only(PackedAMASS) if k in amass]
    assert shared == [k for k in list(amass) if k in shared]                                 # same relative order
    assert "rank" in keyword_only(AMASS) and "batch_size" in keyword_only(PackedAMASS)


def test_positional_transform_is_the_transform(data):
    _, store = data
    def double(x): return x * 2
    dataset = PackedAMASS(store, 8, False, 0.8, double)
    assert dataset.transform is double and dataset.data_keys == ("poses", "dmpls", "trans", "betas", "gender")
    with pytest.raises(TypeError):
        PackedAMASS(store, 8, False, 0.8, None, None, 0)       # file_list_seed is keyword-only


def test_numpy_integers_everywhere(data):
    tree, store = data
    packed = PackedAMASS(store, np.int64(8), batch_size=np.int64(16), seed=np.uint32(3), rank=np.int64(0), world_size=np.int64(1))
    amass = AMASS(tree, np.int64(8), seed=np.int32(3), progress=False, shuffle_buffer=np.int64(100))
    starts, stops = kept_windows(LENGTHS, 0.8)
    clips = int(((stops - starts) // 8).sum())
    assert (len(amass), len(packed), clips) == (clips, 1, 7)
    assert next(iter(packed))["poses"].shape == (7, 8, 156)
    for bad, message in ((True, "batch_size must be an integer >= 1"), (2.0, "batch_size must be an integer >= 1"), (0, "batch_size must be an integer >= 1")):
        with pytest.raises(ValueError, match=message): PackedAMASS(store, 8, batch_size=bad)
    with pytest.raises(ValueError, match="clip_length must be an integer >= 1, got True"): AMASS(tree, True, progress=False)
    with pytest.raises(ValueError, match="target_fps must be a finite number > 0"): PackedAMASS(store, 8, target_fps=float("nan"))
    with pytest.raises(ValueError, match="target_fps must be a finite number > 0"): AMASS(tree, 8, target_fps=-30, progress=False)


def test_gender_is_int64_like_0_0_4(data):
    tree, store = data
    for dataset in (AMASS(tree, 4, progress=False), PackedAMASS(store, 4)):
        item = next(iter(dataset))
        assert item["gender"].dtype == np.int64 and all(item[k].dtype == np.float32 for k in item if k != "gender")
        assert torch.nn.Embedding(3, 2)(torch.as_tensor(item["gender"]) + 1).shape == (4, 2)
    batch = next(iter(PackedAMASS(store, 4, batch_size=3)))
    assert batch["gender"].dtype == torch.int64


def test_plain_dataloader_gets_dicts_and_transport_pins(data):
    _, store = data
    for workers in (0, 2):
        for batch in torch.utils.data.DataLoader(PackedAMASS(store, 4, batch_size=3), batch_size=None, num_workers=workers):
            assert type(batch) is dict and all(isinstance(v, torch.Tensor) for v in batch.values())
    # after an IterableLoader pass (which sends batches several to a buffer), a plain DataLoader still gets dicts
    dataset = PackedAMASS(store, 4, batch_size=3)
    list(IterableLoader(dataset, batch_size=None, num_workers=2))
    assert all(type(b) is dict for b in torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2))
    item = dataset.gather([(np.array([0, 1]), np.array([0, 4]))])
    assert isinstance(item, PackedBatches) and callable(item.pin_memory)
    pinned = item.pin_memory().batches()
    assert [type(b) for b in pinned] == [dict] and all(t.is_pinned() == torch.cuda.is_available() for t in pinned[0].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs CUDA")
def test_iterable_loader_pins_packed_batches(data):
    _, store = data
    for batch in IterableLoader(PackedAMASS(store, 4, batch_size=3), batch_size=None, num_workers=2, pin_memory=True):
        assert all(t.is_pinned() for t in batch.values())


def test_a_subclass_fills_hooks_and_statistics_use_them(data):
    tree, store = data
    class Nothing(ShardedClips):
        def __init__(self): super().__init__(lengths=[5, 6], clip_length=2)
    with pytest.raises(NotImplementedError, match="Nothing must define read_clips"):
        list(Nothing())
    a, p = compute_stats(AMASS(tree, 1, progress=False), progress=False), compute_stats(PackedAMASS(store, 1), progress=False)
    np.testing.assert_allclose(a["trans"]["mean"], p["trans"]["mean"])
    assert "isinstance" not in inspect.getsource(__import__("llamass.stats").stats._sequence_stats)


def test_pass_state_is_named_and_reaches_workers(data):
    tree, _ = data
    dataset = AMASS(tree, 2, keep=1.0, data_keys=("trans",), shuffle=True, progress=False)
    assert isinstance(dataset.pass_state, PassState)
    loader = IterableLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True)
    first = [b["trans"][:, 0, :2].tolist() for b in loader]
    dataset.set_epoch(0)
    assert [b["trans"][:, 0, :2].tolist() for b in loader] == first     # persistent workers saw the new epoch
