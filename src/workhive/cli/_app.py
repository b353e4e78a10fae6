"""Find the hive a command works on: ``--app module:attr``, ``--backend URL``, ``--config``.

Backend resolution, most specific first: ``--backend URL`` > the ``--app`` hive's own backend >
``workhive.yaml`` / environment (:func:`workhive.config.load_config`). The ``--app`` attribute
may be a :class:`~workhive.Hive` or a factory returning one; a factory that takes a parameter
receives the loaded config when there is one to give (``--config``, ``$WORKHIVE_CONFIG`` or a
``./workhive.yaml``), so an app can still fall back to its own defaults otherwise. A config
named on purpose (``--config`` or ``$WORKHIVE_CONFIG``) that the app cannot take (a ready Hive,
a factory without a parameter) is refused: ignoring it silently would run with other settings.

:func:`hive_command` and :func:`run_and_close` are the rest of what every command but ``worker``
does with its hive: take the options, build it, run one async body, close it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from workhive.backend import Capability, require
from workhive.cli._common import CliError, hive_options, run, set_verbose
from workhive.config import HiveConfig, config_path, load_config
from workhive.hive import Hive

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HiveSpec:
    """What the user said about where the hive is (and whether ``-v`` was given);
    :meth:`build` turns it into a Hive."""

    app: str | None = None
    backend: str | None = None
    config: str | None = None
    verbose: bool = False

    def build(self, *, must_exist: bool = False) -> Hive:
        """The hive; ``must_exist`` for a command that works on stored state, so that a
        mistyped sqlite path is an error instead of a new empty database."""
        if self.app is None:
            hive = Hive(self.backend, config=load_config(self.config))
        else:
            named = self.config or os.environ.get("WORKHIVE_CONFIG")
            hive = resolve_app(load_object(self.app), self.app, self._explicit_config(),
                               named=named)
            if self.backend is not None:
                use_backend(hive, self.backend)
        if must_exist:
            _sqlite_must_exist(hive)
        return hive

    def require_app(self, command: str) -> None:
        if self.app is None:
            raise CliError(f"{command} needs --app package.module:hive (the code that declares "
                           "the handlers), or $WORKHIVE_APP")

    def _explicit_config(self) -> HiveConfig | None:
        if config_path(self.config) is not None:
            return load_config(self.config)
        return None


def load_object(spec: str) -> Any:
    """Import ``package.module:attr`` (attr may be dotted); the cwd is importable, as in uvicorn."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--app {spec!r}: expected 'package.module:attribute', "
                       "e.g. myapp.tasks:hive")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    logger.info("Loading app %s", spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CliError(f"--app {spec!r}: no module named {exc.name!r} "
                           f"(looked in {cwd} and sys.path)") from exc
        raise CliError(f"--app {spec!r}: importing {module_name} failed: {exc}") from exc
    except (SyntaxError, ImportError) as exc:
        raise CliError(f"--app {spec!r}: importing {module_name} failed: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"--app {spec!r}: module {module_name!r} has no attribute "
                           f"{attr!r}") from None
    return obj


def resolve_app(
    obj: Any, spec: str, config: HiveConfig | None, *, named: str | None = None
) -> Hive:
    """A Hive as is; a factory called with the config if it takes one (and we have one).

    ``named`` is the config file the user asked for by name; when the app cannot take it,
    that is an error rather than a file silently ignored.
    """
    if isinstance(obj, Hive):
        if named:
            raise CliError(_cannot_apply(named, spec, "is a ready Hive built with its own "
                                         "settings"))
        return obj
    if not callable(obj):
        raise CliError(f"--app {spec!r} is a {type(obj).__name__}, not a Hive or a factory "
                       "returning one")
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional and (config is not None or positional[0].default is inspect.Parameter.empty):
        result = obj(config if config is not None else load_config(None))
    elif named:
        raise CliError(_cannot_apply(named, spec, "is a factory that takes no config"))
    else:
        result = obj()
    if not isinstance(result, Hive):
        raise CliError(f"--app {spec!r}: the factory returned a {type(result).__name__}, "
                       "not a Hive")
    return result


def _cannot_apply(named: str, spec: str, why: str) -> str:
    return (f"config {named!r} cannot be applied: --app {spec!r} {why}; point --app at a "
            "factory `def make_hive(config: HiveConfig) -> Hive`, or drop --config / "
            "$WORKHIVE_CONFIG")


def use_backend(hive: Hive, url: str) -> None:
    """Point an already-built hive at ``url`` (``--backend`` wins over the app's own choice).

    The hive was built against another backend, so the capability checks ``include`` made are
    repeated here for the new one.
    """
    hive.backend = hive.connect(url)
    if hive.subscribers:
        require(hive.backend, Capability.EVENTS, "the app's subscribers")
    if hive.crons:
        require(hive.backend, Capability.CRON, "the app's cron jobs")


def _sqlite_must_exist(hive: Hive) -> None:
    """Read-only commands must not create an empty database by looking at a mistyped path."""
    path = getattr(hive.backend, "path", None)
    if hive.backend.name == "sqlite" and isinstance(path, str) and not Path(path).exists():
        raise CliError(f"no sqlite database at {path!r} (pass --backend sqlite:///path.db, or "
                       "enqueue something / start a worker first)")


def hive_command(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command the :func:`~workhive.cli._common.hive_options` as one :class:`HiveSpec`,
    its first argument, with ``-v`` already applied to logging.

    Why: every command that works on a hive takes the same options and starts the same way;
    here they are declared and turned into a spec once. (``worker`` takes them raw: it forwards
    them to its child processes.)
    """

    @functools.wraps(fn)
    def command(app: str | None, backend: str | None, config: str | None, verbose: bool,
                **params: Any) -> None:
        verbose = set_verbose(click.get_current_context(), verbose)
        fn(HiveSpec(app, backend, config, verbose), **params)

    return hive_options(command)


def run_and_close(hive: Hive, work: Awaitable[T]) -> T:
    """Run a command's async body on ``hive`` in the command's own event loop, then close the
    hive whether the body succeeded or not (no connection outlives the command)."""

    async def closing() -> T:
        try:
            return await work
        finally:
            await hive.close()

    return run(closing())
