"""Controllers in the headset: OpenXR actions with suggested bindings for the common interaction
profiles, and what their states do in the viewer.

Actions (one action set, "gscache"): ``move`` (a thumbstick: fly in the plane of the scene's
floor, forward where the view origin faces), ``turn`` (a thumbstick pushed sideways: a snap turn
of SNAP_TURN_DEG, once per push), ``cycle_reuse`` and ``cycle_foveation`` (buttons: the viewer's
M and F) and ``reset`` (a button: back to the start pose). The component paths are those the
OpenXR specification lists for each profile ("Interaction Profile Paths"); the Khronos simple
controller has no thumbstick, so it only cycles and resets.

Eye tracking, where the runtime offers XR_EXT_eye_gaze_interaction and the system supports it: a
pose action ``eye_gaze`` bound to the extension's profile, its action space located each frame at
the predicted display time (the gaze's -z axis is the direction looked in); the foveation's
fovea follows it (gscache.viewer.xr_views.gaze_fractions).

``ControllerActions`` creates and reads the actions (pyopenxr); ``InputEdges`` turns the states
read each frame into the events the viewer acts on (pure: tested without a runtime).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SNAP_TURN_DEG = 30.0
"""One snap turn (the comfortable default of VR viewers: smooth turning makes people sick)."""
TURN_PUSH, TURN_RELEASE = 0.7, 0.3
"""A sideways push past TURN_PUSH turns once; the stick must come back within TURN_RELEASE before
the next turn (hysteresis: no repeat while held, no chatter at the threshold)."""
DEAD_ZONE = 0.15
"""Thumbstick values below this are rest, not motion."""

BUTTONS = ("cycle_reuse", "cycle_foveation", "reset")
STICKS = ("move", "turn")

# Suggested bindings: profile -> (action, component path), from the specification's lists.
BINDINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "/interaction_profiles/khr/simple_controller": (
        ("cycle_reuse", "/user/hand/right/input/select/click"),
        ("cycle_foveation", "/user/hand/left/input/select/click"),
        ("reset", "/user/hand/left/input/menu/click"),
    ),
    "/interaction_profiles/oculus/touch_controller": (
        ("move", "/user/hand/left/input/thumbstick"),
        ("turn", "/user/hand/right/input/thumbstick"),
        ("cycle_reuse", "/user/hand/right/input/a/click"),
        ("cycle_foveation", "/user/hand/right/input/b/click"),
        ("reset", "/user/hand/left/input/y/click"),
    ),
    "/interaction_profiles/valve/index_controller": (
        ("move", "/user/hand/left/input/thumbstick"),
        ("turn", "/user/hand/right/input/thumbstick"),
        ("cycle_reuse", "/user/hand/right/input/a/click"),
        ("cycle_foveation", "/user/hand/right/input/b/click"),
        ("reset", "/user/hand/left/input/b/click"),
    ),
}


GAZE_PROFILE = "/interaction_profiles/ext/eye_gaze_interaction"
GAZE_POSE = "/user/eyes_ext/input/gaze_ext/pose"
"""XR_EXT_eye_gaze_interaction's interaction profile and its one input (the specification's)."""


@dataclass
class ControllerState:
    """One frame's action states: the sticks (x, y) in [-1, 1] and the buttons held."""

    move: tuple[float, float] = (0.0, 0.0)
    turn: tuple[float, float] = (0.0, 0.0)
    held: frozenset[str] = frozenset()


@dataclass
class InputEdges:
    """Events from successive ControllerStates: ``update(state)`` returns the buttons pressed
    since the last frame (rising edges) and the snap turn to make (-1 left, +1 right, 0)."""

    held: frozenset[str] = frozenset()
    turn_armed: bool = True
    turns: list[int] = field(default_factory=list)

    def update(self, state: ControllerState) -> tuple[list[str], int]:
        pressed = [b for b in BUTTONS if b in state.held and b not in self.held]
        self.held = frozenset(state.held)
        x = state.turn[0]
        turn = 0
        if self.turn_armed and abs(x) >= TURN_PUSH:
            turn, self.turn_armed = (1 if x > 0 else -1), False
        elif abs(x) <= TURN_RELEASE:
            self.turn_armed = True
        return pressed, turn


def stick(x: float, y: float) -> tuple[float, float]:
    """A thumbstick reading with the dead zone removed (and rescaled so motion starts at 0)."""
    def axis(v: float) -> float:
        v = max(-1.0, min(1.0, float(v)))
        return 0.0 if abs(v) < DEAD_ZONE else (abs(v) - DEAD_ZONE) / (1 - DEAD_ZONE) * (1 if v > 0 else -1)
    return axis(x), axis(y)


