"""The two families of exceptions gscache raises.

* :class:`GscacheError`: bad input (an unreadable scene file, an invalid camera, a bad option).
  Every message names what was wrong (a file, a field, an argument) and what was expected, so
  that a user can fix the input without reading the code.
* :class:`GscacheRuntimeError`: the input was fine but the machine failed: a device lost, a
  worker process died or stopped answering, a kernel broke a rule of the GPU, a backend that
  cannot run here.
"""

from __future__ import annotations


class GscacheError(ValueError):
    """Bad input to gscache: an unreadable scene file, an invalid camera, a bad option.

    Subclasses ValueError so that callers who already catch ValueError keep working.
    """


class GscacheRuntimeError(RuntimeError):
    """A runtime failure: a device, worker, kernel or backend failed on valid input."""


class GscacheWarning(UserWarning):
    """Input that gscache could repair, such as Gaussians with NaN values that were dropped."""
