"""Shared concepts the stages build on: the feature store, annotations and classes, data and batching, the models, losses, metrics and checkpoints."""
