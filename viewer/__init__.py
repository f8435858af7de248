"""The desktop stereo viewer (`gscache view`): see viewer/app.py for the window and the keys."""

from .app import VIEW_MODES, Viewer, ViewerError, ViewerOptions, compose

__all__ = ["Viewer", "ViewerOptions", "ViewerError", "VIEW_MODES", "compose"]
