"""PyTorch's legacy (non-zip) checkpoint files, read without running anything they name.

    root = read_legacy_file("model_epoch_50.pth", module_classes={"vdsr": {"Net", "Conv_ReLU_Block"}})
    network = root["model"]                   # a LegacyModule: the pickled module's attributes
    weights = network.state_dict()            # {"input.weight": tensor, "residual_layer.0.conv.weight": ...}

Before PyTorch 1.6, ``torch.save`` wrote one file of five pickles followed by raw tensor bytes:

    magic number (0x1950a86a20f9469cfc6c) | protocol version (1001) | system info (byte order, sizes)
    | the object (a dict, a state dict, or a whole ``nn.Module``) | the keys of its storages
    | per storage: int64 element count, then the elements

Tensors inside the object refer to storages by a "persistent id", ``("storage", FloatStorage, key,
location, numel, view)``; a pickled module's class by ``("module", cls, source file, source)``.
Some projects published whole-model pickles of this kind (twtygqyy/pytorch-vdsr's VDSR). Loading
one with ``torch.load(weights_only=False)`` imports and calls whatever the pickle names: the
file's author can run any code on the reader's machine. ``weights_only=True`` refuses such files
(a module object is not a tensor).

This reader never imports a name from the file and never calls anything the file chooses. Each
global the pickle names is looked up in ``ALLOWED`` (stand-ins written here) or among the module
classes the caller allows; anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``,
a class outside the allow-list) stops the read with one line naming it, before anything runs:

* a tensor (``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2``) becomes a ``_TensorRef``,
  a parameter (``torch.nn.parameter.Parameter``, ``_rebuild_parameter``) a ``_ParameterRef``,
  plain records of storage, offset, sizes and strides; they become tensors only after the
  storage bytes are read, each view checked to lie inside its storage;
* a storage type (``torch.FloatStorage`` ...) is only its dtype; a storage is allocated once
  the file is known to hold its bytes (a crafted size cannot ask for terabytes);
* an allowed module class (``torch.nn.Conv2d``, ``vdsr.Net``) is a ``LegacyModule`` subclass of
  that name: an empty record whose attributes (``_parameters``, ``_modules``, ``padding``, ...)
  the pickle fills in as plain data. No PyTorch or project code runs for it;
* ``collections.OrderedDict`` and ``set`` are themselves (they only hold data), and the old
  module attribute ``_backend`` (``torch.nn.backends.thnn._get_thnn_function_backend``) is None.

Every problem (a refused global, a truncated file, a view outside its storage, a big-endian
file) is a one-line ``UserError`` naming the file.
"""
from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import torch

from srlab.errors import UserError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> the dtype of its elements (the element size follows from it).
STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}

# The module classes of torch.nn a pickled network of the kind we convert is made of; other
# classes (a project's own, such as vdsr.Net) are allowed by the caller.
TORCH_MODULES = {
    "torch.nn.modules.conv": {"Conv2d", "ConvTranspose2d"},
    "torch.nn.modules.activation": {"ReLU", "PReLU", "LeakyReLU"},
    "torch.nn.modules.container": {"Sequential", "ModuleList"},
    "torch.nn.modules.pixelshuffle": {"PixelShuffle"},
}

# A pickle nested deeper than this is not a network; the limit keeps the walk's recursion bounded.
MAX_DEPTH = 200


