"""A posts summarization worker, on workhive's command log.

On ``posts/create`` the worker asks an external HTTP service for a summary and records the
outcome as commands: ``posts/request-summary-generation`` *before* the call (durable intent),
then ``posts/set-generated-summary`` or ``posts/fail-summary-generation``. Its pending requests
live in worker state, rebuilt by replay on start, so a restart neither forgets a post nor calls
the API again for one already summarised. A request that was in flight when the process died is
retried once with the same ``Idempotency-Key``, so the service can recognise it.
"""

from examples.summarizer.commands import (
    CreatePost,
    FailSummaryGeneration,
    RequestSummaryGeneration,
    SetGeneratedSummary,
)
from examples.summarizer.worker import SummaryClient, SummaryState, build_worker

__all__ = [
    "CreatePost",
    "FailSummaryGeneration",
    "RequestSummaryGeneration",
    "SetGeneratedSummary",
    "SummaryClient",
    "SummaryState",
    "build_worker",
]
