"""What a user sees when something is wrong: one line (UserError, first_line), with no secret
in it (a URL's password masked wherever it would be printed or logged)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


class UserError(Exception):
    """Bad input or an unusable environment; str(error) is the one line the user sees."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (a database driver's own error when wrapped)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:limit]


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:  # not a URL
        return None


def masked(url: str) -> str:
    """`url` with its password replaced by *** (a database or a tracking server's URL), safe to
    print or log; anything without a password as it is."""
    password = _password(url)
    if not password:
        return url
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}").geturl()


def scrub(text: str, url: str) -> str:
    """`text` (say, a driver's error message) with `url`'s password masked wherever it
    appears, as written in the URL or decoded."""
    password = _password(url)
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text


def without_credentials(url: str) -> str:
    """`url` without user:password and without a trailing slash: a link to show or open."""
    parts = urlsplit(url.rstrip("/"))
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
