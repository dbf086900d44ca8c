"""The feature store: one HDF5 file per extractor role (and per shard before merging).

Modules: :mod:`~avvp.core.feature_store.attributes` (what a store holds), :mod:`~avvp.core.feature_store.writing`,
:mod:`~avvp.core.feature_store.reading`, :mod:`~avvp.core.feature_store.merging` (shards into one store) and
:mod:`~avvp.core.feature_store.partial` (resume files). The names below are importable from here.

Layout (docs/architecture.md): dataset ``video_ids`` (UTF-8 strings, the full LLP file names) and
dataset ``features`` float32 of shape (N, T, D), one chunk per video; file attributes ``role``,
``extractor``, ``settings`` (JSON), ``weights`` (identity: sha256 of the file or ``random:<seed>``)
and ``avvp_version``. A store with no videos has shape (0, 0, D) (or (0, 0, 0)). Extracted audio
stores also hold ``padded_s`` (N,) float32: the seconds of each video's window that its audio
stream did not cover and that were filled with silence (0 for most videos; see
``features.audio_tolerance``). A store may also hold extra per-video arrays beside ``features``,
float32 of shape (N, ...) (VALOR's teachers store their class ``scores`` (N, T, C) so;
:func:`read_extra`). A shard store records ``inputs`` (what it was made from, see
:mod:`avvp.stages.extraction`); merged stores drop it.

Every file is written atomically (a temporary file beside the target, renamed on success), and
large stores are written and merged one video at a time, so memory stays small.
"""

from avvp.core.feature_store.attributes import (EXTRACT_ROLES, FAILURE_COLUMNS, FLAG_DATASETS, IDENTITY_ATTRS,
                                           REQUIRED_ATTRS, ROLES, SHARD_ATTRS, TEACHER_ROLES)
from avvp.core.feature_store.merging import merge_stores
from avvp.core.feature_store.partial import PartialFile
from avvp.core.feature_store.reading import (MAX_VIDEOS_PER_READ, extra_names, read_attrs, read_chunks, read_extra,
                                        read_flags, read_ids, read_into, read_store, store_shape)
from avvp.core.feature_store.writing import StoreWriter, store_writer, write_store

__all__ = ["EXTRACT_ROLES", "FAILURE_COLUMNS", "FLAG_DATASETS", "IDENTITY_ATTRS", "MAX_VIDEOS_PER_READ",
           "PartialFile", "REQUIRED_ATTRS", "ROLES", "SHARD_ATTRS", "StoreWriter", "TEACHER_ROLES",
           "extra_names", "merge_stores", "read_attrs", "read_chunks", "read_extra", "read_flags", "read_ids",
           "read_into", "read_store", "store_shape", "store_writer", "write_store"]
