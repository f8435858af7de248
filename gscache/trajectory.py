"""Head-pose paths: orbit, seeded VR head motion, fly-through, and Inria ``cameras.json``.

A :class:`Trajectory` is a sequence of head poses ``T_world_head`` (OpenCV axes, see
``gscache.camera``) with timestamps; a StereoRig placed at each pose gives the stereo frames.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .camera import Camera, Intrinsics, StereoRig, look_at, rigid_inverse
from .errors import GscacheError


@dataclass(frozen=True, slots=True)
class Trajectory:
    """Head poses over time."""

    T_world_head: Tensor
    """Head-to-world poses, [F, 4, 4] float64."""
    times_s: Tensor
    """Timestamp of each pose, seconds, [F] float64, non-decreasing."""
    name: str = ""
    """What generated it (for reports)."""
    intrinsics: tuple[Intrinsics, ...] | None = None
    """Per-frame intrinsics when the source has them (cameras.json), else None."""

    def __post_init__(self) -> None:
        if self.T_world_head.dim() != 3 or self.T_world_head.shape[1:] != (4, 4):
            raise GscacheError(f"Trajectory.T_world_head: expected [F, 4, 4], got {tuple(self.T_world_head.shape)}")
        if self.times_s.shape != (self.T_world_head.shape[0],):
            raise GscacheError("Trajectory.times_s: expected one timestamp per pose")

    def __len__(self) -> int:
        return self.T_world_head.shape[0]

    def rigs(self, template: StereoRig):
        """Yield ``template`` moved to each pose."""
        for T in self.T_world_head:
            yield template.with_pose(T)

    def cameras(self, intrinsics: Intrinsics | None = None, near_m: float = 0.01, far_m: float = 1e4) -> list[Camera]:
        """Mono cameras at the head poses (own intrinsics where known, else ``intrinsics``)."""
        out = []
        for i, T in enumerate(self.T_world_head):
            intr = self.intrinsics[i] if self.intrinsics is not None else intrinsics
            if intr is None:
                raise GscacheError("Trajectory.cameras: this trajectory has no intrinsics; pass some")
            out.append(Camera(intr, rigid_inverse(T), near_m, far_m))
        return out


def _check_frames(n_frames: int) -> None:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise GscacheError(f"n_frames: expected an integer >= 1, got {n_frames!r}")


def _times(n_frames: int, fps: float) -> Tensor:
    if not fps > 0:
        raise GscacheError(f"fps: expected > 0, got {fps!r}")
    return torch.arange(n_frames, dtype=torch.float64) / fps


def _up_basis(up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit up vector and two unit vectors spanning the plane perpendicular to it."""
    u = np.asarray(up, dtype=np.float64)
    u = u / np.linalg.norm(u)
    helper = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    a = np.cross(u, helper)
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    return u, a, b


def still(T_world_head, n_frames: int, fps: float = 72.0) -> Trajectory:
    """A head that does not move: ``n_frames`` copies of one pose."""
    _check_frames(n_frames)
    T = torch.as_tensor(T_world_head, dtype=torch.float64)
    return Trajectory(T[None].repeat(n_frames, 1, 1), _times(n_frames, fps), "still")


def orbit(center, radius: float, n_frames: int, height: float = 0.0, up=(0.0, -1.0, 0.0),
          revolutions: float = 1.0, fps: float = 72.0) -> Trajectory:
    """Head circling ``center`` at ``radius``, ``height`` above it along ``up``, always looking at it."""
    _check_frames(n_frames)
    if not radius > 0:
        raise GscacheError(f"radius: expected > 0, got {radius!r}")
    c = np.asarray(center, dtype=np.float64)
    u, a, b = _up_basis(up)
    poses = []
    for i in range(n_frames):
        phi = 2 * math.pi * revolutions * i / n_frames
        eye = c + radius * (math.cos(phi) * a + math.sin(phi) * b) + height * u
        poses.append(look_at(eye, c, up))
    return Trajectory(torch.stack(poses), _times(n_frames, fps), "orbit")


def _smooth_signal(rng: np.random.Generator, t: np.ndarray, amplitude: float, f_lo: float, f_hi: float, parts: int = 4) -> np.ndarray:
    """Sum of ``parts`` sinusoids with random frequencies and phases, starting at 0; peak ~ ``amplitude``."""
    freqs = rng.uniform(f_lo, f_hi, parts)
    phases = rng.uniform(0, 2 * math.pi, parts)
    weights = rng.uniform(0.5, 1.0, parts)
    weights = weights / weights.sum() * amplitude
    signal = (weights[None, :] * np.sin(2 * math.pi * freqs[None, :] * t[:, None] + phases[None, :])).sum(1)
    return signal - signal[0]  # the path starts at the given pose


