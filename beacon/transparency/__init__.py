"""The transparency log: RFC 6962 Merkle tree, signed checkpoints, proofs, content-addressed bundles.

| module        | what                                                                          |
|---------------|-------------------------------------------------------------------------------|
| merkle.py     | RFC 6962 hashing and proofs, RFC 9162 verification (pure functions)           |
| note.py       | C2SP signed notes (Ed25519), verifier keys                                   |
| checkpoint.py | C2SP tlog-checkpoint                                                          |
| proof.py      | c2sp.org/tlog-proof@v1                                                        |
| log.py        | the persistent log: sequencer, stored subtree hashes, checkpoint publication |
| cid.py        | UnixFS CIDv1 (what ``ipfs add --cid-version=1 --raw-leaves`` gives)          |
| ipfs.py       | content store by CID, kubo RPC client, gateway reads (every read re-checked) |
| bundle.py     | job bundles: build, store, verify offline                                     |

:func:`attach` wires all of it into a :class:`~beacon.runtime.Runtime`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beacon.transparency.ipfs import ContentStore, KuboClient
from beacon.transparency.log import TransparencyLog
from beacon.transparency.note import Signer

if TYPE_CHECKING:
    from beacon.runtime import Runtime

BUNDLE_FINALIZER_ORDER = 20


def attach(runtime: Runtime, *, start_publisher: bool = True) -> TransparencyLog:
    """Create the log and content store of ``runtime``; register health checks and the bundle finalizer.

    Sets ``runtime.tlog`` and ``runtime.extras["tlog"]`` / ``["content"]`` (closed by ``Runtime.stop``)
    and starts the background checkpoint publisher.
    """
    from beacon.transparency.bundle import finalize_job_bundle

    settings = runtime.settings
    tlog = TransparencyLog(
        runtime.db,
        Signer(settings.log_origin, runtime.runner_key),
        interval_s=settings.checkpoint_interval_s,
        max_leaves=settings.checkpoint_max_leaves,
    )
    store = ContentStore(runtime.db, kubo=KuboClient(settings.ipfs_url) if settings.ipfs_url else None)
    runtime.tlog = tlog
    runtime.extras["tlog"] = tlog
    runtime.extras["content"] = store
    runtime.health_checks["transparency_log"] = tlog.health
    runtime.health_checks["content_store"] = store.health
    runtime.add_finalizer(BUNDLE_FINALIZER_ORDER, "bundle", finalize_job_bundle)
    if start_publisher:
        tlog.start()
    return tlog


def log_of(runtime: Runtime) -> TransparencyLog:
    """The runtime's transparency log (see :func:`attach`)."""
    tlog = runtime.extras.get("tlog")
    if not isinstance(tlog, TransparencyLog):
        raise RuntimeError("the transparency log is not attached to this runtime")
    return tlog


def content_store_of(runtime: Runtime) -> ContentStore:
    """The runtime's content store (see :func:`attach`)."""
    store = runtime.extras.get("content")
    if not isinstance(store, ContentStore):
        raise RuntimeError("the content store is not attached to this runtime")
    return store


__all__ = ["ContentStore", "KuboClient", "Signer", "TransparencyLog", "attach", "content_store_of", "log_of"]
