"""Help text as a terminal shows it: the docstrings that give commands their help are written
for Sphinx (``literal``, :mod:`role` references), ``--help`` prints them without the markup."""

from __future__ import annotations

import re

import click

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`(?![`\w])")


def plain(text: str | None) -> str | None:
    """``text`` without RST markup: ``klinika backup DEST`` for ````klinika backup DEST````,
    ``Archive`` for ``:class:`~klinika.archive.Archive```."""
    if not text:
        return text

    def last_name(found: re.Match[str]) -> str:
        name = found.group(1).strip()
        return name.rsplit(".", 1)[-1] if "." in name and " " not in name else name

    text = _ROLE.sub(last_name, text)
    text = _LITERAL.sub(r"\1", text)
    return _INTERPRETED.sub(r"\1", text)


def plain_help(command: click.Command) -> None:
    """Strip the markup from the help of ``command``, its options and every sub-command."""
    command.help = plain(command.help)
    command.short_help = plain(command.short_help)
    for param in command.params:
        if isinstance(param, click.Option):
            param.help = plain(param.help)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            plain_help(sub)