def vr_head_motion(T_world_head0, n_frames: int, fps: float = 72.0, seed: int = 0,
                   yaw_deg: float = 35.0, pitch_deg: float = 12.0, roll_deg: float = 4.0,
                   sway_m: float = 0.05) -> Trajectory:
    """A seeded, smooth head motion of a seated or standing VR user around a starting pose.

    Yaw, pitch and roll are sums of sinusoids of 0.05-0.8 Hz (the band of natural head turns),
    giving angular speeds of typically 20-60 deg/s with peaks near 100-150 deg/s; the head
    also sways by a few centimetres. Deterministic for a given seed.

    Args:
        T_world_head0: the centre pose, [4, 4].
        n_frames: frames to generate.
        fps: display rate (72-120 Hz on headsets).
        seed: random seed.
        yaw_deg, pitch_deg, roll_deg: peak rotation amplitudes about the head's y, x and z axes.
        sway_m: peak translation along each head axis.
    """
    _check_frames(n_frames)
    T0 = torch.as_tensor(T_world_head0, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    yaw = np.radians(_smooth_signal(rng, t, yaw_deg, 0.05, 0.8))
    pitch = np.radians(_smooth_signal(rng, t, pitch_deg, 0.05, 0.8))
    roll = np.radians(_smooth_signal(rng, t, roll_deg, 0.05, 0.5))
    sway = np.stack([_smooth_signal(rng, t, sway_m, 0.05, 0.5) for _ in range(3)], axis=1)
    poses = []
    for i in range(n_frames):
        cy, sy = math.cos(yaw[i]), math.sin(yaw[i])
        cp, sp = math.cos(pitch[i]), math.sin(pitch[i])
        cr, sr = math.cos(roll[i]), math.sin(roll[i])
        Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # turn about the head's up-down axis
        Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])  # nod
        Rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])  # tilt
        local = np.eye(4)
        local[:3, :3] = Ry @ Rx @ Rz
        local[:3, 3] = sway[i]
        poses.append(T0 @ torch.from_numpy(local))
    return Trajectory(torch.stack(poses), _times(n_frames, fps), f"vr(seed={seed})")


def head_turn(T_world_head0, n_frames: int, fps: float = 72.0, speed_deg_s: float = 150.0,
              sweep_deg: float = 90.0) -> Trajectory:
    """A fast head turn: yaw (about the head's up-down axis) sweeping back and forth over
    ``sweep_deg`` at a constant ``speed_deg_s`` (a triangle wave starting at the centre), the
    case where reused pixels are scarcest and smearing would show most."""
    _check_frames(n_frames)
    if not speed_deg_s > 0 or not sweep_deg > 0:
        raise GscacheError(f"head_turn: speed_deg_s and sweep_deg must be > 0, got {speed_deg_s!r}, {sweep_deg!r}")
    T0 = torch.as_tensor(T_world_head0, dtype=torch.float64)
    poses = []
    for i in range(n_frames):
        travelled = speed_deg_s * i / fps + sweep_deg / 2  # degrees along the wave, from one end
        phase = travelled % (2 * sweep_deg)
        yaw = math.radians((phase if phase <= sweep_deg else 2 * sweep_deg - phase) - sweep_deg / 2)
        local = torch.eye(4, dtype=torch.float64)
        local[0, 0], local[0, 2], local[2, 0], local[2, 2] = math.cos(yaw), math.sin(yaw), -math.sin(yaw), math.cos(yaw)
        poses.append(T0 @ local)
    return Trajectory(torch.stack(poses), _times(n_frames, fps), f"turn({speed_deg_s:g} deg/s)")


def fly_through(waypoints, n_frames: int, up=(0.0, -1.0, 0.0), fps: float = 72.0) -> Trajectory:
    """Head flying along a Catmull-Rom spline through ``waypoints`` [M >= 2, 3], looking ahead."""
    _check_frames(n_frames)
    P = np.asarray(waypoints, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3 or len(P) < 2:
        raise GscacheError(f"waypoints: expected [M >= 2, 3], got shape {P.shape}")
    ext = np.concatenate([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])  # phantom end points

    def point(s: float) -> np.ndarray:
        seg = min(int(s), len(P) - 2)
        u = s - seg
        p0, p1, p2, p3 = ext[seg], ext[seg + 1], ext[seg + 2], ext[seg + 3]
        return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * u**3)

    span = len(P) - 1
    poses = []
    for i in range(n_frames):
        s = span * i / max(1, n_frames - 1)
        here = point(s)
        ahead = point(min(span, s + 0.05)) if s < span else here + (here - point(s - 0.05))
        if np.linalg.norm(ahead - here) < 1e-9:
            ahead = here + (P[-1] - P[0])
        poses.append(look_at(here, ahead, up))
    return Trajectory(torch.stack(poses), _times(n_frames, fps), "fly-through")


