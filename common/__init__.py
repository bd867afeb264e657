"""The shared SR core: degradation, MATLAB-bicubic resizing, data, metrics, config, training loop."""
