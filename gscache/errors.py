"""The one exception type gscache raises for bad input.

Every message names what was wrong (a file, a field, an argument) and what was expected, so
that a user can fix the input without reading the code.
"""

from __future__ import annotations


class GscacheError(ValueError):
    """Bad input to gscache: an unreadable scene file, an invalid camera, a bad option.

    Subclasses ValueError so that callers who already catch ValueError keep working.
    """


class GscacheWarning(UserWarning):
    """Input that gscache could repair, such as Gaussians with NaN values that were dropped."""
