"""Contact/collision cost from the simulator's contact list."""

from __future__ import annotations

from collections.abc import Sequence

from shieldgym.costs.sim import ContactQuery, SimCostTerm, SimInterface

__all__ = ["ContactCost"]


class ContactCost(SimCostTerm):
    """Cost for contacts between a group of bodies (the robot's links) and other bodies.

    Every step the simulator's contact list is filtered with masks resolved at bind (MuJoCo: one
    vectorised pass over ``data.contact.geom``; PyBullet: ``getContactPoints`` per resolved body pair).

    Args:
        name: key in ``info["costs"]``.
        bodies: the first group (names or wildcard patterns, e.g. ``"robot0_link*"``).
        others: the second group (table, obstacles, non-target objects); ``None``: every other body.
        exclude: bodies removed from ``others`` (e.g. the rest of the robot, the target object).
        mode: ``"indicator"``: 1.0 if any contact, else 0.0; ``"count"``: the number of contact points.
        max_distance: a contact counts when its signed distance is ``<= max_distance`` (m; negative
            is penetration). ``0.0`` counts touching and penetrating contacts.
        weight: multiplier in ``info["cost"]``.
        sim: use this simulator instead of looking it up on the env.

    Raises:
        ValueError: at bind, a name matching no body (the message lists the valid body names).

    >>> ContactCost(bodies=["right_l*"], others=["tablelink"], mode="count")  # doctest: +ELLIPSIS
    ContactCost(name='contact', ...)
    """

    modes = ("indicator", "count")

    def __init__(
        self,
        name: str = "contact",
        *,
        bodies: Sequence[str] | str,
        others: Sequence[str] | str | None = None,
        mode: str = "indicator",
        max_distance: float = 0.0,
        exclude: Sequence[str] | str = (),
        weight: float = 1.0,
        sim: SimInterface | None = None,
    ) -> None:
        super().__init__(name, weight, mode=mode, sim=sim)
        self.bodies = (bodies,) if isinstance(bodies, str) else tuple(bodies)
        self.others = (others,) if isinstance(others, str) else (None if others is None else tuple(others))
        self.max_distance = float(max_distance)
        self.exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
        self._query: ContactQuery | None = None
        self._indicator = mode == "indicator"

    def _resolve(self, sim: SimInterface) -> None:
        self._query = sim.contact_query(self.bodies, self.others, self.max_distance, self.exclude)
        self._count = self._query.count

    def _value(self) -> float:
        n = self._count()
        if self._indicator:
            return 1.0 if n > 0 else 0.0
        return float(n)

    def __repr__(self) -> str:
        return (
            f"ContactCost(name={self.name!r}, bodies={self.bodies}, others={self.others}, mode={self.mode!r}, "
            f"weight={self.weight})"
        )
