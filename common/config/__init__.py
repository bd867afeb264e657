"""Typed, strict configuration: YAML -> dataclasses, every mistake one line naming the key.

``load_config(path, overrides)`` reads the YAML (UTF-8, ``yaml.safe_load`` semantics: plain data
only), applies ``--opt key.sub=value`` overrides (values parsed as YAML), and converts the result
into ``Config``. Unknown keys, wrong types, missing required fields and impossible values raise
``ConfigError`` as one line, ``<key>: <what is wrong>, got <value>; <what is allowed>`` (with a
"did you mean" for typos), prefixed with where the value came from: the file, or the file and
the ``--opt`` that set it (``config_errors``). The reader also refuses what ``yaml.safe_load``
lets through silently or as a traceback: a key given twice in one mapping, text that is not
UTF-8, nesting deep enough to exhaust Python's recursion limit, aliases that expand to an
absurd size or refer to themselves.

Model sections (``model: {type: ..., **kwargs}``) are checked against the constructor's
signature by ``build``: the same strictness without a second schema to keep in sync.

One module per job; import from ``srlab.config`` itself, which re-exports the public names:

* ``schema``: the dataclasses (``Config`` and its sections, ``DatasetSpec``, ``FilePath``) and
  ``validate`` (impossible values);
* ``convert``: plain data to dataclasses with typed, did-you-mean errors (``from_dict``), and back
  (``to_dict``); ``known_fields`` for configs saved by older code;
* ``yaml_io``: the hardened YAML reader (size, depth and alias limits, duplicate keys, UTF-8) and
  ``save_config``;
* ``overrides``: ``--opt`` (``apply_override``) and naming the file or ``--opt`` that set a bad
  value (``config_errors``);
* ``paths``: paths in a config file relative to it (``resolve_file_paths``), and a method's file
  options (``file_options``, ``without_file_options``);
* ``arguments``: ``build``, a ``{type: ..., **kwargs}`` section checked against a constructor's
  signature, and ``Count``, the annotation for an integer argument that may be 0;
* ``load``: ``load_config``, the above in order.
"""
from srlab.config.arguments import Count, build
from srlab.config.convert import from_dict, known_fields, to_dict
from srlab.config.load import load_config
from srlab.config.overrides import apply_override, config_errors
from srlab.config.paths import file_options, resolve_file_paths, without_file_options
from srlab.config.schema import (
    Config,
    DatasetSpec,
    EvalConfig,
    FilePath,
    OptimizerConfig,
    SchedulerConfig,
    TrainConfig,
    validate,
)
from srlab.config.yaml_io import save_config

__all__ = [
    "Config", "TrainConfig", "EvalConfig", "OptimizerConfig", "SchedulerConfig", "DatasetSpec", "FilePath",
    "validate", "from_dict", "known_fields", "to_dict", "save_config", "apply_override", "config_errors",
    "file_options", "resolve_file_paths", "without_file_options", "Count", "build", "load_config",
]
