"""The head the keyboard and the mouse move: fly or orbit (controls.py holds the controllers'
math), the held move keys, mouse drags and the wheel, the home view and the scene's own cameras
to snap to. ``pose()`` is the head pose the frame loop renders."""

from __future__ import annotations

from typing import Callable

import torch

from gscache.trajectory import Trajectory, default_head_pose, scene_frame

from .controls import FlyController, OrbitController


class Navigation:
    """Where the head is and how the input moves it; ``say`` shows a note."""

    def __init__(self, scene, up, cameras: Trajectory | None, say: Callable[[str], None]) -> None:
        self.say = say
        self.cameras = cameras
        self.home = default_head_pose(scene, up)
        self.scene_centre, self.scene_radius = scene_frame(scene, up)
        self.fly = FlyController(self.home, up, speed_m_s=0.5 * self.scene_radius)
        self.orbit: OrbitController | None = None
        self.held: set[str] = set()
        """The move actions (controls.MOVES) whose keys are down."""
        self.dragging = False
        self.cursor: tuple[float, float] | None = None
        self.camera_index = -1
        self.stick: tuple[float, float] = (0.0, 0.0)
        """A headset controller's thumbstick (x right, y forward), in [-1, 1]: glides the head."""

    def pose(self) -> torch.Tensor:
        return self.orbit.pose() if self.orbit is not None else self.fly.pose()

    def advance(self, dt_s: float) -> None:
        """Move for ``dt_s`` seconds with the held keys (orbit: W S zoom)."""
        if self.orbit is not None:
            zoom = ("forward" in self.held) - ("back" in self.held)
            if zoom:
                self.orbit.zoom(zoom * dt_s * 5.0)
        else:
            self.fly.move(self.held, dt_s)
            if self.stick != (0.0, 0.0):
                self.fly.glide(self.stick, dt_s)

    def snap_turn(self, degrees: float) -> None:
        """Turn the heading by ``degrees`` (positive: right), as a controller's snap turn (in
        orbit mode the orbit turns around its target instead)."""
        if self.orbit is not None:
            self.orbit.drag(degrees / self.fly.degrees_per_px, 0.0)
            return
        self.fly.look(degrees / self.fly.degrees_per_px, 0.0)

    def set_speed(self, speed: float) -> None:
        self.fly.speed_m_s = speed
        self.say(f"fly speed {speed:.3g} m/s")

    def snap_to_camera(self, step: int) -> None:
        cams = self.cameras
        if cams is None or len(cams) == 0:
            self.say("no --cameras given: nothing to snap to")
            return
        self.camera_index = (self.camera_index + step) % len(cams)
        self.orbit = None
        self.fly.set_pose(cams.T_world_head[self.camera_index])
        self.say(f"camera {self.camera_index + 1}/{len(cams)}")

    def reset_view(self) -> None:
        self.orbit = None
        self.fly.set_pose(self.home)
        self.say("view reset")

    def toggle_orbit(self) -> None:
        if self.orbit is None:
            self.orbit = OrbitController.around(self.fly, self.scene_centre)
            self.say("orbit mode")
        else:
            self.fly.set_pose(self.orbit.pose())
            self.orbit = None
            self.say("fly mode")

    # ---- the mouse (the window's glfw callbacks call these) ----------------------------------
    def press_button(self, pressed: bool) -> None:
        """A mouse button went down (dragging starts) or up."""
        self.dragging = pressed
        self.cursor = None

    def move_cursor(self, x: float, y: float) -> None:
        """The cursor is at (x, y) screen pixels: a drag looks around (fly) or turns the orbit."""
        if self.dragging and self.cursor is not None:
            dx, dy = x - self.cursor[0], y - self.cursor[1]
            if self.orbit is not None:
                self.orbit.drag(dx, dy)
            else:
                self.fly.look(dx, dy)
        self.cursor = (x, y)

    def scroll(self, steps: float) -> None:
        """The wheel: the orbit's distance, or the fly speed."""
        if self.orbit is not None:
            self.orbit.zoom(steps)
        else:
            self.set_speed(self.fly.speed_m_s * 1.25 ** steps)