class LegacyModule:
    """What a pickled ``nn.Module`` becomes: its class's qualified name and its attributes, as
    plain data (no method of the original class exists here)."""

    qualname = "?"

    def __setstate__(self, state: Any) -> None:  # the pickle's BUILD: the module's __dict__
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"the state of a {self.qualname} is not a mapping of attribute names")
        self.attributes = dict(state)

    def attribute(self, name: str, default: Any = None) -> Any:
        return getattr(self, "attributes", {}).get(name, default)

    def children(self) -> dict[str, LegacyModule]:
        """The submodules by name (``_modules``), in their order."""
        modules = self.attribute("_modules") or {}
        if not isinstance(modules, dict) or not all(isinstance(m, LegacyModule) for m in modules.values()):
            raise UserError(f"a pickled {self.qualname} has submodules that are not modules")
        return dict(modules)

    def state_dict(self, prefix: str = "", _seen: frozenset = frozenset()) -> dict[str, torch.Tensor]:
        """Parameters and buffers by dotted name, as ``nn.Module.state_dict`` names them."""
        if id(self) in _seen or len(_seen) > MAX_DEPTH:
            raise UserError(f"a pickled {self.qualname} contains itself (or is nested absurdly deep)")
        out = {}
        for group in ("_parameters", "_buffers"):
            entries = self.attribute(group) or {}
            if not isinstance(entries, dict):
                raise UserError(f"{group} of a pickled {self.qualname} is not a mapping")
            for name, value in entries.items():
                if value is None:  # a layer without bias
                    continue
                if not isinstance(value, torch.Tensor):
                    raise UserError(f"{prefix}{name} of a pickled {self.qualname} is not a tensor")
                out[prefix + name] = value
        for name, child in self.children().items():
            out.update(child.state_dict(f"{prefix}{name}.", _seen | {id(self)}))
        return out


class _StorageType:
    """``torch.FloatStorage`` and the like, as named by a pickle: only their dtype."""

    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class _StorageRef:
    """A storage the pickle refers to; its elements come after the pickle (``data``)."""

    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: torch.Tensor | None = None


class _TensorRef:
    """A tensor as the pickle describes it: a view (offset, sizes, strides) of a storage."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        if not isinstance(storage, tuple) or len(storage) != 2 or not isinstance(storage[0], _StorageRef):
            raise pickle.UnpicklingError("a tensor whose storage is not a storage of the file")
        if not _ints(offset) or not isinstance(size, tuple) or not isinstance(stride, tuple) or \
                len(size) != len(stride) or not all(_ints(v) for v in size + stride):
            raise pickle.UnpicklingError("a tensor with sizes, strides or offset that are not integers")
        root, view_offset = storage
        self.storage, self.offset, self.size, self.stride = root, view_offset + offset, size, stride

    def materialize(self) -> torch.Tensor:
        extent = sum((n - 1) * s for n, s in zip(self.size, self.stride)) if all(self.size) else -1
        if self.offset + extent >= self.storage.numel:
            raise UserError(f"a tensor of shape {self.size} lies outside its storage of {self.storage.numel} elements")
        return torch.as_strided(self.storage.data, self.size, self.stride, self.offset).clone()

    def __setstate__(self, state: Any) -> None:  # torch's legacy Tensor.__setstate__ is never called
        raise pickle.UnpicklingError("a tensor given extra state (this reader sets no state on tensors)")


class _ParameterRef:
    """A parameter: a tensor (``_TensorRef``) that training updates; the flag is ignored."""

    def __init__(self, data: Any, requires_grad: Any = True, backward_hooks: Any = None):
        if not isinstance(data, _TensorRef):
            raise pickle.UnpicklingError("a parameter that does not wrap a tensor of the file")
        self.data = data

    def __setstate__(self, state: Any) -> None:
        # Old PyTorch pickled a Variable's (requires_grad, volatile, backward hooks): nothing to keep.
        if not isinstance(state, tuple):
            raise pickle.UnpicklingError("a parameter with a state that is not a tuple of flags")


def _ints(value: Any) -> bool:
    return type(value) is int and value >= 0


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` and ``_rebuild_tensor_v2`` (whose extra
    arguments, ``requires_grad``, hooks and metadata, say nothing about the values)."""
    return _TensorRef(storage, offset, size, stride)


def _no_backend() -> None:
    """Stand-in for ``torch.nn.backends.thnn._get_thnn_function_backend``: old modules kept their
    compute backend as an attribute; converted networks do not need it."""
    return None


