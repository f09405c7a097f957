"""The origin of a service's Merkle log names its note signatures too, so it must be a
valid C2SP key name for every deployment: several districts, or an operator's setting."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from yishi.audit.checkpoints import Checkpointer, default_origin
from yishi.settings import Settings
from yishi.tlog import note


def test_the_default_origin_of_several_districts_signs_notes():
    origin = default_origin("voting", ["gulou", "chaoyang"])
    assert origin == "yishi.gulou,chaoyang/voting"
    checkpointer = Checkpointer("voting", Ed25519PrivateKey.generate(), origin=origin)
    signed = note.sign_checkpoint(note.Checkpoint(origin, 3, bytes(32)), checkpointer.signer)
    checkpoint, _ = note.open_checkpoint(signed, note.Verifier.parse(checkpointer.verifier_key))
    assert (checkpoint.origin, checkpoint.size) == (origin, 3)


@pytest.mark.parametrize("origin", ["", "yishi.a+b/voting", "yishi gulou/voting"])
def test_an_origin_that_cannot_name_a_key_is_refused_at_start(origin):
    with pytest.raises(ValidationError, match="log origin"):
        Settings(log_origin=origin)
