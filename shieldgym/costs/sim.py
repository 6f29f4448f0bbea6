"""Read-only simulator access for cost terms: one interface, a MuJoCo and a PyBullet implementation.

Cost terms (:mod:`~shieldgym.costs.contact`, :mod:`~shieldgym.costs.joint_limit`,
:mod:`~shieldgym.costs.velocity`, :mod:`~shieldgym.costs.workspace`, :mod:`~shieldgym.costs.torque`)
are written once against :class:`SimInterface`. At ``bind`` time a term resolves its names to
small reader objects (:class:`ContactQuery`, :class:`JointSet`, :class:`PointReader`) whose methods
are the per-step hot path: ids, lookup tables and NumPy views of the simulator's arrays are made
once, and the few numbers a term needs per step come back as Python floats (``position_xyz``,
``velocity_xyz``, ``position_values``, ``torque_values``), cheaper than NumPy on 3- to 7-element arrays.

Names:

* MuJoCo: the model's body, joint (hinge/slide), site and body names.
* PyBullet: ``"<body>"`` for a whole body and ``"<body>/<link>"`` for one link, where ``<body>``
  is a key of the env's ``bullet_bodies`` mapping and ``<link>`` a URDF link name; joints are
  ``"<body>/<joint>"``.

Patterns use shell-style wildcards (``"robot0_*"``). A pattern that matches nothing raises a
:class:`ValueError` that lists every valid name.

:func:`sim_of` finds the simulator of an env: it walks the wrapper chain and ``env.unwrapped``
(and an inner ``.env`` held by an adapter) for ``bullet_client_id`` + ``bullet_bodies``
(PyBullet), ``.model`` + ``.data`` (MuJoCo) or ``.sim`` (a ``mujoco_py``-style wrapper such as
RoboSuite's ``MjSim``).
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.lib.stride_tricks import as_strided

from shieldgym.costs.base import CostTerm, StepContext

__all__ = [
    "ContactQuery",
    "JointSet",
    "MujocoSim",
    "PointReader",
    "PyBulletSim",
    "SimCostTerm",
    "SimInterface",
    "match_names",
    "sim_of",
]


def match_names(patterns: Sequence[str] | str, valid: Sequence[str], what: str) -> list[str]:
    """Expand shell-style ``patterns`` against ``valid`` names, keeping the order of ``valid``.

    Args:
        patterns: names or wildcard patterns (a single string is one pattern).
        valid: every name that exists.
        what: what the names are (``"body"``, ``"joint"``), used in the error.

    Raises:
        ValueError: a pattern matches no name; the message lists the valid names.

    >>> match_names(["link*"], ["base", "link1", "link2"], "body")
    ['link1', 'link2']
    """
    if isinstance(patterns, str):
        patterns = (patterns,)
    if len(patterns) == 0:
        raise ValueError(f"Expected at least one {what} name, got none. Valid {what} names: {list(valid)}.")
    chosen: set[str] = set()
    for pat in patterns:
        if not isinstance(pat, str):
            raise TypeError(f"{what} names must be strings, got {pat!r}.")
        hits = [n for n in valid if n == pat] or fnmatch.filter(valid, pat)
        if not hits:
            raise ValueError(f"Unknown {what} {pat!r}. Valid {what} names: {list(valid)}.")
        chosen.update(hits)
    return [n for n in valid if n in chosen]


class ContactQuery(ABC):
    """Counts contacts between two resolved groups of bodies (the per-step hot path)."""

    @abstractmethod
    def count(self) -> int:
        """Number of contact points between the two groups in the current simulator state."""


class JointSet(ABC):
    """Reads positions and torques of resolved 1-dof joints.

    Attributes:
        names: joint names, in the order of the arrays below.
        lower, upper: position limits (rad for hinge/revolute, m for slide/prismatic); ``-inf``/``inf``
            where the joint is unlimited.
        torque_limit: actuator force/torque limits (N*m or N); ``inf`` where none is modelled.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    torque_limit: np.ndarray

    @abstractmethod
    def positions(self) -> np.ndarray:
        """Current joint positions, shape ``(n,)`` (a reused buffer: copy it to keep it)."""

    @abstractmethod
    def torques(self) -> np.ndarray:
        """Current actuator torques/forces applied at the joints, shape ``(n,)`` (a reused buffer)."""

    def position_values(self) -> list[float]:
        """Current joint positions as Python floats (cheaper than :meth:`positions` for scalar maths)."""
        return self.positions().tolist()  # type: ignore[no-any-return]

    def torque_values(self) -> list[float]:
        """Current actuator torques/forces as Python floats."""
        return self.torques().tolist()  # type: ignore[no-any-return]


