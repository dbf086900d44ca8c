"""Subcommands of the ``avvp`` CLI, one module each; see :mod:`avvp.cli`."""
