"""A deadline on the current task for hot paths: ``asyncio.timeout_at`` with one timer handle.

``asyncio.timeout_at`` enters and leaves through two coroutines and a small state machine,
which costs about as much as the rest of the client's work per call. This does the same with
one ``loop.call_at``::

    deadline = TaskDeadline(loop.time() + 5)
    try:
        return await work()
    except asyncio.CancelledError:
        if deadline.expired():
            raise Timeout("...") from None
        raise  # cancelled by someone else: not ours to swallow
    finally:
        deadline.cancel()

Used by the client's calls and the API gateway's body reads.
"""

from __future__ import annotations

import asyncio

__all__ = ["TaskDeadline"]


class TaskDeadline:
    """Cancels the current task at ``when`` (loop clock), remembering that it did.

    Raises:
        RuntimeError: created outside an asyncio task.
    """

    __slots__ = ("_cancelling", "_fired", "_handle", "_task")

    def __init__(self, when: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be set inside an asyncio task")
        self._task = task
        self._cancelling = task.cancelling()
        self._fired = False
        self._handle = (loop or asyncio.get_running_loop()).call_at(when, self._fire)

    def _fire(self) -> None:
        self._fired = True
        self._task.cancel()

    def expired(self) -> bool:
        """After a ``CancelledError``: True when this deadline caused it (and absorbs it)."""
        return self._fired and self._task.uncancel() <= self._cancelling

    def cancel(self) -> None:
        """Disarm (always call it, in ``finally``)."""
        self._handle.cancel()