class PointReader(ABC):
    """Reads the world position (m) and linear velocity (m/s) of one body, link or site.

    :meth:`position_xyz` and :meth:`velocity_xyz` return three Python floats: cost terms use them on the
    per-step hot path, where scalar maths on floats is several times cheaper than NumPy on 3-element arrays.
    """

    name: str

    @abstractmethod
    def position(self) -> np.ndarray:
        """World position, shape ``(3,)``."""

    @abstractmethod
    def velocity(self) -> np.ndarray:
        """World linear velocity, shape ``(3,)``."""

    def position_xyz(self) -> Sequence[float]:
        """World position as three Python floats ``(x, y, z)`` (m)."""
        return self.position().tolist()  # type: ignore[no-any-return]

    def velocity_xyz(self) -> Sequence[float]:
        """World linear velocity as three Python floats ``(vx, vy, vz)`` (m/s)."""
        return self.velocity().tolist()  # type: ignore[no-any-return]


class SimInterface(ABC):
    """The part of a simulator that cost terms read.

    Attributes:
        backend: ``"mujoco"`` or ``"pybullet"``.
    """

    backend: str

    @property
    @abstractmethod
    def body_names(self) -> tuple[str, ...]:
        """Every name a contact group may use."""

    @property
    @abstractmethod
    def joint_names(self) -> tuple[str, ...]:
        """Every 1-dof joint name."""

    @property
    @abstractmethod
    def point_names(self) -> tuple[str, ...]:
        """Every name whose position and velocity can be read."""

    @abstractmethod
    def contact_query(
        self,
        bodies: Sequence[str],
        others: Sequence[str] | None = None,
        max_distance: float = 0.0,
        exclude: Sequence[str] = (),
    ) -> ContactQuery:
        """Resolve a contact query between ``bodies`` and ``others`` (``None``: every other body).

        Bodies matching ``exclude`` are removed from ``others`` (e.g. the rest of the robot). Only
        contacts with signed distance ``<= max_distance`` (m; negative is penetration) count.
        """

    @abstractmethod
    def joint_set(self, joints: Sequence[str]) -> JointSet:
        """Resolve joint names or patterns."""

    @abstractmethod
    def point(self, name: str) -> PointReader:
        """Resolve one body, link or site name."""


# --------------------------------------------------------------------------------------------- MuJoCo


def _view(array: np.ndarray, index: int | slice) -> np.ndarray:
    """``array[index]`` checked to be a view of ``array`` (MuJoCo's arrays live in buffers fixed for mjData's lifetime)."""
    row = array[index]
    if not np.shares_memory(row, array):
        raise RuntimeError("Expected the MuJoCo bindings to return views of mjData's arrays, got a copy.")
    return row


