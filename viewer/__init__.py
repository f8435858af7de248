"""The desktop stereo viewer (`gscache view`), one module per part:

    app.py         Viewer: one window on one scene, the parts put together (the public entry)
    options.py     ViewerOptions (how it starts, checked) and ViewerError
    session.py     the window session: glfw window, OpenGL context and objects, the renderer it
                   owns; creation, events, presenting a frame (compose, overlay, swap), close
    frame_loop.py  the frame loop: one step (events -> pose -> render -> account -> present) and
                   run(), written against a Presenter so that other outputs can share it
    keys.py        the key bindings: one table, the key handling and the help text from it
    navigation.py  the head: fly or orbit, held keys, mouse and wheel, home, the scene's cameras
    switches.py    the run-time settings (reuse, foveation, backend, view, IPD, scale, target) and
                   the toggles that reach the renderer
    status.py      the notes keys leave, the overlay's status lines, a run's summary
    recording.py   screenshots, the window capture and the recorded camera path
    images.py      compose (side by side, anaglyph, mono) and the fovea's zones
    controls.py    the fly and orbit controllers' math
    gl.py          the OpenGL objects (textured rectangle, streamed textures, CUDA interop)
    overlay.py     the frame statistics and the overlay's text image
    xr_views.py    OpenXR views (FOV, poses) as gscache intrinsics, eye poses and a StereoRig; the
                   levelled origin
    xr_formats.py  OpenXR swapchain formats, where gamma is applied, the row flip
    xr_state.py    the OpenXR session lifecycle and frame-call order (state machines)
    xr_runtime.py  finding the OpenXR runtime (pyopenxr's loader), one-line errors
    xr_session.py  the OpenXR output: session, swapchains, the frame calls, the mirror window
    xr_input.py    the controllers: actions, suggested bindings, what they do
    xr_late.py     late reprojection's image math (turning an eye to a fresher pose)
"""

from .app import Viewer
from .images import compose
from .options import VIEW_MODES, ViewerError, ViewerOptions

__all__ = ["Viewer", "ViewerOptions", "ViewerError", "VIEW_MODES", "compose"]
