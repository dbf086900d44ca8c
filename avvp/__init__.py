"""avvp: weakly-supervised audio-visual video parsing, from raw video to per-second labels."""

__version__ = "0.1.0"
