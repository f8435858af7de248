"""The viewer's words: the short notes a key press leaves (Notes.say, shown in the overlay and
the terminal), the status lines of the overlay (status: backend, reuse, view, foveation, camera,
devices, the last note) and the summary a run prints at its end. overlay.py adds the frame
figures and draws the text."""

from __future__ import annotations

import time
from typing import Protocol

from gscache.presets import FOVEATION_LEVELS
from gscache.scene.structured import StructuredScene

from .frame_loop import FrameLoop
from .navigation import Navigation
from .recording import PathRecorder
from .session import WindowSession
from .switches import Switches

NOTE_S = 3.0
"""How long a note stays in the overlay."""


class Notes:
    """The last note (a key's effect, an error) with the time it was said."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str]] = []

    def say(self, text: str) -> None:
        """A short message in the overlay (and the terminal)."""
        print(f"gscache view: {text}")
        self.messages = [(time.perf_counter(), text)]

    def current(self) -> str | None:
        """The last note while it is fresh, else None."""
        if self.messages and time.perf_counter() - self.messages[-1][0] < NOTE_S:
            return self.messages[-1][1]
        return None


class Parts(Protocol):
    """What the status reads: the parts of a viewer (app.Viewer)."""

    scene: object
    switches: Switches
    session: WindowSession
    nav: Navigation
    loop: FrameLoop
    recorder: PathRecorder
    notes: Notes


def foveation_text(sw: Switches) -> str:
    fov = FOVEATION_LEVELS[sw.foveation]
    if not fov.enabled:
        return "off (F cycles the levels)"
    return (f"{sw.foveation}: exact fovea {fov.fovea[0]:.0%} x {fov.fovea[1]:.0%} of the eye, periphery at "
            f"{fov.periphery_scale:.2g}x resolution" + (" (zones drawn)" if sw.show_zones else " (Z: zones)"))


def _reuse_text(sw: Switches, scene) -> str:
    return (sw.reuse + (" (structured: derived Gaussians cached)" if isinstance(scene, StructuredScene) else "")
            + (f", appearance {sw.appearance_index}" if getattr(getattr(scene, "mlps", None), "appearance", None)
               is not None else ""))


def _devices_text(frame) -> str | None:
    """The tile scheduler's devices of a frame spread over several (None for one device)."""
    schedule = getattr(frame, "schedule", None)
    if schedule is None:
        return None
    return (f"{schedule.active}/{len(schedule.devices)} active, balance {schedule.balance:.2f}: "
            + ", ".join(f"{d.name} {d.state.split(':')[0]}" for d in schedule.devices))


def status(v: Parts) -> dict[str, str]:
    """The overlay's status lines (name -> text) of the viewer ``v``."""
    sw, session, nav = v.switches, v.session, v.nav
    w, h = session.eye_size()
    out = {
        "backend": f"{session.renderer.backend.name} on {session.renderer.device} (upload: {session.upload_path})",
        "reuse": _reuse_text(sw, v.scene),
        "view": f"{sw.view_mode}, {w}x{h} per eye, scale {sw.scale:.2f}, target "
                f"{f'{sw.target_ms} ms' if sw.target_ms else 'off'}",
        "foveation": foveation_text(sw),
        "camera": f"{'orbit' if nav.orbit is not None else 'fly'}, IPD {sw.ipd_m * 1000:.0f} mm, "
                  f"speed {nav.fly.speed_m_s:.3g} m/s" + (", recording" if v.recorder.active else ""),
    }
    devices = _devices_text(v.loop.last_frame)
    if devices is not None:
        out["devices"] = devices
    xr = getattr(session, "xr", None)
    if xr is not None:  # the OpenXR output (xr_session): the runtime's pacing against ours
        out["headset"] = (f"{xr.runtime}: period {xr.period_ms:.1f} ms, {xr.frames_submitted} frames submitted, "
                          f"{xr.missed} missed, {xr.lifecycle.state.name.lower()}, {xr.format.name}")
        out["eye tracking"] = _gaze_text(xr)
    note = v.notes.current()
    if note is not None:
        out["note"] = note
    return out


def _gaze_text(xr) -> str:
    """Where the fovea follows the eyes (XR_EXT_eye_gaze_interaction), and this frame's gaze."""
    if not xr.eye_tracking:
        return "none (the fovea stays centred)"
    if xr.gaze is None:
        return "eyes not tracked now (fovea centred)"
    return "gaze " + " / ".join(f"({x:.2f}, {y:.2f})" for x, y in xr.gaze)


def summary(v: Parts) -> str:
    """The line a run prints at its end: frames, median frame time and FPS, and the settings."""
    w, h = v.session.eye_size()
    stats, sw = v.loop.stats, v.switches
    ms = stats.median_ms
    return (f"gscache view: {v.loop.frames_rendered} frames; median of the last {len(stats.frame_ms)}: "
            f"{ms:.1f} ms ({1000.0 / ms if ms > 0 else 0.0:.1f} FPS), render + upload, backend "
            f"{v.session.renderer.backend.name}, reuse {sw.reuse}, {sw.view_mode} {w}x{h} per eye"
            + _headset_summary(getattr(v.session, "xr", None)))


def _headset_summary(xr) -> str:
    """With the OpenXR output: what the runtime got (frames submitted and missed, late warps)."""
    if xr is None:
        return ""
    return (f"; OpenXR {xr.runtime}: {xr.frames_submitted} frames submitted, {xr.missed} missed, "
            f"{xr.late_warps} late-warped, {xr.format.name}" + (", eye tracking" if xr.eye_tracking else ""))
