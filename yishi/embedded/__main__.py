"""``python -m yishi.embedded prepare``."""

from __future__ import annotations

import shutil
import sys

from yishi.embedded.kafka import KAFKA_POM, _classpath_file, _java, kafka_classpath, kafka_version


def _main(argv: list[str]) -> int:
    """``python -m yishi.embedded prepare``: resolve the broker's class path (./dev runs it)."""
    if argv[1:] != ["prepare"]:
        print("usage: python -m yishi.embedded prepare", file=sys.stderr)
        return 2
    if _java() is None or shutil.which("mvn") is None:
        return 0  # Tansu then; nothing to prepare
    fresh = _classpath_file().exists() and _classpath_file().stat().st_mtime >= KAFKA_POM.stat().st_mtime
    if not fresh:
        print(f"resolving Apache Kafka {kafka_version()} from Maven ({KAFKA_POM})", file=sys.stderr)
        kafka_classpath()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
