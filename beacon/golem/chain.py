"""The devnet's chain: anvil (Foundry's local EVM node) as yagna's "hoodi" network, with tGLM on it.

anvil runs with hoodi's chain id (560048), so yagna's real ``erc20`` driver pays on it; the devnet's
ERC-20 (:file:`tglm.sol`, runtime bytecode committed in :file:`tglm.json`) is put with ``anvil_setCode``
at the address yagna's hoodi config names for tGLM. Balances are read straight from the contract.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

HOODI_CHAIN_ID = 560048
TGLM_ADDRESS = "0x55555555555556AcFf9C332Ed151758858bd7a26"
WEI = Decimal(10) ** 18
ANVIL_VERSION = "1.7.1"
ANVIL_NPM_PACKAGE = f"@foundry-rs/anvil-linux-amd64@{ANVIL_VERSION}"
_CONTRACT = Path(__file__).with_name("tglm.json")
_BALANCE_OF = "0x70a08231"
_MINT = "0x40c10f19"


class ChainError(RuntimeError):
    pass


def find_anvil() -> str | None:
    """anvil from PATH, else the binary of the npm package installed by ``make setup`` (``.npm/``)."""
    found = shutil.which("anvil")
    if found:
        return found
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / ".npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
        if candidate.is_file():
            return str(candidate)
    return None


def runtime_bytecode() -> str:
    return str(json.loads(_CONTRACT.read_text())["runtime_bytecode"])


def _word(value: int | str) -> str:
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


class Chain:
    """JSON-RPC to anvil."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, trust_env=False)
        self._id = 0

    def close(self) -> None:
        self._http.close()

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        try:
            reply = self._http.post(self.url, json=body).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainError(f"{method} at {self.url}: {type(exc).__name__}: {exc}") from exc
        if "error" in reply:
            raise ChainError(f"{method}: {reply['error']}")
        return reply.get("result")

    def chain_id(self) -> int:
        return int(self.rpc("eth_chainId"), 16)

    def deploy_tglm(self) -> None:
        self.rpc("anvil_setCode", TGLM_ADDRESS, runtime_bytecode())

    def fund(self, address: str, glm: Decimal, eth: Decimal = Decimal(10)) -> None:
        """Give ``address`` ETH for gas and mint it ``glm`` tGLM (from anvil's first unlocked account)."""
        self.rpc("anvil_setBalance", address, hex(int(eth * WEI)))
        sender = self.rpc("eth_accounts")[0]
        data = _MINT + _word(address) + _word(int(glm * WEI))
        tx = self.rpc("eth_sendTransaction", {"from": sender, "to": TGLM_ADDRESS, "data": data})
        self.rpc("anvil_mine", 1)
        receipt = self.rpc("eth_getTransactionReceipt", tx)
        if not receipt or int(receipt["status"], 16) != 1:
            raise ChainError(f"minting tGLM to {address} failed: {receipt}")

    def glm_balance(self, address: str) -> Decimal:
        raw = self.rpc("eth_call", {"to": TGLM_ADDRESS, "data": _BALANCE_OF + _word(address)}, "latest")
        return Decimal(int(raw, 16)) / WEI

    def has_tglm(self) -> bool:
        code = self.rpc("eth_getCode", TGLM_ADDRESS, "latest")
        return bool(code) and code != "0x"
