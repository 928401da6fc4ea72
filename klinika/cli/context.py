"""What every command gets from the ``klinika`` group: the settings of this invocation."""

from __future__ import annotations

import click

from klinika.config import Settings


def settings_from(ctx: click.Context) -> Settings:
    """The settings of this invocation (config file, environment, command-line overrides)."""
    settings = ctx.find_root().ensure_object(dict)["settings"]
    assert isinstance(settings, Settings)
    return settings
