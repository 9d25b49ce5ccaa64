"""The one place the control plane talks to Ray: typed actor handles, calls with their reply handlers.

A call is sent with the function that handles its reply; :meth:`Calls.wait` hands each finished call's
:class:`Reply` to it. No string tags, no untyped handles: each protocol below lists what the supervisor
calls on one actor class (Ray's own types cannot: mypy does not apply class decorators, and Ray's typed
``@ray.method`` drops parameters with defaults).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from ray import ObjectRef

    from actors.applier import Applied
    from actors.audit_chain import Appended
    from actors.capture import Captured

_R = TypeVar("_R")
_H = TypeVar("_H")


class RemoteMethod(Protocol[_R]):
    """An actor method seen through the actor's handle: ``.remote(...)`` sends a call."""

    def remote(self, *args: Any) -> ObjectRef[_R]: ...


class RemoteClass(Protocol[_H]):
    """A class under ``@ray.remote``: ``.options(...).remote(...)`` starts an actor and returns its handle."""

    def options(self, **options: Any) -> RemoteClass[_H]: ...

    def remote(self, *args: Any) -> _H: ...


class CaptureHandle(Protocol):
    """A handle of actors.capture.CaptureActor."""

    poll: RemoteMethod[Captured | None]
    commit: RemoteMethod[None]
    close: RemoteMethod[None]


class ApplierHandle(Protocol):
    """A handle of actors.applier.ApplierShard."""

    prepare: RemoteMethod[None]
    apply: RemoteMethod[Applied]
    reapply: RemoteMethod[list[str | None]]


class AuditHandle(Protocol):
    """A handle of actors.audit_chain.AuditChain."""

    append: RemoteMethod[Appended]
    record_admin: RemoteMethod[Appended]
    record_conflicts: RemoteMethod[Appended]
    tick: RemoteMethod[bool]
    close: RemoteMethod[None]


class RayUnreachable(ConnectionError):
    """The supervisor lost Ray itself: nothing can run until it is back (exit 3, and the chart restarts it)."""


@dataclass(frozen=True)
class Reply(Generic[_R]):
    """How one call ended: its value, or why it failed."""

    value: _R | None = None
    #: What the actor method raised (Ray's wrapper taken off), or what Ray raised instead.
    error: BaseException | None = None
    #: The actor's process died (or is unreachable) during the call.
    actor_died: bool = False
    #: ...and it cannot come back where it was placed (its node is gone): create a new one at once.
    actor_stranded: bool = False
    #: An object the call took as an argument is gone: its owner (a capture actor) died with it.
    object_lost: bool = False

    def result(self) -> _R:
        """The value; only after checking ``error`` is None."""
        assert self.error is None
        return self.value  # type: ignore[return-value]

    def summary(self) -> str:
        """The error's first line, short enough for a log line or /status."""
        text = str(self.error).splitlines()[0][:500] if self.error is not None and str(self.error) else ""
        return text or type(self.error).__name__


def _reply(ref: ObjectRef[Any]) -> Reply[Any]:
    import ray
    from ray.exceptions import ActorUnschedulableError, ObjectLostError, RayActorError, RayTaskError

    try:
        return Reply(value=ray.get(ref))
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None) or exc
        return Reply(error=cause, object_lost=isinstance(exc, ObjectLostError) or isinstance(cause, ObjectLostError))
    except RayActorError as exc:
        return Reply(error=exc, actor_died=True)
    except ActorUnschedulableError as exc:  # restarted by Ray, but pinned to a node that is gone
        return Reply(error=exc, actor_died=True, actor_stranded=True)
    except ObjectLostError as exc:
        return Reply(error=exc, object_lost=True)
    except Exception as exc:  # anything else Ray raises for this one call
        return Reply(error=exc)


class Calls:
    """Calls under way, each with the handler of its reply."""

    def __init__(self, on_ray_lost: Callable[[str], None]) -> None:
        self._waiting: dict[ObjectRef[Any], tuple[Callable[[Reply[Any]], None], bool]] = {}
        self._on_ray_lost = on_ray_lost

    def send(self, ref: ObjectRef[_R], on_reply: Callable[[Reply[_R]], None], *, background: bool = False) -> None:
        """Hand ``ref``'s reply to ``on_reply`` when it comes. ``background`` calls (polls) are not waited
        for when the supervisor drains."""
        self._waiting[ref] = (on_reply, background)

    @property
    def busy(self) -> bool:
        """Calls other than background ones are under way."""
        return any(not background for _, background in self._waiting.values())

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for calls to finish and hand each its reply (sleep when none is under way)."""
        import ray

        if not self._waiting:
            time.sleep(timeout_s)
            return
        try:
            ready, _ = ray.wait(list(self._waiting), num_returns=1, timeout=timeout_s)
            if ready:
                ready, _ = ray.wait(list(self._waiting), num_returns=len(self._waiting), timeout=0)
        except Exception as exc:  # Ray itself is gone (the local node died, the cluster is unreachable)
            reason = f"cannot reach Ray: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            self._on_ray_lost(reason)
            raise RayUnreachable(reason) from exc
        for ref in ready:
            on_reply, _ = self._waiting.pop(ref)
            on_reply(_reply(ref))


def start_actor(cls: object, *args: Any, **options: Any) -> Any:
    """Start an actor of the ``@ray.remote`` class ``cls``; the caller casts the handle to its protocol."""
    remote: RemoteClass[Any] = cls  # type: ignore[assignment]
    return remote.options(**options).remote(*args)


def kill(actor: CaptureHandle | ApplierHandle | AuditHandle) -> None:
    """Kill an actor for good (no restart by Ray)."""
    import ray
    from ray.actor import ActorHandle

    assert isinstance(actor, ActorHandle)  # every handle here comes from start_actor
    ray.kill(actor, no_restart=True)


def get(ref: ObjectRef[_R], timeout_s: float) -> _R:
    """Wait for one call (at shutdown only: the loop never blocks on a single call)."""
    import ray

    return ray.get(ref, timeout=timeout_s)
