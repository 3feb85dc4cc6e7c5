"""Application states and the transitions between them (SPEC §5): a table and one check.

::

    received ─► invalid
            └─► awaiting_review ─► ineligible
                               └─► consent_issued ─► signed ─► profile_created
                                                                  ─► active ─► suspended
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where an application is; the values are stored and printed, never renamed."""

    RECEIVED = "received"
    INVALID = "invalid"
    AWAITING_REVIEW = "awaiting_review"
    INELIGIBLE = "ineligible"
    CONSENT_ISSUED = "consent_issued"
    SIGNED = "signed"
    PROFILE_CREATED = "profile_created"
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Actor(StrEnum):
    """Who caused an event; office users are recorded by their own name."""

    SYSTEM = "system"
    COMMISSION = "commission"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset({State.INVALID, State.AWAITING_REVIEW}),
    State.INVALID: frozenset(),
    State.AWAITING_REVIEW: frozenset({State.INELIGIBLE, State.CONSENT_ISSUED}),
    State.INELIGIBLE: frozenset(),
    State.CONSENT_ISSUED: frozenset({State.SIGNED}),
    State.SIGNED: frozenset({State.PROFILE_CREATED}),
    State.PROFILE_CREATED: frozenset({State.ACTIVE}),
    State.ACTIVE: frozenset({State.SUSPENDED}),
    State.SUSPENDED: frozenset({State.ACTIVE}),
}

#: States in which an organisation counts as having an open application.
OPEN_STATES = frozenset({State.AWAITING_REVIEW, State.CONSENT_ISSUED})


class DecisionError(Exception):
    """An office decision cannot be applied (unknown reference, no reason given)."""


class TransitionError(Exception):
    """An application cannot move from its state to the requested one."""

    def __init__(self, reference: str, current: State, target: State) -> None:
        self.reference = reference
        self.current = current
        self.target = target
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is final"
        super().__init__(
            f"{reference} is {current}; it cannot become {target} (possible next states: {allowed})"
        )


def check_transition(reference: str, current: State, target: State) -> None:
    """Raise :class:`TransitionError` unless ``current → target`` is in :data:`TRANSITIONS`."""
    if target not in TRANSITIONS[current]:
        raise TransitionError(reference, current, target)
