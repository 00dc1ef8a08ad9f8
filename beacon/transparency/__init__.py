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

:func:`beacon.boot.open_runtime` builds the log and the content store of a process.
"""

from __future__ import annotations

from beacon.transparency.ipfs import ContentStore, KuboClient
from beacon.transparency.log import TransparencyLog
from beacon.transparency.note import Signer

__all__ = ["ContentStore", "KuboClient", "Signer", "TransparencyLog"]
