"""srlab: efficient single-image super-resolution (MZSR, VDSR / Asym-VDSR, ClassSR) on one core.

This package is the shared core (the repository's ``common/`` folder): MATLAB-bicubic resizing,
degradations, data, metrics, configs, checkpoints and the training loop. The method families are
its subpackages ``srlab.mzsr``, ``srlab.asymsr`` and ``srlab.classsr``; ``srlab.api`` is the
Python API and ``srlab.cli`` the ``srlab`` command.
"""
__version__ = "0.2.0"

import sys as _sys

if "spandrel" in _sys.modules:  # spandrel loaded first (chaiNNer, a notebook): srlab's exports join its registry
    from srlab.spandrel_arch import register as _register

    _register()
