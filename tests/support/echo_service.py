"""A minimal service for infrastructure tests: it consumes ``{district}.proposals.events``
and, for each message, records an effect row and appends an event to its own store.

Run as a process with ``python -m tests.support.echo_service`` (settings from YISHI_*).
With ``ECHO_CRASH_MARKER`` set, the process SIGKILLs itself at the first Kafka offset
commit after an effect, i.e. after the effect committed and before the offset did.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from yishi.names import events_topic
from yishi.runtime import ServiceContext, ServiceSpec
from yishi.store import Metadata, NewEvent

MIGRATIONS = Path(__file__).resolve().parent / "echo_migrations"
"""Its table ``effects`` (migrate the schema before starting it)."""


def wire(ctx: ServiceContext) -> None:
    async def handle(envelope, conn) -> None:
        await conn.execute("INSERT INTO effects (message_id, body) VALUES ($1, $2)", envelope.id, envelope.data)
        await ctx.store.append(
            f"echo-{envelope.source}-{envelope.id}", 0, [NewEvent("tests.echo:Echoed", envelope.data)],
            Metadata(actor="echo", district=envelope.district, correlation_id=envelope.correlation_id,
                     causation_id=envelope.id, occurred_at=ctx.clock.now()),
            conn=conn,
        )
        marker = os.environ.get("ECHO_CRASH_MARKER")
        if marker and not os.path.exists(marker):
            open(marker, "w").close()

    ctx.consume("echo", [events_topic(d, "proposals") for d in ctx.settings.districts], handle, retry_delay=0.2)


def spec() -> ServiceSpec:
    return ServiceSpec(name="notify", migrations=MIGRATIONS, wire=wire)


def _crash_on_commit_after_effect() -> None:
    from aiokafka import AIOKafkaConsumer

    marker = os.environ["ECHO_CRASH_MARKER"]
    original = AIOKafkaConsumer.commit

    async def commit(self, *args, **kwargs):
        if os.path.exists(marker) and not os.path.exists(marker + ".crashed"):
            open(marker + ".crashed", "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return await original(self, *args, **kwargs)

    AIOKafkaConsumer.commit = commit


if __name__ == "__main__":
    import uvicorn

    from yishi.runtime import create_app
    from yishi.settings import Settings

    if os.environ.get("ECHO_CRASH_MARKER"):
        _crash_on_commit_after_effect()
    settings = Settings()
    uvicorn.run(create_app(spec(), settings), host="127.0.0.1", port=settings.http_port, log_config=None)
