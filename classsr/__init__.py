"""ClassSR: a patch classifier routing sub-images to three MSRResNet widths (Kong et al., CVPR 2021)."""
