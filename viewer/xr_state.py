"""The OpenXR session lifecycle and frame-call order, as plain state machines (no OpenXR import):
the session driver feeds them the runtime's events and asks them what to call, and the tests
drive them with scripted events.

The lifecycle (the OpenXR specification, "Session Lifecycle"): a created session is IDLE; READY
asks the application to ``xrBeginSession``, after which the session is *running* (SYNCHRONIZED,
VISIBLE, FOCUSED follow as the runtime shows it and gives it input); STOPPING asks for
``xrEndSession`` (back to IDLE, not running); EXITING asks the application to end its XR
experience and LOSS_PENDING says the session is being lost: both mean destroy the session (ended
first if it is still running) and leave the loop. An application that wants to quit while
running calls ``xrRequestExitSession`` and lets the runtime walk it through STOPPING and EXITING.

The frame loop runs only while the session runs, and its three calls always come in order and
in pairs: ``xrWaitFrame`` (which says whether to render), ``xrBeginFrame``, ``xrEndFrame``,
with no layers when the runtime said not to render. Input actions are synchronised only while
FOCUSED.
"""

from __future__ import annotations

from enum import IntEnum

from gscache.errors import GscacheError


class SessionState(IntEnum):
    """``XrSessionState`` (openxr.h values)."""

    UNKNOWN = 0
    IDLE = 1
    READY = 2
    SYNCHRONIZED = 3
    VISIBLE = 4
    FOCUSED = 5
    STOPPING = 6
    LOSS_PENDING = 7
    EXITING = 8


class Lifecycle:
    """Where the session is, and what the application must call next.

    ``changed(state)`` takes a ``XrEventDataSessionStateChanged`` state and returns the calls to
    make, in order, from "begin" (xrBeginSession), "end" (xrEndSession), "destroy"
    (xrDestroySession, then leave the loop); ``quit()`` returns the calls for an application
    that wants to stop ("request_exit" while running, else "destroy")."""

    def __init__(self) -> None:
        self.state = SessionState.IDLE
        self.running = False
        self.done = False
        self.reason: str | None = None
        """Why the loop ended: "exiting", "loss pending" or "quit"."""

    def changed(self, state: int) -> list[str]:
        try:
            state = SessionState(int(state))
        except ValueError:
            raise GscacheError(f"OpenXR session state: unknown value {state!r}") from None
        if self.done:
            return []
        self.state = state
        if state == SessionState.READY and not self.running:
            self.running = True
            return ["begin"]
        if state == SessionState.STOPPING and self.running:
            self.running = False
            return ["end"]
        if state in (SessionState.EXITING, SessionState.LOSS_PENDING):
            calls = ["end"] if self.running else []
            self.running, self.done = False, True
            self.reason = "exiting" if state == SessionState.EXITING else "loss pending"
            return calls + ["destroy"]
        return []

    def quit(self) -> list[str]:
        if self.done:
            return []
        if self.running:
            return ["request_exit"]  # the runtime then sends STOPPING and EXITING
        self.done, self.reason = True, "quit"
        return ["destroy"]

    @property
    def frame_loop(self) -> bool:
        """The frame loop runs (wait, begin, end every frame)."""
        return self.running

    @property
    def input_active(self) -> bool:
        """Actions are synchronised (the session has input focus)."""
        return self.running and self.state == SessionState.FOCUSED


class FrameOrder:
    """Guards the pairing of xrWaitFrame, xrBeginFrame and xrEndFrame: ``wait(should_render)``,
    ``begin()``, ``end(n_layers)`` raise GscacheError on a call out of order, or on layers
    submitted for a frame the runtime said not to render."""

    def __init__(self) -> None:
        self.phase = "idle"  # idle -> waited -> begun -> idle
        self.should_render = False
        self.frames = 0

    def wait(self, should_render: bool) -> None:
        if self.phase != "idle":
            raise GscacheError(f"OpenXR frame order: xrWaitFrame while a frame is {self.phase}")
        self.phase, self.should_render = "waited", bool(should_render)

    def begin(self) -> None:
        if self.phase != "waited":
            raise GscacheError(f"OpenXR frame order: xrBeginFrame without xrWaitFrame (frame {self.phase})")
        self.phase = "begun"

    def end(self, n_layers: int) -> None:
        if self.phase != "begun":
            raise GscacheError(f"OpenXR frame order: xrEndFrame without xrBeginFrame (frame {self.phase})")
        if n_layers and not self.should_render:
            raise GscacheError("OpenXR frame order: layers submitted for a frame the runtime said not to render")
        self.phase = "idle"
        self.frames += 1