class _MujocoContacts(ContactQuery):
    """Counts contacts whose geom pair is in a precomputed symmetric ``(ngeom, ngeom)`` lookup table.

    MuJoCo keeps the contact array at the start of mjData's arena (``mj_clearEfc`` sets ``d->contact =
    d->arena`` before every collision pass, and the arena is allocated once with mjData), so the geom ids and
    distances of every contact are read through two strided NumPy views made once, at the first contact,
    instead of through ``data.contact`` (three binding calls and new arrays per step). Up to
    :attr:`loop_max` contacts are filtered with a Python loop over the table (the common case: a few
    contacts); more with one vectorised fancy index.
    """

    #: Largest contact count filtered with the Python loop; above it the vectorised pass is cheaper.
    loop_max = 16

    def __init__(self, data: Any, mask_a: np.ndarray, mask_b: np.ndarray, max_distance: float) -> None:
        self._data = data
        # pair[i, j]: geom i in one group and geom j in the other (either order).
        self._pair = np.outer(mask_a, mask_b)
        self._pair |= self._pair.T
        self._rows: list[list[bool]] = self._pair.tolist()  # the same table as nested lists: cheap scalar lookups
        self._max_distance = float(max_distance)
        self._geom: np.ndarray | None = None  # (max contacts, 2) view of contact.geom, made at the first contact
        self._dist: np.ndarray | None = None  # (max contacts,) view of contact.dist

    def _make_views(self) -> np.ndarray:
        contact = self._data.contact
        dist, geom = contact.dist, contact.geom  # views of the first ncon contacts
        stride = dist.strides[0]  # sizeof(mjContact)
        if geom.strides[0] != stride or stride < dist.itemsize:
            raise RuntimeError(f"Unexpected layout of mjData.contact: strides {dist.strides} and {geom.strides}.")
        n_max = int(self._data.narena) // stride  # the arena bounds how many contacts can exist
        self._dist = as_strided(dist, shape=(n_max,), strides=(stride,), writeable=False)
        self._geom = as_strided(geom, shape=(n_max, 2), strides=(stride, geom.strides[1]), writeable=False)
        return self._geom

    def count(self) -> int:
        n = self._data.ncon
        if n == 0:
            return 0
        geom = self._geom if self._geom is not None else self._make_views()
        dist, limit = self._dist, self._max_distance
        if n > self.loop_max:
            hit = self._pair[geom[:n, 0], geom[:n, 1]]
            if not hit.any():
                return 0
            hit &= dist[:n] <= limit  # type: ignore[index]
            return int(np.count_nonzero(hit))
        rows, total = self._rows, 0
        for i, (g1, g2) in enumerate(geom[:n].tolist()):
            if rows[g1][g2] and dist[i] <= limit:  # type: ignore[index]
                total += 1
        return total


class _MujocoJoints(JointSet):
    def __init__(self, model: Any, data: Any, ids: list[int], names: list[str]) -> None:
        import mujoco

        self._data = data
        self.names = tuple(names)
        self._qadr = np.asarray(model.jnt_qposadr[ids], dtype=np.intp)
        self._dadr = np.asarray(model.jnt_dofadr[ids], dtype=np.intp)
        limited = np.asarray(model.jnt_limited[ids], dtype=bool)
        rng = np.asarray(model.jnt_range[ids], dtype=np.float64).reshape(len(ids), 2)
        self.lower = np.where(limited, rng[:, 0], -np.inf)
        self.upper = np.where(limited, rng[:, 1], np.inf)
        # Torque limit of the actuator driving each joint: forcerange if set, else ctrlrange * gear (motors).
        self.torque_limit = np.full(len(ids), np.inf)
        for a in range(model.nu):
            if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT:
                continue
            jid = int(model.actuator_trnid[a, 0])
            if jid not in ids:
                continue
            k = ids.index(jid)
            gear = abs(float(model.actuator_gear[a, 0]))
            if model.actuator_forcelimited[a]:
                self.torque_limit[k] = float(np.max(np.abs(model.actuator_forcerange[a])))
            elif model.actuator_ctrllimited[a] and model.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED:
                self.torque_limit[k] = float(np.max(np.abs(model.actuator_ctrlrange[a]))) * gear
        self._qpos = _view(data.qpos, slice(None))  # views of mjData's buffers, fixed for its lifetime
        self._qfrc = _view(data.qfrc_actuator, slice(None))
        self._q = np.empty(len(ids))
        self._tau = np.empty(len(ids))

    def positions(self) -> np.ndarray:
        return np.take(self._qpos, self._qadr, out=self._q)

    def torques(self) -> np.ndarray:
        return np.take(self._qfrc, self._dadr, out=self._tau)

    def position_values(self) -> list[float]:
        return np.take(self._qpos, self._qadr, out=self._q).tolist()  # type: ignore[no-any-return]

    def torque_values(self) -> list[float]:
        return np.take(self._qfrc, self._dadr, out=self._tau).tolist()  # type: ignore[no-any-return]


