"""Infrastructure with no knowledge of audio-visual parsing: atomic files, paths, errors, readers, devices, precision, seeds, weights, locks, faults, provenance."""
