"""Camera controllers of the viewer: fly (position + gaze) and orbit (around a target). Pure math
on float64 numpy vectors, so the tests drive them without a window.

World conventions as in gscache.camera: OpenCV cameras (x right, y down, z forward); ``up`` is
the world's up direction (-y for OpenCV/COLMAP worlds). Poses are T_world_head [4, 4] float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gscache.camera import look_at

MOVES = {"forward": (0, 0, 1), "back": (0, 0, -1), "right": (1, 0, 0), "left": (-1, 0, 0), "up": (0, 1, 0),
         "down": (0, -1, 0)}
"""Held move actions and their (right, up, forward) unit steps."""


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``v`` turned by ``angle`` radians about the unit ``axis`` (Rodrigues)."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * (axis @ v) * (1 - c)


class FlyController:
    """A head that flies: W/A/S/D move in the gaze plane, Q/E down/up, the mouse turns the gaze."""

    MIN_UP_ANGLE = math.radians(2.0)  # the gaze never reaches straight up or down

    def __init__(self, T_world_head, up=(0.0, -1.0, 0.0), speed_m_s: float = 1.0, degrees_per_px: float = 0.15):
        self.up = _unit(up)
        self.speed_m_s = speed_m_s
        self.degrees_per_px = degrees_per_px
        self.set_pose(T_world_head)

    def set_pose(self, T_world_head) -> None:
        T = np.asarray(T_world_head, dtype=np.float64)
        self.position = T[:3, 3].copy()
        self.forward = _unit(T[:3, 2])
        self._clamp_gaze()

    @property
    def right(self) -> np.ndarray:
        """The camera's x axis (image right): (-up) x forward, as look_at builds it."""
        return _unit(np.cross(-self.up, self.forward))

    def pose(self) -> torch.Tensor:
        return look_at(self.position, self.position + self.forward, self.up)

    def move(self, held: set[str], dt_s: float) -> None:
        """Move for ``dt_s`` seconds with the actions in ``held`` (keys of MOVES)."""
        step = np.zeros(3)
        for action in held:
            r, u, f = MOVES[action]
            step += r * self.right + u * self.up + f * self.forward
        if np.linalg.norm(step) > 0:
            self.position = self.position + _unit(step) * self.speed_m_s * dt_s

    def glide(self, stick: tuple[float, float], dt_s: float) -> None:
        """Move for ``dt_s`` seconds in the plane normal to up: stick x along the right of the
        heading, y along the heading, at ``speed_m_s`` times the stick's deflection."""
        heading = self._heading()
        right = _unit(np.cross(-self.up, heading))
        self.position = self.position + (stick[0] * right + stick[1] * heading) * self.speed_m_s * dt_s

    def look(self, dx_px: float, dy_px: float) -> None:
        """Turn the gaze by a mouse motion: right turns right, down looks down; the elevation
        stays within MIN_UP_ANGLE of straight up or down."""
        yaw = math.radians(dx_px * self.degrees_per_px)
        pitch = math.radians(dy_px * self.degrees_per_px)
        elevation = math.asin(float(np.clip(self.forward @ self.up, -1.0, 1.0)))
        heading = self._heading()
        # About the up axis by -yaw moves the heading towards the camera's +x (right).
        heading = _unit(_rotate(heading, self.up, -yaw))
        limit = math.pi / 2 - self.MIN_UP_ANGLE
        elevation = min(limit, max(-limit, elevation - pitch))
        self.forward = _unit(math.cos(elevation) * heading + math.sin(elevation) * self.up)

    def _heading(self) -> np.ndarray:
        """The gaze projected on the plane normal to up (any horizontal direction if vertical)."""
        horizontal = self.forward - self.up * (self.forward @ self.up)
        if np.linalg.norm(horizontal) < 1e-9:
            horizontal = np.cross(self.up, [1.0, 0.0, 0.0] if abs(self.up[0]) < 0.9 else [0.0, 0.0, 1.0])
        return _unit(horizontal)

    def _clamp_gaze(self) -> None:
        self.look(0.0, 0.0)


class OrbitController:
    """A head on a sphere around ``target``: the mouse drags azimuth and elevation, the wheel
    (or W/S) changes the distance."""

    def __init__(self, target, distance: float, up=(0.0, -1.0, 0.0), azimuth: float = 0.0, elevation: float = 0.3,
                 degrees_per_px: float = 0.3):
        self.target = np.asarray(target, dtype=np.float64)
        self.distance = float(distance)
        self.up = _unit(up)
        self.azimuth, self.elevation = azimuth, elevation
        self.degrees_per_px = degrees_per_px
        helper = np.array([1.0, 0.0, 0.0]) if abs(self.up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
        self._a = _unit(np.cross(self.up, helper))
        self._b = np.cross(self.up, self._a)

    @staticmethod
    def around(fly: FlyController, target) -> "OrbitController":
        """An orbit about ``target`` that starts where ``fly`` is."""
        orbit = OrbitController(target, 1.0, fly.up)
        offset = fly.position - orbit.target
        orbit.distance = max(float(np.linalg.norm(offset)), 1e-3)
        d = offset / orbit.distance
        orbit.elevation = math.asin(float(np.clip(d @ orbit.up, -1.0, 1.0)))
        orbit.azimuth = math.atan2(float(d @ orbit._b), float(d @ orbit._a))
        return orbit

    @property
    def position(self) -> np.ndarray:
        ce = math.cos(self.elevation)
        direction = ce * (math.cos(self.azimuth) * self._a + math.sin(self.azimuth) * self._b)
        return self.target + self.distance * (direction + math.sin(self.elevation) * self.up)

    def pose(self) -> torch.Tensor:
        return look_at(self.position, self.target, self.up)

    def drag(self, dx_px: float, dy_px: float) -> None:
        self.azimuth += math.radians(dx_px * self.degrees_per_px)
        limit = math.radians(89.0)
        self.elevation = min(limit, max(-limit, self.elevation + math.radians(dy_px * self.degrees_per_px)))

    def zoom(self, steps: float) -> None:
        """``steps`` > 0 moves closer (each step 10%)."""
        self.distance = max(1e-3, self.distance * 0.9 ** steps)
