"""User-facing errors: the CLI prints their message as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or an unusable environment; str(error) is the one line the user sees."""