# "module name" -> stand-in. Nothing else a pickle names is looked up, imported or called.
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,  # protocol-2 pickles spell builtins the Python 2 way
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _ParameterRef,
    ("torch.nn.parameter", "Parameter"): _ParameterRef,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _no_backend,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals from ``ALLOWED`` and the allowed module classes only; persistent ids
    to storage and module records only."""

    def __init__(self, file, module_classes: Mapping[str, Collection[str]]):
        super().__init__(file, encoding="latin1")  # Python 2 pickles: byte strings as text
        self.module_classes = {m: set(names) for m, names in {**TORCH_MODULES, **module_classes}.items()}
        self.stand_ins: dict[str, type] = {}
        self.storages: dict[str, _StorageRef] = {}
        self.tensors: list[_TensorRef] = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            found = ALLOWED[module, name]
            return self._tracked(found) if found is _rebuild_tensor else found
        if name in self.module_classes.get(module, ()):
            qualname = f"{module}.{name}"
            return self.stand_ins.setdefault(qualname, type(name, (LegacyModule,), {"qualname": qualname}))
        raise _Refused(f"{module}.{name}")

    def _tracked(self, rebuild):
        def build(*args):
            tensor = rebuild(*args)
            self.tensors.append(tensor)
            return tensor
        return build

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and pid[:1] == ("module",) and len(pid) == 4:
            if not (isinstance(pid[1], type) and issubclass(pid[1], LegacyModule)):
                raise pickle.UnpicklingError("a module record whose class is not a module class")
            return pid[1]
        if isinstance(pid, tuple) and pid[:1] == ("storage",) and len(pid) == 6:
            return self._storage(*pid[1:])
        raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:60]!r}")

    def _storage(self, storage_type, key, location, numel, view) -> tuple[_StorageRef, int]:
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _ints(numel):
            raise pickle.UnpicklingError("a storage record that is not (type, key, location, size, view)")
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if root.dtype != storage_type.dtype or root.numel != numel:
            raise pickle.UnpicklingError(f"storage {key!r} is described twice, differently")
        if view is None:
            return root, 0
        # A view: (view key, element offset, element count) inside the root storage.
        if not (isinstance(view, tuple) and len(view) == 3 and _ints(view[1]) and _ints(view[2])
                and view[1] + view[2] <= numel):
            raise pickle.UnpicklingError(f"a view of storage {key!r} that does not fit in it")
        return root, view[1]


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list: its name, for the one-line error."""


def read_legacy_file(path: str | Path, module_classes: Mapping[str, Collection[str]] = {}) -> Any:
    """The object pickled in the legacy PyTorch file at ``path``, with its modules as
    ``LegacyModule`` records and its tensors and parameters as tensors.

    ``module_classes``: module name -> class names that may appear as pickled modules, beyond
    ``TORCH_MODULES`` (e.g. ``{"vdsr": {"Net", "Conv_ReLU_Block"}}``)."""
    path = Path(path)
    data = _read(path)
    f = io.BytesIO(data)
    try:
        _check_header(path, f)
        unpickler = _RestrictedUnpickler(f, module_classes)
        root = unpickler.load()
        keys = _RestrictedUnpickler(f, {}).load()
    except _Refused as exc:
        raise UserError(f"{path}: refused: its pickle names {exc}, which is not on the allow-list "
                        f"({_allowed_names(module_classes)}); nothing in the file was run") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, RecursionError) as exc:
        reason = str(exc)[:200] or type(exc).__name__
        raise UserError(f"{path}: not a readable legacy PyTorch file ({reason})") from None
    try:
        _read_storages(path, f, keys, unpickler.storages)
        values = {id(t): t.materialize() for t in unpickler.tensors}
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return _resolve(root, values, 0)