class _MujocoPoint(PointReader):
    """Position and velocity of a body or site, read through views of mjData's arrays made once.

    The velocity is ``mj_objectVelocity(..., flg_local=0)``'s linear part, with the same arithmetic in Python
    floats: ``v = cvel_lin - (p - subtree_com[root]) x cvel_ang`` with ``p`` the site position or the body's
    centre of mass (``xipos``), and zero for a body welded to the world or a mocap body. The position is the
    site position or the body frame's origin (``xpos``).
    """

    def __init__(self, model: Any, data: Any, name: str, is_site: bool, obj_id: int) -> None:
        self.name = name
        self._data = data  # keeps mjData (owner of the views below) alive
        body = int(model.site_bodyid[obj_id]) if is_site else obj_id
        self._pos = _view(data.site_xpos if is_site else data.xpos, obj_id)
        self._vel_pos = _view(data.site_xpos if is_site else data.xipos, obj_id)  # where the velocity is taken
        self._cvel = _view(data.cvel, body)  # [angular(3), linear(3)] at the subtree centre of mass
        self._com = _view(data.subtree_com, int(model.body_rootid[body]))
        self._static = int(model.body_dofnum[model.body_weldid[body]]) == 0

    def position(self) -> np.ndarray:
        return self._pos  # a live view: copy it to keep it

    def velocity(self) -> np.ndarray:
        return np.array(self.velocity_xyz())

    def position_xyz(self) -> Sequence[float]:
        return self._pos.tolist()  # type: ignore[no-any-return]

    def velocity_xyz(self) -> Sequence[float]:
        if self._static:
            return (0.0, 0.0, 0.0)
        wx, wy, wz, vx, vy, vz = self._cvel.tolist()
        px, py, pz = self._vel_pos.tolist()
        cx, cy, cz = self._com.tolist()
        dx, dy, dz = px - cx, py - cy, pz - cz
        return (vx - (dy * wz - dz * wy), vy - (dz * wx - dx * wz), vz - (dx * wy - dy * wx))


class MujocoSim(SimInterface):
    """:class:`SimInterface` over a ``mujoco.MjModel`` / ``mujoco.MjData`` pair.

    The model and data must stay the same objects for the env's lifetime (RoboSuite: create the
    env with ``hard_reset=False``; shieldgym's adapter does).
    """

    backend = "mujoco"

    def __init__(self, model: Any, data: Any) -> None:
        import mujoco

        self.model = model
        self.data = data
        obj = mujoco.mjtObj

        def names(kind: Any, n: int, default: str) -> list[str]:
            return [mujoco.mj_id2name(model, kind, i) or f"{default}{i}" for i in range(n)]

        self._bodies = names(obj.mjOBJ_BODY, model.nbody, "body")
        self._sites = names(obj.mjOBJ_SITE, model.nsite, "site")
        jt = mujoco.mjtJoint
        all_joints = names(obj.mjOBJ_JOINT, model.njnt, "joint")
        self._joint_ids = {
            all_joints[j]: j for j in range(model.njnt) if model.jnt_type[j] in (jt.mjJNT_HINGE, jt.mjJNT_SLIDE)
        }

    @property
    def body_names(self) -> tuple[str, ...]:
        return tuple(self._bodies)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self._joint_ids)

    @property
    def point_names(self) -> tuple[str, ...]:
        return tuple(self._sites) + tuple(self._bodies)

    def _geom_mask(self, body_names: Sequence[str]) -> np.ndarray:
        ids = [self._bodies.index(n) for n in body_names]
        return np.isin(np.asarray(self.model.geom_bodyid), ids)

    def contact_query(
        self,
        bodies: Sequence[str],
        others: Sequence[str] | None = None,
        max_distance: float = 0.0,
        exclude: Sequence[str] = (),
    ) -> ContactQuery:
        mask_a = self._geom_mask(match_names(bodies, self._bodies, "body"))
        mask_b = ~mask_a if others is None else self._geom_mask(match_names(others, self._bodies, "body"))
        if others is not None and np.any(mask_a & mask_b):
            raise ValueError(f"Contact groups overlap: bodies {list(bodies)} and others {list(others)} share bodies.")
        if len(exclude):
            mask_b &= ~self._geom_mask(match_names(exclude, self._bodies, "body"))
        return _MujocoContacts(self.data, mask_a, mask_b, max_distance)

    def joint_set(self, joints: Sequence[str]) -> JointSet:
        chosen = match_names(joints, list(self._joint_ids), "joint")
        return _MujocoJoints(self.model, self.data, [self._joint_ids[n] for n in chosen], chosen)

    def point(self, name: str) -> PointReader:
        if name in self._sites:
            return _MujocoPoint(self.model, self.data, name, True, self._sites.index(name))
        if name in self._bodies:
            return _MujocoPoint(self.model, self.data, name, False, self._bodies.index(name))
        raise ValueError(f"Unknown point {name!r}: not a site or body. Valid sites: {self._sites}; bodies: {self._bodies}.")


