"""One decode of a clip for several extractors (the audio, frame and clip roles together).

:class:`ClipDecoder` asks every extractor what it needs (:meth:`Extractor.request`), decodes the
clip's window once with :func:`avvp.stages.decoding.decode_streams` (one open, one demux pass: the audio
for VGGish and the 8T frames the frame and clip roles share), and turns the streams into each
role's model units. Each role succeeds or fails on its own: a clip whose audio is unusable still
gives its frame and clip units, with the audio's reason beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import torch

from avvp.stages.decoding.media import DECODER_ERRORS, describe_error
from avvp.infra.errors import InputError
from avvp.stages.extractors.base import Extractor

#: Errors of one role's units that become that role's failure reason.
UNIT_ERRORS = (InputError,) + DECODER_ERRORS


class RoleUnits(NamedTuple):
    """One role's model units of one clip, or None and why not.

    ``padded_s``: seconds of the window the audio stream did not cover (filled with silence; audio
    roles only). A NamedTuple so that DataLoader workers can pin ``units`` for a GPU.
    """

    units: torch.Tensor | None
    reason: str | None = None
    padded_s: float = 0.0


class ClipDecoder:
    """Decodes each clip once for the extractors of several roles.

    Args:
        extractors: role → extractor.
    """

    def __init__(self, extractors: Mapping[str, Extractor]):
        self.extractors = dict(extractors)

    def __call__(self, path: str | Path, start: float, duration: float,
                 roles: Sequence[str] | None = None) -> dict[str, RoleUnits]:
        """Each role's units of ``[start, start + duration)`` of ``path`` (all roles by default)."""
        from avvp.stages.decoding import decode_streams

        roles = list(self.extractors) if roles is None else list(roles)
        out: dict[str, RoleUnits] = {}
        wanted = []
        for role in roles:
            if self.extractors[role].units(duration) <= 0:
                out[role] = RoleUnits(None, f"window of {duration:g} s holds no whole second")
            else:
                wanted.append(role)
        for request, group in self._passes(wanted, duration):
            try:
                streams = decode_streams(path, start, start + duration, **request)
            except UNIT_ERRORS as exc:
                out.update({role: RoleUnits(None, describe_error(exc)) for role in group})
                continue
            for role in group:
                ext = self.extractors[role]
                try:
                    units = ext.checked_units(streams, path, duration)
                except UNIT_ERRORS as exc:
                    out[role] = RoleUnits(None, describe_error(exc))
                    continue
                padded = streams.audio.padded_s if ext.stream == "audio" else 0.0
                out[role] = RoleUnits(units, None, float(padded))
        return {role: out[role] for role in roles}

    def _passes(self, roles: list[str], duration: float) -> list[tuple[dict, list[str]]]:
        """Decoding passes: the requests merged where they agree (one pass for the official
        three roles), a separate pass for a role whose request conflicts."""
        passes: list[tuple[dict, list[str]]] = []
        for role in roles:
            request = self.extractors[role].request(duration)
            for merged, group in passes:
                if _compatible(merged, request):
                    _merge(merged, request)
                    group.append(role)
                    break
            else:
                passes.append((dict(request), [role]))
        return passes


_SHARED = {"audio": ("sample_rate", "missing", "audio_tolerance"), "video": ("fps", "n_frames", "size")}


def _compatible(merged: dict, request: dict) -> bool:
    for stream, keys in _SHARED.items():
        if merged.get(stream) and request.get(stream):
            if any(merged.get(k) != request.get(k) for k in keys):
                return False
    return True


def _merge(merged: dict, request: dict) -> None:
    for stream, keys in _SHARED.items():
        if request.get(stream):
            merged[stream] = True
            merged.update({k: request[k] for k in keys if k in request})
