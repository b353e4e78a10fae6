"""Command classes shared by the tests (importable by subprocess workers too)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from workhive.commandlog import Command


class CreatePost(Command, frozen=True):
    command_name = "post/create"
    post_id: str
    title: Annotated[str, msgspec.Meta(min_length=1)]


class DeletePost(Command, frozen=True):
    command_name = "post/delete"
    post_id: str


class Rename(Command, frozen=True):
    """Has a payload field called ``name``: the reason the class attribute is command_name."""

    command_name = "user/rename"
    name: str
    old: str = ""

    def validate(self) -> None:
        if self.name == self.old:
            raise ValueError("name: must differ from old")