# ------------------------------------------------------------------------------------------- PyBullet


_Group = dict[int, frozenset[int] | None]  # body id -> link indices (None: every link)


class _BulletContacts(ContactQuery):
    """One ``getContactPoints(bodyA=s)`` call per body ``s`` of the smaller group, filtered by the other group.

    ``near``/``far`` map body id -> allowed link indices (``None``: every link).
    """

    def __init__(self, p: Any, client: int, near: _Group, far: _Group, max_distance: float) -> None:
        self._get = p.getContactPoints
        self._client = client
        self._near = list(near.items())
        self._far = far
        self._max_distance = float(max_distance)

    def count(self) -> int:
        total = 0
        far, limit = self._far, self._max_distance
        for body, links in self._near:
            pts = self._get(bodyA=body, physicsClientId=self._client)
            if not pts:
                continue
            # Fields: 2 bodyB, 3 linkA, 4 linkB, 8 signed distance. Contacts of one body are few.
            for c in pts:
                if c[2] not in far or c[8] > limit or (links is not None and c[3] not in links):
                    continue
                other = far[c[2]]
                if other is None or c[4] in other:
                    total += 1
        return total


class _BulletJoints(JointSet):
    def __init__(self, p: Any, client: int, refs: list[tuple[int, int]], names: list[str]) -> None:
        self._get_states = p.getJointStates
        self._client = client
        self.names = tuple(names)
        self._by_body: list[tuple[int, list[int], np.ndarray]] = []
        lower, upper, force = [], [], []
        for body, joint in refs:
            info = p.getJointInfo(body, joint, physicsClientId=client)
            lo, hi, fmax = float(info[8]), float(info[9]), float(info[10])
            limited = hi > lo
            lower.append(lo if limited else -np.inf)
            upper.append(hi if limited else np.inf)
            force.append(fmax if fmax > 0 else np.inf)
        self.lower, self.upper, self.torque_limit = np.array(lower), np.array(upper), np.array(force)
        k = 0
        for body in dict.fromkeys(b for b, _ in refs):
            idx = [j for b, j in refs if b == body]
            self._by_body.append((body, idx, np.arange(k, k + len(idx))))
            k += len(idx)
        self._q = np.empty(len(refs))
        self._tau = np.empty(len(refs))

    def _values(self, field: int) -> list[float]:
        """``field`` of every joint's state (0: position, 3: applied motor torque), one call per body."""
        get, client = self._get_states, self._client
        if len(self._by_body) == 1:
            body, idx, _ = self._by_body[0]
            return [s[field] for s in get(body, idx, physicsClientId=client)]
        values: list[float] = []
        for body, idx, _ in self._by_body:
            values.extend([s[field] for s in get(body, idx, physicsClientId=client)])
        return values

    def positions(self) -> np.ndarray:
        self._q[:] = self._values(0)
        return self._q

    def torques(self) -> np.ndarray:
        self._tau[:] = self._values(3)
        return self._tau

    def position_values(self) -> list[float]:
        return self._values(0)

    def torque_values(self) -> list[float]:
        return self._values(3)


class _BulletPoint(PointReader):
    def __init__(self, p: Any, client: int, name: str, body: int, link: int) -> None:
        self.name = name
        self._p = p
        self._client = client
        self._body = body
        self._link = link
        self._base_pose = p.getBasePositionAndOrientation
        self._base_velocity = p.getBaseVelocity
        self._link_state = p.getLinkState

    def position(self) -> np.ndarray:
        return np.asarray(self.position_xyz())

    def velocity(self) -> np.ndarray:
        return np.asarray(self.velocity_xyz())

    def position_xyz(self) -> Sequence[float]:
        if self._link < 0:
            return self._base_pose(self._body, physicsClientId=self._client)[0]  # type: ignore[no-any-return]
        return self._link_state(self._body, self._link, physicsClientId=self._client)[4]  # type: ignore[no-any-return]

    def velocity_xyz(self) -> Sequence[float]:
        if self._link < 0:
            return self._base_velocity(self._body, physicsClientId=self._client)[0]  # type: ignore[no-any-return]
        # world linear velocity of the link's centre of mass
        state = self._link_state(self._body, self._link, computeLinkVelocity=1, physicsClientId=self._client)
        return state[6]  # type: ignore[no-any-return]


