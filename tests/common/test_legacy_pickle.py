"""PyTorch's legacy (non-zip) files read without running them: the tensors of a whole-model
pickle come back exactly, and every global outside the allow-list (``os.system`` first) is refused
with one line before anything runs. The files are written here: by ``torch.save``'s legacy writer,
and by hand where a file must be crafted; the public VDSR file is read where the shared data has it."""
import io
import pickle
import struct
import sys

import pytest
import torch
from public_layouts import legacy_save, vdsr_classes

from srlab.errors import UserError
from srlab.legacy_pickle import LegacyModule, read_legacy_file

VDSR_CLASSES = {"vdsr": {"Net", "Conv_ReLU_Block"}}


@pytest.fixture
def vdsr_module(monkeypatch):
    """twtygqyy's classes under their module's name, so that ``torch.save`` pickles them as
    ``vdsr.Net`` / ``vdsr.Conv_ReLU_Block``, as the public file does."""
    module = vdsr_classes()
    monkeypatch.setitem(sys.modules, "vdsr", module)
    return module


def legacy_file(payload: bytes, storages: list[tuple[str, torch.Tensor]] = (), little_endian: bool = True) -> bytes:
    """A legacy file around the object pickle ``payload``: the three header pickles, the payload, the
    storage keys and each storage's count and bytes."""
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001,
        {"protocol_version": 1001, "little_endian": little_endian, "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    data = b"".join(struct.pack("<q", t.numel()) + t.numpy().tobytes() for _, t in storages)
    return header + payload + pickle.dumps([k for k, _ in storages], protocol=2) + data


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    """Pickles as the legacy writer pickles a tensor: ``_rebuild_tensor(storage, offset, size, stride)``."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return torch._utils._rebuild_tensor, self.args


def pickled(obj) -> bytes:
    """``obj`` pickled with storages as persistent ids, as the legacy writer does."""
    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            return ("storage", torch.FloatStorage, o.key, "cpu", o.numel, None) if isinstance(o, Storage) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def test_a_whole_model_pickle_gives_its_weights_and_layer_attributes(vdsr_module, tmp_path):
    torch.manual_seed(0)
    net = vdsr_module.Net()
    path = legacy_save({"epoch": 7, "model": net}, tmp_path / "model.pth")
    root = read_legacy_file(path, VDSR_CLASSES)
    assert root["epoch"] == 7 and isinstance(root["model"], LegacyModule) and root["model"].qualname == "vdsr.Net"
    weights = root["model"].state_dict()
    assert list(weights) == list(net.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    conv = root["model"].children()["residual_layer"].children()["1"].children()["conv"]
    assert conv.qualname == "torch.nn.modules.conv.Conv2d" and conv.attribute("padding") == (1, 1)
    assert conv.attribute("_parameters")["bias"] is None
    # The same file without the project's classes on the allow-list: refused, by name.
    with pytest.raises(UserError, match=r"refused: its pickle names vdsr\.Net, which is not on the allow-list"):
        read_legacy_file(path)


def test_a_state_dict_in_the_legacy_format_reads_too(tmp_path):
    weights = {"a": torch.arange(6.0).view(2, 3), "b": torch.arange(6.0).view(2, 3).t(), "c": torch.zeros(0)}
    root = read_legacy_file(legacy_save(weights, tmp_path / "sd.pth"))
    assert all(torch.equal(root[k], v) for k, v in weights.items())


@pytest.mark.parametrize("payload, named", [
    (b"cos\nsystem\n(S'touch MARKER'\ntR.", "os.system"),
    (b"cbuiltins\neval\n(S'__import__(\"os\").system(\"touch MARKER\")'\ntR.", "builtins.eval"),
    (b"csubprocess\nPopen\n((S'touch'\nS'MARKER'\nltR.", "subprocess.Popen"),
    (b"ctorch\nload\n(S'MARKER'\ntR.", "torch.load"),
])
def test_a_crafted_legacy_file_that_would_run_a_command_is_refused_and_nothing_runs(payload, named, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)  # where "touch MARKER" would leave its mark
    path = tmp_path / "crafted.pth"
    path.write_bytes(legacy_file(payload))
    with pytest.raises(UserError) as raised:
        read_legacy_file(path, VDSR_CLASSES)
    message = str(raised.value)
    assert f"refused: its pickle names {named}," in message and "nothing in the file was run" in message
    assert "\n" not in message
    assert not (tmp_path / "MARKER").exists()


def test_an_object_whose_reduce_calls_os_system_saved_by_torch_is_refused(tmp_path, monkeypatch):
    import os

    class Payload:
        def __reduce__(self):
            return os.system, ("touch MARKER",)

    monkeypatch.chdir(tmp_path)
    path = legacy_save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match=rf"refused: its pickle names {os.system.__module__}\.system,"):
        read_legacy_file(path)
    assert not (tmp_path / "MARKER").exists()


def test_the_header_pickles_are_restricted_too(tmp_path):
    """The magic number's pickle is read by the same allow-list."""
    path = tmp_path / "header.pth"
    path.write_bytes(b"\x80\x02cos\nsystem\n(S'touch MARKER'\ntR.")
    with pytest.raises(UserError, match="names os.system"):
        read_legacy_file(path)


def test_tensors_are_checked_against_their_storages_and_the_file(tmp_path):
    data = torch.arange(4.0)
    cases = [  # (object, storages in the file, message)
        (Tensor(Storage("k", 4), 2, (4,), (1,)), [("k", data)], "lies outside its storage of 4 elements"),
        (Tensor(Storage("k", 4), 0, (2, 2), (3, 1)), [("k", data)], "lies outside its storage"),
        (Tensor(Storage("k", 10**12), 0, (4,), (1,)), [("k", data)], "its size in the data"),
        (Tensor(Storage("k", 4), 0, (4,), (1,)), [], "does not match the storages it uses"),
        (Tensor(Storage("k", 4), 0, (4,), (-1,)), [("k", data)], "not integers"),
    ]
    for obj, storages, message in cases:
        path = tmp_path / "t.pth"
        path.write_bytes(legacy_file(pickled(obj), storages))
        with pytest.raises(UserError, match=message):
            read_legacy_file(path)
    path.write_bytes(legacy_file(pickled(Tensor(Storage("k", 4), 1, (2,), (2,))), [("k", data)]))
    assert torch.equal(read_legacy_file(path), torch.tensor([1.0, 3.0]))


def test_damaged_and_foreign_files_are_one_line_errors(vdsr_module, tmp_path):
    good = legacy_save({"model": vdsr_module.Net()}, tmp_path / "good.pth").read_bytes()
    cases = [
        (good[:-10], "ends 10 bytes short"),
        (good[: len(good) // 3], "not a readable legacy PyTorch file"),
        (good + b"x", "bytes after the last storage"),
        (b"", "not a legacy PyTorch file"),
        (b"PK\x03\x04rest", "a zip-format PyTorch file"),
        (legacy_file(pickled([1, 2]), little_endian=False), "big-endian"),
        (pickle.dumps(12345, protocol=2) + good, "no magic number"),
    ]
    for content, message in cases:
        path = tmp_path / "bad.pth"
        path.write_bytes(content)
        with pytest.raises(UserError, match=message) as raised:
            read_legacy_file(path, VDSR_CLASSES)
        assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_a_pickle_that_contains_itself_is_refused(tmp_path):
    loop: list = []
    loop.append(loop)
    path = tmp_path / "loop.pth"
    path.write_bytes(legacy_file(pickled(loop)))
    with pytest.raises(UserError, match="contains itself"):
        read_legacy_file(path)


def test_the_public_vdsr_file(shared_data):
    path = shared_data / "reference" / "public_weights" / "vdsr_model_epoch_50.pth"
    if not path.is_file():
        pytest.skip("no public VDSR file in the shared data")
    root = read_legacy_file(path, VDSR_CLASSES)
    net = root["model"]
    assert root["epoch"] == 50 and net.qualname == "vdsr.Net"
    assert sorted(net.children()) == ["input", "output", "relu", "residual_layer"]
    weights = net.state_dict()
    assert len(weights) == 20 and sum(v.numel() for v in weights.values()) == 664_704
    assert weights["input.weight"].shape == (64, 1, 3, 3) and weights["output.weight"].shape == (1, 64, 3, 3)
