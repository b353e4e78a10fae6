"""workhive: background work for Python — tasks, events, cron and command-log workers.

The public API is what ``__all__`` lists; everything in ``_private`` modules may change.
"""

# first, before the slow imports below: a `workhive worker` process must not die of a SIGTERM
# that arrives while it starts (importing it installs a recorder there; a no-op elsewhere)
from workhive import _startup_signals  # noqa: F401

# isort: split

from workhive._context import TaskContext
from workhive._envelope import AttemptRecord, Envelope
from workhive._task import RateLimit
from workhive.backend import (
    Backend,
    Capability,
    DeadLetter,
    Delivery,
    EnqueueResult,
    QueueStats,
    Settlement,
)
from workhive.config import HiveConfig, load_config
from workhive.errors import (
    BackendError,
    BackendUnavailable,
    Cancelled,
    CapabilityError,
    ConfigError,
    RegistryError,
    Reject,
    ResultTimeout,
    Retry,
    SerializationError,
    Skip,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskTimeout,
    UnknownTaskError,
    ValidationError,
    WorkhiveError,
)
from workhive.handles import TaskHandle
from workhive.hive import Hive
from workhive.module import Module
from workhive.results import ResultHandle, TaskStatus
from workhive.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AttemptRecord",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Cancelled",
    "Capability",
    "CapabilityError",
    "ConfigError",
    "DeadLetter",
    "Delivery",
    "EnqueueResult",
    "Envelope",
    "Hive",
    "HiveConfig",
    "Module",
    "QueueStats",
    "RateLimit",
    "RegistryError",
    "Reject",
    "ResultHandle",
    "ResultTimeout",
    "Retry",
    "SerializationError",
    "Settlement",
    "Skip",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskStatus",
    "TaskTimeout",
    "UnknownTaskError",
    "ValidationError",
    "Worker",
    "WorkhiveError",
    "__version__",
    "load_config",
]
