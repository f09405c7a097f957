"""What the proposals aggregates share: their stream ids, and the fixed orders and tables
their rules consult (council levels, deliberation steps and who speaks in them, the
majority rules a council's rule allows)."""

from __future__ import annotations

import uuid

from contracts.common import CouncilLevel, MajorityRule
from contracts.proposals import DeliberationStep, SpeakerRole

_NAMESPACE = uuid.UUID("5b0e8f3c-4f7e-4d7a-9a57-2f1a3c0b9e11")

LEVELS: tuple[str, ...] = tuple(level.value for level in CouncilLevel)
"""The five council levels, lowest first: a parent sits strictly higher."""

STEPS: tuple[str, ...] = tuple(step.value for step in DeliberationStep)
"""The five deliberation steps in the order they are taken."""

# Who may speak in each step. Debate is open to every side; the expert step to experts.
STEP_ROLES: dict[str, frozenset[str]] = {
    DeliberationStep.MOTION: frozenset({SpeakerRole.PROPOSER}),
    DeliberationStep.SECONDING: frozenset({SpeakerRole.SECONDER}),
    DeliberationStep.OBJECTION: frozenset({SpeakerRole.OBJECTOR}),
    DeliberationStep.DEBATE: frozenset(
        {SpeakerRole.PROPOSER, SpeakerRole.SECONDER, SpeakerRole.OBJECTOR, SpeakerRole.SUPPORTER, SpeakerRole.CHAIR}
    ),
    DeliberationStep.EXPERT_COMMENT: frozenset({SpeakerRole.EXPERT}),
}

# The majority rules a council's rule allows a vote to use: itself, or one at least as
# strict (every tally the stricter rule adopts, the council's adopts too). Absolute
# counts the electorate, the others the ballots cast, so neither implies the other
# except through unanimity of ballots cast, which implies none that count the electorate.
AT_LEAST_AS_STRICT: dict[str, frozenset[str]] = {
    MajorityRule.SIMPLE: frozenset({MajorityRule.SIMPLE, MajorityRule.ABSOLUTE, MajorityRule.TWO_THIRDS,
                                    MajorityRule.UNANIMITY, MajorityRule.CONSENSUS}),
    MajorityRule.ABSOLUTE: frozenset({MajorityRule.ABSOLUTE}),
    MajorityRule.TWO_THIRDS: frozenset({MajorityRule.TWO_THIRDS, MajorityRule.UNANIMITY}),
    MajorityRule.CONSENSUS: frozenset({MajorityRule.CONSENSUS, MajorityRule.UNANIMITY}),
    MajorityRule.UNANIMITY: frozenset({MajorityRule.UNANIMITY}),
    MajorityRule.APPROVAL: frozenset({MajorityRule.APPROVAL}),
}


def stream_id(kind: str, district: str, public_id: str) -> uuid.UUID:
    """The aggregate id of the ``kind`` named ``public_id`` in ``district``."""
    return uuid.uuid5(_NAMESPACE, f"{district}/{kind}/{public_id}")
