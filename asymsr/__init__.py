"""VDSR and Asym-VDSR (3x1 + 1x3 convolutions)."""
