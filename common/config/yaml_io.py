"""Config files as YAML: a hardened reader, and ``save_config``.

The reader has ``yaml.safe_load`` semantics (plain data only, never arbitrary objects) and
refuses, as one ``ConfigError`` line, what ``yaml.safe_load`` lets through silently or as a
traceback: a key given twice in one mapping, text that is not UTF-8, a file too large to be a
config, nesting deep enough to exhaust Python's recursion limit, aliases that expand to an absurd
size or refer to themselves. ``_read_text`` reads a file, ``_parse_yaml`` parses text (a file's,
or an ``--opt`` value's), ``_yaml_problem`` puts PyYAML's own errors on one line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from srlab.config.convert import to_dict
from srlab.config.schema import Config
from srlab.errors import ConfigError
from srlab.outputs import atomic_write

_MAX_BYTES = 1 << 20  # a config is a few KB; anything this large was passed by mistake
_MAX_DEPTH = 50  # levels of mappings and lists; configs use 4. Far below Python's recursion limit
_MAX_VALUES = 100_000  # values once aliases are expanded (every later pass expands them)
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _read_text(path: Path) -> str:
    """The file as text, or a one-line ``ConfigError`` saying why it cannot be a config."""
    if not path.is_file():
        raise ConfigError("config file not found")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise ConfigError(f"too large for a config, got {size} bytes; allowed: up to {_MAX_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"a config is YAML saved as UTF-8") from None


def _parse_yaml(text: str, root: str = "") -> Any:
    """``yaml.safe_load(text)`` with ``_StrictLoader``'s checks."""
    loader = _StrictLoader(text, root)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError, with_line: bool = True) -> str:
    """PyYAML's message on one line: the problem and its line, without the quoted context."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark and with_line else ""
        return " ".join(exc.problem.split()) + line
    return " ".join(str(exc).split())


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics (plain data, never arbitrary objects), minus what it lets
    through silently or as a traceback: a key given twice in one mapping (the last one would
    win), nesting that exhausts Python's recursion limit (PyYAML composes recursively), and
    aliases that refer to themselves or expand to an absurd size (a "billion laughs": safe_load
    shares the objects, but ``to_dict``, comparisons and saving expand them). ``root``: the
    dotted key the document sits at ("" for a file, the key for an ``--opt`` value)."""

    def __init__(self, stream: str, root: str = "") -> None:
        super().__init__(stream)
        self._root = root
        self._depth = 0
        self._paths: dict[int, str] = {}  # id(mapping node) -> its dotted key, for the messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"{_key_prefix(self._root)}nested more than {_MAX_DEPTH} levels deep at line {line}; "
                                  f"a config is a few levels of mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        self._index(node)
        return super().construct_document(node)

    def _index(self, root: yaml.Node) -> None:
        """Name every mapping node, and refuse alias cycles and alias bombs, in one pass over the
        node graph (iterative: its depth through aliases is not bounded by ``compose_node``).
        An aliased node is visited once; its size and depth are reused wherever it appears."""
        size: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
        ancestors: set[int] = set()
        stack: list[tuple[yaml.Node, str, bool]] = [(root, self._root, False)]
        while stack:
            node, path, done = stack.pop()
            children = _children(node, path)
            if done:
                ancestors.discard(id(node))
                inner = [size[id(child)] for child, _ in children]
                size[id(node)] = (1 + sum(n for n, _ in inner), 1 + max((d for _, d in inner), default=0))
                values, depth = size[id(node)]
                if values > _MAX_VALUES or depth > _MAX_DEPTH:
                    raise ConfigError(f"{_key_prefix(path)}expands through aliases to {values} values {depth} levels "
                                      f"deep at line {node.start_mark.line + 1}; allowed: {_MAX_VALUES} values, "
                                      f"{_MAX_DEPTH} levels")
                continue
            if id(node) in ancestors:
                raise ConfigError(f"{_key_prefix(path)}refers to itself through an alias at line "
                                  f"{node.start_mark.line + 1}; a config must be a tree")
            if id(node) in size:
                continue
            if isinstance(node, yaml.MappingNode):
                self._paths.setdefault(id(node), path)
            ancestors.add(id(node))
            stack.append((node, path, True))
            # Reversed, so that children are visited in document order: a node reached through
            # several aliases is named by where it first appears.
            stack.extend((child, child_path, False) for child, child_path in reversed(children))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # Checked before the base class flattens merge keys (<<: *base), whose keys the mapping's
        # own may override: only a key written twice in the mapping itself is refused.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base class refuses it
                continue
            if seen:
                prefix = self._paths.get(id(node), self._root)
                name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                raise ConfigError(f"{name}: key given twice (line {first_line[key]} and line "
                                  f"{key_node.start_mark.line + 1}); each key may appear once in a mapping")
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _key_prefix(path: str) -> str:
    return f"{path}: " if path else ""  # the whole file: load_config prefixes its path


def _children(node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.MappingNode):
        names = [str(key.value) if isinstance(key, yaml.ScalarNode) else "?" for key, _ in node.value]
        return [(child, f"{path}.{name}" if path else name)
                for name, (key, value) in zip(names, node.value) for child in (key, value)]
    if isinstance(node, yaml.SequenceNode):
        return [(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
    return []


def save_config(cfg: Config, path: str | Path) -> None:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    atomic_write(path, lambda f: f.write(text.encode()))