class PyBulletSim(SimInterface):
    """:class:`SimInterface` over a PyBullet client and a mapping of named bodies.

    Args:
        client_id: the ``physicsClientId`` of the simulation.
        bodies: ``{name: body unique id}`` for the bodies cost terms may name.
    """

    backend = "pybullet"

    def __init__(self, client_id: int, bodies: Mapping[str, int]) -> None:
        import pybullet as p

        self._p = p
        self.client_id = int(client_id)
        self.bodies = dict(bodies)
        self._links: dict[str, tuple[int, int]] = {}  # "body/link" -> (body id, link index)
        self._joints: dict[str, tuple[int, int]] = {}  # "body/joint" -> (body id, joint index)
        for name, body in self.bodies.items():
            base = p.getBodyInfo(body, physicsClientId=self.client_id)[0].decode()
            self._links[f"{name}/{base}"] = (body, -1)
            for j in range(p.getNumJoints(body, physicsClientId=self.client_id)):
                info = p.getJointInfo(body, j, physicsClientId=self.client_id)
                self._links[f"{name}/{info[12].decode()}"] = (body, j)
                if info[2] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC):
                    self._joints[f"{name}/{info[1].decode()}"] = (body, j)

    @property
    def body_names(self) -> tuple[str, ...]:
        return tuple(self.bodies) + tuple(self._links)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self._joints)

    @property
    def point_names(self) -> tuple[str, ...]:
        return tuple(self._links)

    def _group(self, names: Sequence[str]) -> dict[int, frozenset[int] | None]:
        """Body id -> link indices named (``None``: the whole body)."""
        chosen = match_names(names, self.body_names, "body")
        group: dict[int, set[int] | None] = {self.bodies[n]: None for n in chosen if n in self.bodies}
        for n in chosen:
            if n in self._links:
                body, link = self._links[n]
                links = group.setdefault(body, set())
                if links is not None:
                    links.add(link)
        return {b: (None if links is None else frozenset(links)) for b, links in group.items()}

    def contact_query(
        self,
        bodies: Sequence[str],
        others: Sequence[str] | None = None,
        max_distance: float = 0.0,
        exclude: Sequence[str] = (),
    ) -> ContactQuery:
        group_a = self._group(bodies)
        if others is None:
            n = self._p.getNumBodies(physicsClientId=self.client_id)
            all_ids = [self._p.getBodyUniqueId(i, physicsClientId=self.client_id) for i in range(n)]
            group_b: dict[int, frozenset[int] | None] = {b: None for b in all_ids if b not in group_a}
        else:
            group_b = self._group(others)
            shared = set(group_a) & set(group_b)
            if any(group_a[b] is None or group_b[b] is None or group_a[b] & group_b[b] for b in shared):  # type: ignore[operator]
                raise ValueError(f"Contact groups overlap: bodies {list(bodies)} and others {list(others)}.")
        if len(exclude):
            for body, links in self._group(exclude).items():
                if links is None or group_b.get(body, ()) is None:
                    group_b.pop(body, None)  # a whole body, or links of a body named whole: drop the body
                elif body in group_b:
                    group_b[body] = group_b[body] - links  # type: ignore[operator]
        # Query from the side with fewer bodies; a contact (A, B) is reported for bodyA=A and for bodyA=B.
        if len(group_b) < len(group_a):
            return _BulletContacts(self._p, self.client_id, group_b, group_a, max_distance)
        return _BulletContacts(self._p, self.client_id, group_a, group_b, max_distance)

    def joint_set(self, joints: Sequence[str]) -> JointSet:
        chosen = match_names(joints, list(self._joints), "joint")
        return _BulletJoints(self._p, self.client_id, [self._joints[n] for n in chosen], chosen)

    def point(self, name: str) -> PointReader:
        if name in self.bodies:
            return _BulletPoint(self._p, self.client_id, name, self.bodies[name], -1)
        if name in self._links:
            body, link = self._links[name]
            return _BulletPoint(self._p, self.client_id, name, body, link)
        raise ValueError(f"Unknown point {name!r}. Valid names: {list(self.bodies) + list(self._links)}.")