def altitude_sweep(scene, n_frames: int, up=(0.0, -1.0, 0.0), fps: float = 72.0, distance: float = 1.3) -> Trajectory:
    """From street level to a high aerial view: the head starts at the scene's centre, 1% of its
    radius above the ground (the lowest point of its bounds along ``up``), looking level across
    the scene, and rises (geometrically, as a drone climbs) to ``distance`` radii while backing
    off and pitching down until it looks at the centre from 60 degrees of elevation."""
    _check_frames(n_frames)
    centre, radius = scene_frame(scene, up)
    u, a, b = _up_basis(up)
    lo, hi = (x.double().numpy() for x in scene.bounds(0.01))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ground = centre + u * (float((corners @ u).min()) - centre @ u)  # the centre, down on the ground
    back = -np.array([0.0, 0.0, 1.0])
    back = back - u * (back @ u)
    back = back / np.linalg.norm(back) if np.linalg.norm(back) > 1e-6 else a
    h0, h1 = 0.01 * radius, distance * radius * math.sin(math.radians(60))
    poses = []
    for i in range(n_frames):
        s = i / max(1, n_frames - 1)
        h = h0 * (h1 / h0) ** s
        eye = ground + h * u + back * (distance * radius * math.cos(math.radians(60)) * s)
        # The gaze target slides from far ahead at eye height to the ground at the centre.
        target = (1 - s) * (ground + h * u - back * radius) + s * ground
        poses.append(look_at(eye, target, up))
    return Trajectory(torch.stack(poses), _times(n_frames, fps), "altitude-sweep")


TRAJECTORY_FORMAT = "gscache-trajectory/1"


def save_trajectory(traj: Trajectory, path: str | os.PathLike) -> None:
    """Write a trajectory as JSON ({"format", "name", "times_s", "T_world_head"}), atomically."""
    from .atomic import atomic_write

    doc = {
        "format": TRAJECTORY_FORMAT,
        "name": traj.name,
        "times_s": traj.times_s.tolist(),
        "T_world_head": traj.T_world_head.tolist(),
    }
    with atomic_write(path) as f:
        f.write(json.dumps(doc).encode())


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GscacheError(f"{path}: cannot read {what}: {exc}") from None


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read a trajectory file: gscache's own JSON (save_trajectory) or an Inria cameras.json."""
    path = str(path)
    doc = _read_json(path, "the trajectory")
    if isinstance(doc, list):
        return read_cameras_json(path)
    if not isinstance(doc, dict) or doc.get("format") != TRAJECTORY_FORMAT:
        raise GscacheError(f"{path}: expected a {TRAJECTORY_FORMAT} JSON object or an Inria cameras.json list")
    try:
        poses = torch.tensor(doc["T_world_head"], dtype=torch.float64)
        times = torch.tensor(doc["times_s"], dtype=torch.float64)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise GscacheError(f"{path}: field 'T_world_head' or 'times_s' is missing or malformed ({exc})") from None
    if poses.dim() != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise GscacheError(f"{path}: 'T_world_head' must be a non-empty list of 4x4 matrices")
    for i, T in enumerate(poses):
        try:
            Camera.from_pose(T, Intrinsics(1.0, 1.0, 0.5, 0.5, 1, 1))  # validates the pose
        except GscacheError as exc:
            raise GscacheError(f"{path}: pose {i}: {exc}") from None
    return Trajectory(poses, times, str(doc.get("name", os.path.basename(path))))


TRAJECTORY_KINDS = ("still", "vr", "turn", "orbit", "fly", "altitude")


