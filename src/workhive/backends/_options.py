"""Backend options that may come from a URL's query or from keyword arguments (YAML sections).

One rule for every broker: an unknown option is an error that lists the known ones, a value is
converted to its declared type (a bad one names the option), and an option given both ways must
agree — two settings that disagree are refused, never silently resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from workhive.errors import ConfigError


def flag(value: Any) -> bool:
    """A boolean option: ``true/false``, ``1/0``, ``yes/no``, ``on/off``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


_KINDS: dict[Any, str] = {int: "an integer", float: "a number", str: "a string",
                          flag: "true or false"}


def merge_options(backend: str, query: str, options: Mapping[str, Any],
                  convert: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """The converted options of ``query`` (a URL's query string) and ``options`` together;
    ``None`` values in ``options`` count as unset."""

    def coerce(key: str, value: Any) -> Any:
        kind = convert[key]
        try:
            return kind(value)
        except (TypeError, ValueError):
            what = _KINDS.get(kind, "valid")
            raise ConfigError(f"{backend} option {key!r} must be {what}, got {value!r}") from None

    pairs = dict(parse_qsl(query, keep_blank_values=True))
    given = {k: v for k, v in options.items() if v is not None}
    values: dict[str, Any] = {}
    for key in sorted({*pairs, *given}):
        if key not in convert:
            raise ConfigError(f"unknown {backend} option {key!r}; known: "
                              f"{', '.join(sorted(convert))}")
        value = coerce(key, given[key] if key in given else pairs[key])
        if key in pairs and key in given and coerce(key, pairs[key]) != value:
            raise ConfigError(f"{backend} option {key!r} is {pairs[key]!r} in the url but "
                              f"{given[key]!r} as an argument; give it once")
        values[key] = value
    return values
