"""The viewer's key bindings: one table (BINDINGS) from keys to actions, from which both the key
handling (KeyHandler, a glfw key callback) and the help text (help_text) come, so the two cannot
disagree. Keys are named by their glfw constant without ``KEY_`` and looked up when a window
binds them, so this module imports without glfw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gscache.presets import FOVEATION_LEVELS, REUSE_MODES

Action = Callable[[Any], object]
"""What a key press does, given the viewer (app.Viewer)."""


@dataclass(frozen=True)
class Binding:
    """One row of the help and the keys it binds."""

    keys: str
    """The keys as the help names them."""
    does: str
    press: dict[str, Action] = field(default_factory=dict)
    """glfw key name (KEY_ dropped) -> what a press does."""
    hold: dict[str, str] = field(default_factory=dict)
    """glfw key name -> the move (controls.MOVES) that lasts while the key is down."""


BINDINGS: tuple[Binding, ...] = (
    Binding("W A S D / Q E", "fly forward, left, back, right / down, up (orbit: W S zoom)",
            hold={"W": "forward", "A": "left", "S": "back", "D": "right", "Q": "down", "E": "up"}),
    Binding("mouse + button", "look around (fly) or turn the orbit"),  # navigation.py: the mouse
    Binding("wheel", "fly speed, or orbit distance"),
    Binding("Tab", "fly <-> orbit", {"TAB": lambda v: v.toggle_orbit()}),
    Binding("R", "reset the view", {"R": lambda v: v.reset_view()}),
    Binding("[ ]", "IPD -/+ 2 mm", {"LEFT_BRACKET": lambda v: v.set_ipd(v.ipd_m - 0.002),
                                    "RIGHT_BRACKET": lambda v: v.set_ipd(v.ipd_m + 0.002)}),
    Binding("- =", "fly speed down / up", {"MINUS": lambda v: v.set_speed(v.fly.speed_m_s / 1.5),
                                           "EQUAL": lambda v: v.set_speed(v.fly.speed_m_s * 1.5)}),
    Binding(", .", "resolution scale down / up", {"COMMA": lambda v: v.set_scale(v.scale / 1.25),
                                                  "PERIOD": lambda v: v.set_scale(v.scale * 1.25)}),
    Binding("T", "cycle the target frame time", {"T": lambda v: v.cycle_target()}),
    Binding("N P", "next / previous camera of --cameras (snap)", {"N": lambda v: v.snap_to_camera(1),
                                                                  "P": lambda v: v.snap_to_camera(-1)}),
    Binding("V", "side by side -> anaglyph -> mono", {"V": lambda v: v.cycle_view_mode()}),
    Binding("H", "overlay on/off", {"H": lambda v: setattr(v, "show_overlay", not v.show_overlay)}),
    Binding("M", f"cycle the reuse mode ({', '.join(REUSE_MODES)})", {"M": lambda v: v.cycle_reuse()}),
    Binding("B", "cycle the backend", {"B": lambda v: v.cycle_backend()}),
    Binding("G", "next appearance embedding (Octree-GS / Scaffold-GS models that have them)",
            {"G": lambda v: v.cycle_appearance()}),
    Binding("F", f"cycle foveation ({', '.join(FOVEATION_LEVELS)})", {"F": lambda v: v.cycle_foveation()}),
    Binding("Z", "draw the fovea's zones", {"Z": lambda v: setattr(v, "show_zones", not v.show_zones)}),
    Binding("U", "tint the tiles pixel reuse took from the warp (reuse modes reproj-stereo, reproj)",
            {"U": lambda v: setattr(v, "show_reused", not v.show_reused)}),
    Binding("F12", "screenshot (PNG of the stereo pair)", {"F12": lambda v: v.screenshot()}),
    Binding("K", "start / stop recording the camera path (replay: gscache bench --trajectory FILE)",
            {"K": lambda v: v.toggle_recording()}),
    Binding("Esc", "quit", {"ESCAPE": lambda v: v.quit()}),
)


def help_text(bindings: tuple[Binding, ...] = BINDINGS, compact: bool = False) -> str:
    """The keys and what they do: one aligned line per binding, or (``compact``) one paragraph."""
    if compact:
        return "; ".join(f"{b.keys} {b.does}" for b in bindings)
    width = max(len(b.keys) for b in bindings)
    return "\n".join(f"{b.keys:<{width}}  {b.does}" for b in bindings)


class KeyHandler:
    """A glfw key callback for ``target`` (the viewer): held move keys go to ``held`` (the
    navigation's set), a press runs its binding's action; repeats are ignored."""

    def __init__(self, glfw, target, held: set[str], bindings: tuple[Binding, ...] = BINDINGS) -> None:
        self.glfw, self.target, self.held = glfw, target, held
        self.moves = {getattr(glfw, f"KEY_{k}"): move for b in bindings for k, move in b.hold.items()}
        self.actions = {getattr(glfw, f"KEY_{k}"): action for b in bindings for k, action in b.press.items()}

    def on_key(self, window, key, scancode, action, mods) -> None:
        g = self.glfw
        if key in self.moves:
            if action == g.PRESS:
                self.held.add(self.moves[key])
            elif action == g.RELEASE:
                self.held.discard(self.moves[key])
            return
        if action == g.PRESS and key in self.actions:
            self.actions[key](self.target)