# --------------------------------------------------------------------------------------------- lookup


def _candidates(env: gym.Env) -> Iterator[Any]:
    seen: set[int] = set()
    obj: Any = env
    for _ in range(32):  # the wrapper chain, outermost first
        if obj is None or id(obj) in seen:
            break
        seen.add(id(obj))
        yield obj
        obj = getattr(obj, "env", None)
    inner: Any = getattr(env, "unwrapped", env)
    for _ in range(4):  # an adapter may hold the simulator's own env object
        if inner is None:
            break
        if id(inner) not in seen:
            seen.add(id(inner))
            yield inner
        inner = inner.__dict__.get("env") if hasattr(inner, "__dict__") else None


def _as_mujoco(model: Any, data: Any) -> tuple[Any, Any] | None:
    import sys

    mujoco = sys.modules.get("mujoco")
    if mujoco is None:
        return None
    model = getattr(model, "_model", model)  # RoboSuite's MjModel/MjData wrap the raw structs
    data = getattr(data, "_data", data)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return model, data
    return None


def sim_of(env: gym.Env) -> SimInterface:
    """The simulator behind ``env`` (see the module docstring for how it is found).

    Raises:
        TypeError: no MuJoCo or PyBullet simulator could be found.
    """
    for obj in _candidates(env):
        d = getattr(obj, "__dict__", {})
        if "bullet_client_id" in d or hasattr(type(obj), "bullet_client_id"):
            bodies = getattr(obj, "bullet_bodies", None)
            if bodies is not None:
                return PyBulletSim(obj.bullet_client_id, bodies)
        for model, data in (
            (getattr(obj, "model", None), getattr(obj, "data", None)),
            (getattr(getattr(obj, "sim", None), "model", None), getattr(getattr(obj, "sim", None), "data", None)),
        ):
            pair = _as_mujoco(model, data)
            if pair is not None:
                return MujocoSim(*pair)
    raise TypeError(
        f"Cannot find a simulator on {env!r}: expected env.unwrapped to expose MuJoCo `.model`/`.data`, a `.sim` "
        f"with `.model`/`.data`, or PyBullet `.bullet_client_id`/`.bullet_bodies`."
    )


class SimCostTerm(CostTerm):
    """Base of the cost terms that read a simulator: finds it at :meth:`bind` and resolves names once.

    Subclasses implement :meth:`_resolve` (called with the :class:`SimInterface` at bind; raise
    ``ValueError`` naming a bad name there) and :meth:`_value` (the per-step cost).

    Args:
        name: key in ``info["costs"]``.
        weight: multiplier in ``info["cost"]``.
        mode: how a violation becomes a cost; one of the subclass's ``modes``.
        sim: use this simulator instead of looking it up on the env.
    """

    modes: tuple[str, ...] = ("indicator", "magnitude")

    def __init__(self, name: str, weight: float = 1.0, *, mode: str = "indicator", sim: SimInterface | None = None) -> None:
        super().__init__(name, weight)
        if mode not in self.modes:
            raise ValueError(f"Cost term {name!r}: mode must be one of {self.modes}, got {mode!r}.")
        self.mode = mode
        self.sim: SimInterface | None = sim
        self._bound = False

    def bind(self, env: gym.Env) -> None:
        """Find the env's simulator (unless one was given) and resolve names; bad names raise ``ValueError``."""
        sim = self.sim if self.sim is not None else sim_of(env)
        self._resolve(sim)
        self.sim = sim
        self._bound = True

    def bind_sim(self, sim: SimInterface) -> None:
        """Bind directly to a simulator (no env needed)."""
        self._resolve(sim)
        self.sim = sim
        self._bound = True

    @abstractmethod
    def _resolve(self, sim: SimInterface) -> None:
        """Resolve names to readers."""

    @abstractmethod
    def _value(self) -> float:
        """The unweighted cost of the current simulator state."""

    def compute(self, ctx: StepContext) -> float:
        if not self._bound:
            raise RuntimeError(f"Cost term {self.name!r} is not bound; CostWrapper binds it (or call bind(env)).")
        return self._value()
