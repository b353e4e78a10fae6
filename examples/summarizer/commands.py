"""The posts feature's commands (names as the original service has them)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from workhive.commandlog import Command


class CreatePost(Command, frozen=True):
    command_name = "posts/create"
    post_id: str
    content: Annotated[str, msgspec.Meta(min_length=1)]


class RequestSummaryGeneration(Command, frozen=True):
    command_name = "posts/request-summary-generation"
    request_id: str
    post_id: str


class SetGeneratedSummary(Command, frozen=True):
    command_name = "posts/set-generated-summary"
    request_id: str
    post_id: str
    summary: str


class FailSummaryGeneration(Command, frozen=True):
    command_name = "posts/fail-summary-generation"
    request_id: str
    post_id: str
    reason: str
