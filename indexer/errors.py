"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class SeedsearchError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class IndexMissingError(SeedsearchError):
    """No index at the given place."""


class IndexCorruptError(SeedsearchError):
    """Index files are damaged, missing or from an incompatible version."""


class SettingsMismatchError(SeedsearchError):
    """The index was built with other settings (model, vectors ...) than requested."""


class EmbedderMismatchError(SettingsMismatchError):
    """The index was built with a different embedder than the one requested."""


class LockedError(SeedsearchError):
    """Another process is updating the index."""


class QueryError(SeedsearchError):
    """The query or its options are invalid."""


class NotFoundError(QueryError):
    """No article or passage with the given id."""
