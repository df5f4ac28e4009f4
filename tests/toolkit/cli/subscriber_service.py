"""Subscribes to --topic and appends each event it receives, as a JSON line, to --out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import micro


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    ours, rest = parser.parse_known_args(argv)
    service = micro.Service()

    def append(line: str) -> None:
        with open(ours.out, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    @service.subscribe(ours.topic)
    async def record(event: dict[str, Any]) -> None:
        append(json.dumps(event))

    service.run(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