def named_trajectory(kind: str, scene, n_frames: int, seed: int = 0, up=(0.0, -1.0, 0.0), distance: float = 2.2,
                     elevation_deg: float = 20.0) -> Trajectory:
    """A trajectory around ``scene`` by name (one of TRAJECTORY_KINDS) or from a file path.

    still, vr, turn (:func:`head_turn`, 150 deg/s over 90 degrees) and the start of fly begin
    at :func:`default_head_pose`; orbit circles the scene at
    the same distance and elevation; altitude is :func:`altitude_sweep`; a path is read with
    :func:`load_trajectory` (its own length).
    """
    if kind not in TRAJECTORY_KINDS:
        if not os.path.exists(kind):
            raise GscacheError(f"trajectory: expected one of {', '.join(TRAJECTORY_KINDS)} or a file path, got {kind!r}")
        return load_trajectory(kind)
    if kind == "altitude":
        return altitude_sweep(scene, n_frames, up)
    pose = default_head_pose(scene, up, distance=distance, elevation_deg=elevation_deg)
    if kind == "still":
        return still(pose, n_frames)
    if kind == "vr":
        return vr_head_motion(pose, n_frames, seed=seed)
    if kind == "turn":
        return head_turn(pose, n_frames)
    centre, radius = scene_frame(scene, up)
    if kind == "orbit":
        el = math.radians(elevation_deg)
        return orbit(centre, distance * radius * math.cos(el), n_frames, height=distance * radius * math.sin(el), up=up)
    start = pose[:3, 3].numpy()
    return fly_through(np.stack([start, (start + centre) / 2, centre + 0.3 * (centre - start)]), n_frames, up)


def read_cameras_json(path: str | os.PathLike, fps: float = 30.0) -> Trajectory:
    """Read an Inria 3DGS ``cameras.json`` (list of {width, height, position, rotation, fx, fy}).

    ``rotation`` is the camera-to-world rotation (3x3, rows) and ``position`` the camera centre.
    """
    path = str(path)
    data = _read_json(path, "cameras.json")
    if not isinstance(data, list) or not data:
        raise GscacheError(f"{path}: expected a non-empty JSON list of cameras")
    poses, intr = [], []
    for i, cam in enumerate(data):
        where = f"{path}: camera {i}"
        try:
            R = np.asarray(cam["rotation"], dtype=np.float64)
            pos = np.asarray(cam["position"], dtype=np.float64)
            w, h = int(cam["width"]), int(cam["height"])
            fx, fy = float(cam["fx"]), float(cam["fy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GscacheError(f"{where}: missing or malformed field ({exc}); expected width, height, position, rotation, fx, fy") from None
        if R.shape != (3, 3) or pos.shape != (3,):
            raise GscacheError(f"{where}: rotation must be 3x3 and position 3 numbers")
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, pos
        try:
            intr.append(Intrinsics(fx, fy, w / 2, h / 2, w, h))
            Camera.from_pose(T, intr[-1])  # validates the pose
        except GscacheError as exc:
            raise GscacheError(f"{where}: {exc}") from None
        poses.append(torch.from_numpy(T))
    return Trajectory(torch.stack(poses), _times(len(poses), fps), f"cameras.json:{os.path.basename(path)}", tuple(intr))


def angular_speeds_deg_s(traj: Trajectory) -> Tensor:
    """Head rotation speed between consecutive poses, degrees per second, [F - 1]."""
    R = traj.T_world_head[:, :3, :3]
    rel = R[:-1].transpose(1, 2) @ R[1:]
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    dt = (traj.times_s[1:] - traj.times_s[:-1]).clamp(min=1e-9)
    return torch.rad2deg(torch.arccos(cos)) / dt


def scene_frame(scene, up=(0.0, -1.0, 0.0)) -> tuple[np.ndarray, float]:
    """(centre, radius) of the bulk of a scene's Gaussians (1% outliers ignored per axis)."""
    lo, hi = scene.bounds(0.01)
    centre = ((lo + hi) / 2).double().numpy()
    radius = max(float((hi - lo).norm()) / 2, 1e-3)
    return centre, radius


def default_head_pose(scene, up=(0.0, -1.0, 0.0), distance: float = 2.2, elevation_deg: float = 20.0) -> Tensor:
    """A head pose that looks at the scene's centre from ``distance`` radii, slightly above it."""
    centre, radius = scene_frame(scene, up)
    u, a, b = _up_basis(up)
    el = math.radians(elevation_deg)
    # Start on the side of -z (OpenCV cameras look along +z), so scenes made in camera space face us.
    back = -np.array([0.0, 0.0, 1.0])
    back = back - u * (back @ u)
    if np.linalg.norm(back) < 1e-6:
        back = a
    back /= np.linalg.norm(back)
    eye = centre + distance * radius * (math.cos(el) * back + math.sin(el) * u)
    return look_at(eye, centre, up)
