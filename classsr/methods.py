"""ClassSR's training stages as methods of the shared runner.

* ``BranchOnClass`` (``method: classsr_branch``, stage 1): one SR branch trained like any
  supervised network, on the sub-images of one class only (``options.split`` from
  ``scripts/prepare_classsr.py``, ``options.branch_class``: 0 = easiest).

Stages 2 (the Class-Module, branches frozen) and 3 (joint fine-tuning) are not written yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from classsr.prepare import class_regions, read_split
from common.config import Config
from common.method import Supervised


@dataclass
class BranchOptions:
    split: str  # JSON written by scripts/prepare_classsr.py
    branch_class: int  # which class's sub-images this branch learns (0 = easiest)


class BranchOnClass(Supervised):
    name = "classsr_branch"
    Options = BranchOptions

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg, model_factory)
        self.split = read_split(self.options.split)

    def training_regions(self, files: list[Path]) -> np.ndarray:
        return class_regions(self.split, files, self.scales[0], self.options.branch_class, "options.split")