class ControllerActions:
    """The action set of a session (pyopenxr ``xr``): created, bound (every profile of
    BINDINGS, each suggested on its own: a runtime may not know them all) and attached; ``read()``
    synchronises and returns the frame's ControllerState (only while the session has focus)."""

    def __init__(self, xr, instance, session, eye_gaze: bool = False) -> None:
        self.xr, self.session = xr, session
        self.gaze_space = None
        self.action_set = xr.create_action_set(instance, xr.ActionSetCreateInfo(
            action_set_name="gscache", localized_action_set_name="gscache viewer", priority=0))
        kinds = {name: xr.ActionType.VECTOR2F_INPUT for name in STICKS}
        kinds.update({name: xr.ActionType.BOOLEAN_INPUT for name in BUTTONS})
        if eye_gaze:
            kinds["eye_gaze"] = xr.ActionType.POSE_INPUT
        self.actions = {name: xr.create_action(self.action_set, xr.ActionCreateInfo(
            action_type=kind, action_name=name, localized_action_name=name.replace("_", " ")))
            for name, kind in kinds.items()}
        self.profiles: list[str] = []
        for profile, pairs in BINDINGS.items():
            bindings = [xr.ActionSuggestedBinding(self.actions[a], xr.string_to_path(instance, path))
                        for a, path in pairs]
            try:
                xr.suggest_interaction_profile_bindings(instance, xr.InteractionProfileSuggestedBinding(
                    interaction_profile=xr.string_to_path(instance, profile), suggested_bindings=bindings))
                self.profiles.append(profile)
            except xr.PathUnsupportedError:  # a runtime without this profile
                continue
        if eye_gaze:
            xr.suggest_interaction_profile_bindings(instance, xr.InteractionProfileSuggestedBinding(
                interaction_profile=xr.string_to_path(instance, GAZE_PROFILE),
                suggested_bindings=[xr.ActionSuggestedBinding(self.actions["eye_gaze"],
                                                              xr.string_to_path(instance, GAZE_POSE))]))
        xr.attach_session_action_sets(session, xr.SessionActionSetsAttachInfo(action_sets=[self.action_set]))
        if eye_gaze:
            self.gaze_space = xr.create_action_space(session, xr.ActionSpaceCreateInfo(
                action=self.actions["eye_gaze"], pose_in_action_space=xr.Posef()))

    def gaze(self, space, time) -> tuple[float, float, float, float] | None:
        """The eye gaze's orientation (x, y, z, w) in ``space`` at ``time`` (call after read(),
        which synchronises the actions), or None: no eye tracking, the action inactive, or the
        eyes not tracked now (orientation not valid and tracked)."""
        xr = self.xr
        if self.gaze_space is None:
            return None
        state = xr.get_action_state_pose(self.session, xr.ActionStateGetInfo(action=self.actions["eye_gaze"]))
        if not state.is_active:
            return None
        location = xr.locate_space(self.gaze_space, space, time)
        need = xr.SpaceLocationFlags.ORIENTATION_VALID_BIT | xr.SpaceLocationFlags.ORIENTATION_TRACKED_BIT
        if (location.location_flags & need) != need:
            return None
        q = location.pose.orientation
        return (q.x, q.y, q.z, q.w)

    def read(self) -> ControllerState:
        xr = self.xr
        xr.sync_actions(self.session, xr.ActionsSyncInfo(active_action_sets=[
            xr.ActiveActionSet(action_set=self.action_set, subaction_path=xr.NULL_PATH)]))
        sticks = {}
        for name in STICKS:
            s = xr.get_action_state_vector2f(self.session, xr.ActionStateGetInfo(action=self.actions[name]))
            sticks[name] = stick(s.current_state.x, s.current_state.y) if s.is_active else (0.0, 0.0)
        held = set()
        for name in BUTTONS:
            s = xr.get_action_state_boolean(self.session, xr.ActionStateGetInfo(action=self.actions[name]))
            if s.is_active and s.current_state:
                held.add(name)
        return ControllerState(sticks["move"], sticks["turn"], frozenset(held))

    def close(self) -> None:
        if self.gaze_space is not None:
            self.xr.destroy_space(self.gaze_space)
            self.gaze_space = None
        if self.action_set is not None:
            self.xr.destroy_action_set(self.action_set)  # its actions with it
            self.action_set = None
