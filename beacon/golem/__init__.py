"""A whole Golem network on this machine (``beacon golem devnet``) and the stand-ins it needs.

See :mod:`beacon.golem.devnet`; the stand-ins and why are in docs/decisions/1101-golem-devnet-standins.md.
"""
