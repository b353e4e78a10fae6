"""Email templates: ``templates/<name>.txt`` is a ``Subject:`` line, a blank line, the body.

``string.Template`` (``${name}``) rather than a template engine: no new dependency, no code in
templates, and :meth:`string.Template.substitute` fails loudly on a missing variable. A bad
template name or a missing variable is a :class:`TemplateError`, which the notification worker
dead-letters at once: retrying cannot fix the payload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

TEMPLATE_DIR = Path(__file__).with_name("templates")
_NAME = re.compile(r"[a-z0-9_]+")


class TemplateError(ValueError):
    """The template does not exist, is malformed, or needs a variable nobody gave it."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    name: str
    subject: Template
    body: Template

    def render(self, variables: Mapping[str, str]) -> Rendered:
        try:
            subject = self.subject.substitute(variables).strip()
            body = self.body.substitute(variables)
        except KeyError as exc:
            raise TemplateError(f"template {self.name!r} needs variable {exc.args[0]!r}") from exc
        except ValueError as exc:  # a stray "$" in the template itself
            raise TemplateError(f"template {self.name!r} is malformed: {exc}") from exc
        if "\n" in subject or "\r" in subject:  # header injection through a variable
            raise TemplateError(f"template {self.name!r}: subject must be one line")
        return Rendered(subject, body)


def available() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.txt"))


@lru_cache(maxsize=64)
def load(name: str) -> EmailTemplate:
    """Parse ``templates/<name>.txt`` once; names are plain words, so no path tricks."""
    path = TEMPLATE_DIR / f"{name}.txt"
    if not _NAME.fullmatch(name) or not path.is_file():
        raise TemplateError(f"unknown email template {name!r} (available: {available()})")
    head, sep, body = path.read_text(encoding="utf-8").partition("\n\n")
    if not sep or not head.startswith("Subject:"):
        raise TemplateError(f"template {name!r} must start with 'Subject: ...' and a blank line")
    return EmailTemplate(name, Template(head.removeprefix("Subject:").strip()), Template(body))


def render(name: str, variables: Mapping[str, str]) -> Rendered:
    return load(name).render(variables)
