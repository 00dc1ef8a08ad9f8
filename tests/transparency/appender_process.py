"""A separate writer process for the crash and concurrency tests (run with ``python -m``).

Appends ``count`` leaves with refs ``<prefix>-<i>`` in transactions of ``batch`` leaves (plus the
shared refs ``shared-<i>`` for ``i < shared``, the same entry from every process), publishes a
checkpoint every ``publish_every`` transactions, and prints ``committed <n>`` and ``checkpoint <size>``
lines once each is durable.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from beacon.keys import Ed25519Key
from beacon.store import Database
from beacon.transparency.log import LeafInput, TransparencyLog
from beacon.transparency.note import Signer

SEED = bytes(range(32))
ORIGIN = "beacon.test/log"


async def main(args: argparse.Namespace) -> None:
    db = Database(args.url)
    log = TransparencyLog(db, Signer(ORIGIN, Ed25519Key.from_seed(SEED)), interval_s=3600, max_leaves=10**9)
    items = [LeafInput("receipt", f"shared-{i}", b'{"shared":%d}' % i) for i in range(args.shared)]
    items += [
        LeafInput("receipt", f"{args.prefix}-{i}", json.dumps({"p": args.prefix, "i": i}).encode())
        for i in range(args.count)
    ]
    committed = 0
    for number, start in enumerate(range(0, len(items), args.batch), start=1):
        async with db.begin() as conn:
            await log.append_many(conn, items[start : start + args.batch])
        committed += len(items[start : start + args.batch])
        print(f"committed {committed}", flush=True)
        if number % args.publish_every == 0:
            checkpoint = await log.publish_checkpoint()
            assert checkpoint is not None
            print(f"checkpoint {checkpoint.size}", flush=True)
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--prefix", default="p")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--shared", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--publish-every", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
