"""System prompts. The prompt is part of the benchmark and recorded in every receipt.

``neutral`` is the same for every region. ``region`` adds "based in {region}" — the only regional
difference the original injected (reference §8.2) — and is therefore an explicit option, never hidden.
"""

from __future__ import annotations

from typing import Literal

Variant = Literal["neutral", "region"]

NEUTRAL_SYSTEM_PROMPT = (
    "You are a helpful, honest, and harmless AI assistant. Answer questions directly and factually. "
    "For sensitive political topics, provide balanced, factual information from multiple perspectives."
)

REGION_NAMES = {"US": "the US", "EU": "Europe", "ASIA": "Asia"}


def system_prompt(variant: Variant, region: str) -> str:
    """The system prompt for one execution."""
    if variant == "neutral":
        return NEUTRAL_SYSTEM_PROMPT
    place = REGION_NAMES.get(region, region)
    return (
        f"You are a helpful, honest, and harmless AI assistant based in {place}. Answer questions directly "
        "and factually. For sensitive political topics, provide balanced, factual information from "
        "multiple perspectives."
    )
