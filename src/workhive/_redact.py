"""One place that keeps passwords out of logs, errors and ``repr``s.

Why one helper: each backend used to strip its own URL form, and the command log did not strip
at all. Every URL that is formatted into a message goes through :func:`redact_url`; driver
messages that may echo a password the code knows go through :func:`redact` with that password.

What is hidden (shown as ``***``):

* the password of a ``user:password@`` netloc (``redis://:pw@h``, ``amqp://u:pw@h/vh``), up to
  the last ``@`` of the netloc as :func:`urllib.parse.urlsplit` reads it;
* the value of any query / DSN parameter whose name contains ``password``, ``passwd``, ``pwd``,
  ``secret`` or ``token`` (``?password=pw``, ``&sasl_password=pw``, libpq
  ``host=h password=pw``);
* any literal secret passed to :func:`redact`, raw or percent-encoded.

Neither function raises, whatever the input (a URL with an out-of-range port included), so it
is safe inside ``except`` blocks and ``__repr__``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MASK = "***"

# scheme://user:password@ — the password runs to the last "@" before the netloc ends
_NETLOC = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:@/?#\s]*):(?P<secret>[^/?#\s]*)@"
)
# name=value where the name says "secret"; after ?, &, ; or whitespace (libpq key=value DSNs)
_PARAM = re.compile(
    r"(?P<head>(?:^|[?&;\s])[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token)"
    r"[A-Za-z0-9_.\-]*\s*=\s*)(?P<secret>'[^']*'|[^&#;\s]*)",
    re.IGNORECASE,
)


def redact_url(url: str, *, password: str | None = None) -> str:
    """``url`` with every password shown as ``***``.

    ``password``: a password held apart from the URL (settings keep it out of the URL they
    store); when given and the URL carries none, ``user:***@`` is inserted so a reader can see
    that one is set. Also works on free text that contains URLs.
    """
    text = _NETLOC.sub(lambda m: f"{m['head']}:{MASK}@" if m["secret"] else m[0], url)
    text = _PARAM.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] else m[0], text)
    if password:
        text = redact(text, password)
        if f":{MASK}@" not in text and "://" in text:
            scheme, _, rest = text.partition("://")
            if not scheme.lower().startswith("unix"):
                end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
                user, at, host = rest[:end].rpartition("@")
                rest = f"{user}:{MASK}@{host}{rest[end:]}" if at else f":{MASK}@{rest}"
                text = f"{scheme}://{rest}"
    return text


def redact(text: str, *secrets: str | None) -> str:
    """``text`` (a driver's error message, say) with URLs redacted and each secret masked."""
    text = redact_url(text) if "://" in text or "=" in text else text
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return text


def netloc_password(url: str) -> str | None:
    """The ``user:password@`` password exactly as written in ``url``, even if ``url`` does not
    parse (a bad port): messages about such a URL must still not show it."""
    userinfo = url.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    return userinfo.partition(":")[2] or None
