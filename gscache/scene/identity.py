"""Scene identity: every Scene and StructuredScene built (loaded, generated, edited, replaced)
gets a token from a process-wide counter, which caches use as the scene's key. Unlike ``id()``
of a tensor, a token is never reused for another scene, even after the first is freed. Moving a
scene to another device keeps its token: the content is the same."""

from __future__ import annotations

import itertools

_TOKENS = itertools.count(1)


def assign_token(scene) -> None:
    """Give a freshly built scene (frozen dataclass) a new token."""
    object.__setattr__(scene, "token", next(_TOKENS))


def keep_token(moved, original):
    """``moved`` (the same content elsewhere) with ``original``'s token."""
    object.__setattr__(moved, "token", original.token)
    return moved
