"""Degradations: how an LR image is made from an HR one, for training and for testing.

* ``kernels``: Gaussian and MZSR kernels, re-centring, the x4 kernel of an x2 one, kernel files,
  kernel error.
* ``blur``: ``degrade(hr, kernels, scale, mode)``, blur and subsample a batch on any device.
* ``photo``: the ways people and tools shrink photographs (Pillow's filters, MATLAB, area
  averaging, a mild blur, then JPEG), and each tool as a kernel.
* ``named``: the degradations a test names (``named_degradation``): bicubic, the MZSR paper's
  kernels, kernel files, blind benchmarks and the photo suite.
"""
from srlab.degradation.blur import MODES, blur, degrade, symmetric_pad
from srlab.degradation.kernels import (
    analytic_x4,
    centre_kernel,
    gaussian_from_precision,
    gaussian_kernel,
    kernel_error,
    load_kernel,
    random_kernels,
)
from srlab.degradation.named import (
    BLIND_FAMILIES,
    TEST_KERNELS,
    BlindFamily,
    Degradation,
    KernelSpec,
    blind_family,
    expand_suites,
    named_degradation,
)

__all__ = [
    "MODES", "blur", "degrade", "symmetric_pad", "analytic_x4", "centre_kernel", "gaussian_from_precision",
    "gaussian_kernel", "kernel_error", "load_kernel", "random_kernels", "BLIND_FAMILIES", "TEST_KERNELS",
    "BlindFamily", "Degradation", "KernelSpec", "blind_family", "expand_suites", "named_degradation",
]
