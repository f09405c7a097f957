"""``yishi token``: the development issuer's tokens, as `./dev run` users mint them."""

from __future__ import annotations

import jwt
from typer.testing import CliRunner

from yishi.auth import dev_issuer
from yishi.cli import app


def test_token_is_signed_by_the_development_issuer(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["token", "--sub", "w-1", "--role", "community_worker", "--role", "chair",
                                      "--district", "chaoyang", "--seat", "s-1", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    issuer = dev_issuer()
    assert issuer.directory.is_relative_to(tmp_path)
    key = jwt.PyJWKSet.from_dict(issuer.jwks()).keys[0]
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=issuer.audience, issuer=issuer.issuer)
    assert (claims["sub"], claims["district"], claims["roles"], claims["seats"]) == \
        ("w-1", "chaoyang", ["community_worker", "chair"], ["s-1"])
    assert claims["exp"] - claims["iat"] == 60


def test_token_refuses_roles_a_token_cannot_grant(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    for role in ("system", "mayor"):
        result = CliRunner().invoke(app, ["token", "--sub", "w-1", "--role", role])
        assert result.exit_code == 2 and "unknown role" in result.output
