"""Whom a caller acts for: the ``acts_for`` claim, the permission table's parties, the
one shared check, and the development issuer that mints the claim."""

from __future__ import annotations

import jwt
import pytest
from typer.testing import CliRunner

from contracts.common import Actor, Role
from contracts.oversight import AcceptTask, RecordInspection
from contracts.permissions import ANY_PARTY, PARTIES, PERMISSIONS, SCOPED_ROLES, Party, acts_for
from yishi.auth import Principal, Unauthenticated, dev_issuer, principal_from_claims
from yishi.cli import app
from yishi.commands import authorise_party
from yishi.rules import Rejected
from yishi.settings import Settings

CLAIMS = {"sub": "staff-1", "district": "gulou", "roles": ["implementer"]}
TASK = {Party.IMPLEMENTER: "org-green", Party.COUNCIL: "council-1"}


def test_the_claim_lists_parties_and_its_absence_lists_none():
    settings = Settings(_env_file=None)
    listed = principal_from_claims({**CLAIMS, "acts_for": ["org-green", "*", "bad id", 7]}, settings)
    assert listed.acts_for == frozenset({"org-green", ANY_PARTY})
    assert principal_from_claims(CLAIMS, settings).acts_for == frozenset()
    with pytest.raises(Unauthenticated):
        principal_from_claims({**CLAIMS, "acts_for": "org-green"}, settings)
    renamed = Settings(_env_file=None, auth_acts_for_claim="attributes.orgs")
    assert principal_from_claims({**CLAIMS, "attributes": {"orgs": ["org-1"]}}, renamed).acts_for == {"org-1"}


def test_every_command_with_a_party_is_in_the_table_and_sent_by_a_scoped_role():
    for name in PARTIES:
        assert PERMISSIONS[name] & SCOPED_ROLES, name


def test_a_scoped_role_acts_only_for_the_listed_party_of_the_record():
    assert acts_for("AcceptTask", Role.IMPLEMENTER, {"org-green"}, TASK)
    assert not acts_for("AcceptTask", Role.IMPLEMENTER, {"org-other", "council-1"}, TASK)
    assert not acts_for("AcceptTask", Role.IMPLEMENTER, frozenset(), TASK)  # no claim: no party
    assert acts_for("AcceptTask", Role.IMPLEMENTER, {ANY_PARTY}, TASK)
    assert acts_for("RecordInspection", Role.SUPERVISOR, {"council-1"}, TASK)
    assert not acts_for("RecordInspection", Role.SUPERVISOR, {"org-green"}, TASK)
    assert acts_for("AssignTask", Role.OFFICIAL, frozenset(), TASK)  # not a scoped role: district-wide
    assert acts_for("MakeStatement", Role.IMPLEMENTER, frozenset(), TASK)  # a command without a party


def test_a_council_s_chair_and_workers_act_for_it_in_proposals_and_voting():
    council = {Party.COUNCIL: "council-1"}
    for name in ("SeatMember", "PublishProposal", "RequestVote", "EscalateProposal", "OpenVote", "CloseVote"):
        for role in (Role.COMMUNITY_WORKER, Role.CHAIR):
            if role in PERMISSIONS[name]:
                assert acts_for(name, role, {"council-1"}, council), (name, role)
                assert not acts_for(name, role, {"council-2"}, council), (name, role)
                assert not acts_for(name, role, frozenset(), council), (name, role)
        assert acts_for(name, Role.OFFICIAL, frozenset(), council)  # district-wide
    # A council with no parent is set up by district-wide staff only.
    assert not acts_for("FormCouncil", Role.COMMUNITY_WORKER, {"council-1"}, {Party.COUNCIL: None})
    assert acts_for("FormCouncil", Role.COMMUNITY_WORKER, {ANY_PARTY}, {Party.COUNCIL: None})
    # Speech and ballots are not scoped: an implementer speaks, a chair votes as an elector.
    assert "MakeStatement" not in PARTIES and "CastBallot" not in PARTIES


def test_the_shared_check_refuses_with_not_authorised_and_spares_the_platform():
    staff = Actor(id="staff-1", role=Role.IMPLEMENTER)
    accept = AcceptTask(district="gulou", actor=staff, task_id="task-1")
    authorise_party(Principal.of_actor(staff, "gulou", acts_for=["org-green"]), accept, TASK, "task-1")
    with pytest.raises(Rejected) as refused:
        authorise_party(Principal.of_actor(staff, "gulou"), accept, TASK, "task-1")
    assert (refused.value.reason, refused.value.subject) == ("not_authorised", "task-1")
    assert "implementer org-green" in refused.value.message
    authorise_party(Principal.of_platform("oversight"), accept, TASK)
    supervisor = Actor(id="sup-1", role=Role.SUPERVISOR)
    inspect = RecordInspection(district="gulou", actor=supervisor, inspection_id="i-1", resolution_id="res-1",
                               task_id="task-1", inspector_ids=["sup-1"], aspects=["quality"],
                               finding="satisfactory", notes="ok")
    with pytest.raises(Rejected):
        authorise_party(Principal.of_actor(supervisor, "gulou", acts_for=["council-2"]), inspect, TASK)


def test_yishi_token_mints_the_claim_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    issuer = dev_issuer()
    key = jwt.PyJWKSet.from_dict(issuer.jwks()).keys[0]

    def claims(*args: str) -> dict:
        result = CliRunner().invoke(app, ["token", "--sub", "staff-1", "--role", "implementer", *args])
        assert result.exit_code == 0, result.output
        return jwt.decode(result.stdout.strip(), key, algorithms=["RS256"], audience=issuer.audience)

    assert claims("--acts-for", "org-green", "--acts-for", "org-blue")["acts_for"] == ["org-green", "org-blue"]
    assert "acts_for" not in claims()
