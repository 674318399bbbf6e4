"""User-facing errors: the CLI prints their message as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment; str(error) is the one line the user sees."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (a database driver's own error when wrapped)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:limit]
