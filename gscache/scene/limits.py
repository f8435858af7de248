"""Memory budgets of the readers: what a file declares (a count, an image size, an array shape)
is checked before anything of that size is allocated, so a small file that claims (or inflates
to) a huge scene is refused with a message instead of exhausting memory.

``MAX_DECODED_BYTES`` (4 GiB unless ``$GSCACHE_MAX_DECODED_BYTES`` says otherwise) bounds what one
array or image of a scene file may decode to."""

from __future__ import annotations

import os

from ..errors import GscacheError

MAX_DECODED_BYTES = int(os.environ.get("GSCACHE_MAX_DECODED_BYTES", 4 << 30))


def check_decoded_size(nbytes: int, where: str, what: str) -> None:
    """Refuse ``what`` of ``nbytes`` decoded bytes when over the budget."""
    if nbytes > MAX_DECODED_BYTES:
        raise GscacheError(f"{where}: {what} would decode to {nbytes / 2**30:.1f} GiB, over the readers' budget of "
                           f"{MAX_DECODED_BYTES / 2**30:.1f} GiB (GSCACHE_MAX_DECODED_BYTES)")
