"""MZSR: Meta-Transfer Learning for Zero-Shot Super-Resolution (Soh, Cho, Cho, CVPR 2020)."""
