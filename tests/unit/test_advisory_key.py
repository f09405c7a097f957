"""The advisory lock key's SQL: the server's hash of the name, as every release keyed it,
and names that could break out of the literal refused."""

from __future__ import annotations

import pytest

from yishi.db import advisory_key


def test_the_key_is_the_servers_hash_of_the_name():
    assert advisory_key("yishi.vote/vote-0f3a") == "hashtextextended('yishi.vote/vote-0f3a', 0)"


@pytest.mark.parametrize("name", ["", "yishi.vote/x'); DROP TABLE events; --", "a\\b", "a\x00b", "名", "a b",
                                  "x" * 201])
def test_a_name_that_is_not_an_ids_characters_is_refused(name):
    with pytest.raises(ValueError, match="advisory lock name"):
        advisory_key(name)
