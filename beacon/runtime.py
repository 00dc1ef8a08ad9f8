"""The runtime: the long-lived services one process holds, built once from Settings.

The API, the workers, the relay and the CLI all get their database, keys and queue from here, so
there is one place that decides "embedded or service mode".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from beacon.config import Settings
from beacon.keys import Ed25519Key, TrustedKeys, load_or_create_key
from beacon.store import Database

log = logging.getLogger("beacon.runtime")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    trusted_keys: TrustedKeys
    runner_key: Ed25519Key
    """Signs receipts, checkpoints, diff reports and harness receipts."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Services registered by subsystems at start (queue, log, content store, …); see ``start``."""

    @classmethod
    async def start(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.effective_database_url)
        if migrate:
            await db.migrate()
        runner_key = load_or_create_key(settings.runner_key_file or settings.data_dir / "runner-key.json")
        runtime = cls(
            settings=settings,
            db=db,
            trusted_keys=TrustedKeys.from_entries(settings.trusted_key_entries),
            runner_key=runner_key,
        )
        log.info(
            "runtime started",
            extra={
                "database": db.dialect,
                "runner_kid": runner_key.kid,
                "trusted_keys": len(runtime.trusted_keys),
            },
        )
        return runtime

    async def stop(self) -> None:
        for name, service in reversed(list(self.extras.items())):
            close = getattr(service, "aclose", None) or getattr(service, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                log.exception("error while closing %s", name)
        await self.db.close()
