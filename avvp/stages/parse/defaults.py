"""The ``avvp parse`` settings: :func:`parse_command_settings` completes the config section
``parse`` with the defaults of the settings definition (:mod:`avvp.settings`) and checks it."""

from __future__ import annotations

from typing import Mapping

from avvp.infra.errors import ConfigError
from avvp.settings import complete_section

#: Keys of the ``parse`` section that only the workflow reads (the command takes them as its
#: arguments: the videos, ``--model``, ``--out``); refused in ``--settings``.
WORKFLOW_KEYS = ("videos", "model", "out")


def parse_command_settings(given: Mapping | None = None) -> dict:
    """The ``parse`` settings of the command: ``given`` completed and checked, without
    :data:`WORKFLOW_KEYS`."""
    given = dict(given or {})
    named = [key for key in WORKFLOW_KEYS if key in given]
    if named:
        raise ConfigError(f"parse.{named[0]} is a setting of the workflow; give the command its "
                          f"argument instead (avvp parse --help)")
    s = complete_section("parse", given)
    for key in WORKFLOW_KEYS:
        s.pop(key, None)
    return s
