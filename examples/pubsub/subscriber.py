"""The mailer: receives ``UserCreated`` events, welcomes the user, publishes ``Welcomed``.

    python examples/pubsub/subscriber.py                    # default http broker, mDNS
    MICRO_BROKER=nats python examples/pubsub/subscriber.py  # or redis, rabbitmq, mqtt, ...

Two mailers started side by side share the events (queue group ``mailer``); every
``Audit`` instance sees all of them (broadcast).
"""

from __future__ import annotations

import logging
import os
import sys

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

import micro
from examples.pubsub.events import TOPIC, WELCOMED, UserCreated, Welcomed
from micro import metadata

log = logging.getLogger("mailer")
service = micro.Service("example.pubsub.mailer")


@service.subscribe(TOPIC, queue="mailer")
async def welcome(event: UserCreated) -> None:
    sender = metadata.get_value("Micro-From-Service")
    print(f"welcome {event.id} {event.email} from {sender}", flush=True)
    await service.client.publish(WELCOMED, Welcomed(user_id=event.id, by="mailer"))


class Audit:
    async def user_created(self, event: UserCreated) -> None:
        log.info("audit: user %d created", event.id)


service.subscribe(TOPIC, Audit())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    service.run()


if __name__ == "__main__":
    main()
