"""The market strategy that makes a Golem "region": offers from providers outside its allowlist are refused.

Imported only by the Golem executor (it needs ``yapapi``, the ``golem`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from yapapi.strategy import SCORE_REJECTED, LeastExpensiveLinearPayuMS, WrappingMarketStrategy

NODE_NAME_PROPERTY = "golem.node.id.name"
MAX_REMEMBERED_REFUSALS = 10_000


class RegionAllowlistStrategy(WrappingMarketStrategy):
    """Scores offers with ``base_strategy``, after refusing every provider not allowlisted for the region.

    An allowlist entry matches a provider's node id (``0x…``, case-insensitive) or its node name exactly.
    """

    def __init__(self, region: str, allowed: Iterable[str], base_strategy: Any = None) -> None:
        super().__init__(base_strategy or LeastExpensiveLinearPayuMS())
        self.region = region
        entries = [entry.strip() for entry in allowed if entry.strip()]
        if not entries:
            raise ValueError(f"the provider allowlist of region {region} is empty")
        self.allowed_ids = frozenset(e.lower() for e in entries if e.lower().startswith("0x"))
        self.allowed_names = frozenset(e for e in entries if not e.lower().startswith("0x"))
        self.refused: dict[str, str | None] = {}
        """Provider id → name of every offer refused so far (bounded by the number of providers seen)."""

    def allows(self, provider_id: str | None, provider_name: str | None) -> bool:
        if provider_id and provider_id.lower() in self.allowed_ids:
            return True
        return bool(provider_name) and provider_name in self.allowed_names

    async def score_offer(self, offer: Any) -> float:
        name = offer.props.get(NODE_NAME_PROPERTY)
        if not self.allows(offer.issuer, name):
            if len(self.refused) < MAX_REMEMBERED_REFUSALS:
                self.refused[offer.issuer] = name
            return SCORE_REJECTED
        return float(await self.base_strategy.score_offer(offer))
