"""The transparency log: RFC 6962 Merkle tree, signed checkpoints, proofs, content-addressed bundles."""