def _allowed_names(module_classes: Mapping[str, Collection[str]]) -> str:
    """The allow-list in a few words: the kinds of data, then the module classes by name."""
    classes = sorted(f"{m}.{n}" for m, names in {**TORCH_MODULES, **module_classes}.items() for n in names)
    return "tensors, parameters, storages, OrderedDict, set, and the module classes " + ", ".join(
        c.removeprefix("torch.nn.modules.") for c in classes)


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data[:4] == b"PK\x03\x04":
        raise UserError(f"{path}: a zip-format PyTorch file (PyTorch 1.6 or later), not the legacy format")
    if data[:1] != b"\x80":
        raise UserError(f"{path}: not a legacy PyTorch file (it starts with {data[:4]!r})")
    return data


def _check_header(path: Path, f: io.BytesIO) -> None:
    """The three small pickles before the object: magic number, protocol, byte order."""
    plain = lambda: _RestrictedUnpickler(f, {}).load()  # noqa: E731 (no global allowed to matter)
    if plain() != MAGIC_NUMBER:
        raise UserError(f"{path}: not a legacy PyTorch file (no magic number)")
    version = plain()
    if version != PROTOCOL_VERSION:
        raise UserError(f"{path}: legacy PyTorch file of protocol {version!r}; this reader knows {PROTOCOL_VERSION}")
    info = plain()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise UserError(f"{path}: written on a big-endian machine (or no system info); only little-endian files "
                        f"are read")


def _read_storages(path: Path, f: io.BytesIO, keys: Any, storages: dict[str, _StorageRef]) -> None:
    """Each storage's bytes, in the order of ``keys``: an int64 element count, then the elements."""
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or \
            sorted(keys) != sorted(storages) or len(set(keys)) != len(keys):
        raise UserError("the list of storages after the pickle does not match the storages it uses")
    for key in keys:
        storage = storages[key]
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != storage.numel:
            raise UserError(f"storage {key!r}: its size in the data ({head!r}) is not the {storage.numel} elements "
                            f"the pickle gives (a truncated or altered file?)")
        nbytes = storage.numel * torch.empty(0, dtype=storage.dtype).element_size()
        raw = f.read(nbytes)  # a short read (truncated file) is refused before any allocation
        if len(raw) != nbytes:
            raise UserError(f"storage {key!r}: the file ends {nbytes - len(raw)} bytes short (truncated?)")
        storage.data = torch.frombuffer(bytearray(raw), dtype=storage.dtype) if nbytes else \
            torch.empty(0, dtype=storage.dtype)
    if f.read(1):
        raise UserError("bytes after the last storage (not a legacy PyTorch file as written by torch.save)")


def _resolve(obj: Any, values: dict[int, torch.Tensor], depth: int, done: dict | None = None,
             open_: set | None = None) -> Any:
    """``obj`` with every tensor record replaced by its tensor (in modules' attributes too).
    ``done``: what each container already became (a pickle may share one object many times);
    ``open_``: the containers being resolved (one that contains itself is refused)."""
    done = {} if done is None else done
    open_ = set() if open_ is None else open_
    if isinstance(obj, _TensorRef):
        return values[id(obj)]
    if isinstance(obj, _ParameterRef):
        return values[id(obj.data)]
    if not isinstance(obj, (LegacyModule, dict, list, tuple)):
        return obj
    if id(obj) in done:
        return done[id(obj)]
    if id(obj) in open_ or depth > MAX_DEPTH:
        raise UserError("the pickled object contains itself, or is nested absurdly deep")
    open_.add(id(obj))
    inner = lambda v: _resolve(v, values, depth + 1, done, open_)  # noqa: E731
    if isinstance(obj, LegacyModule):
        if isinstance(getattr(obj, "attributes", None), dict):
            obj.attributes = inner(obj.attributes)
        result = obj  # resolved in place: shared modules (CARN-M reuses a block) stay shared
    elif isinstance(obj, dict):
        result = type(obj)((k, inner(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) \
            else {k: inner(v) for k, v in obj.items()}
    else:
        result = type(obj)(inner(v) for v in obj)
    open_.discard(id(obj))
    done[id(obj)] = result
    return result
