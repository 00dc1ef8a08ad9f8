"""The portal's signer (js/crypto.js) against Beacon's: JS signs → Python verifies, Python signs → JS verifies.

The expected message bytes and the primary scheme come from the Python side at test time
(``beacon.intake.signing_message`` and ``sign_jobspec``'s default scheme), so a change of the
primary scheme (a domain-separation prefix, say) that js/crypto.js does not follow fails here.
"""

from __future__ import annotations

import base64
import inspect
from typing import Any

import pytest

from beacon.intake import IntakeError, Scheme, sign_jobspec, stamp, verify_jobspec
from beacon.intake.signatures import signing_message
from beacon.keys import Ed25519Key, key_id
from beacon.portal.browser import BrowserError, Page
from tests.portal.conftest import run_js

PRIMARY: Scheme = inspect.signature(sign_jobspec).parameters["scheme"].default

JOBSPEC: dict[str, Any] = {
    "id": "portal-crosscheck",
    "version": "1",
    "benchmark": {"name": "bias-detection", "container": {"image": "beacon/bias-detection"}},
    "constraints": {"regions": ["US", "EU"], "min_regions": 2},
    "questions": ["math_basic"],
    "options": {"max_tokens": 24, "temperature": 0.0, "seed": 42},
    "metadata": {"note": "<&> é 😀 \u2028", "ratio": 0.1, "big": 1e21},
}

SIGN_IN_JS = """
const c = await import('./js/crypto.js');
const { b64encode } = await import('./js/bytes.js');
const pair = seed ? await c.importSeed(seed) : await c.generateKeypair();
const signed = await c.signJobspec(document, pair);
return { signed, message: b64encode(c.signingMessage(signed)), extractable: pair.privateKey.extractable,
         kid: pair.kid, public_key: pair.publicKeyB64 };
"""


def _strict(document: dict[str, Any]) -> Scheme:
    """The scheme the runner's intake verifies ``document`` under, with every legacy scheme off."""
    return verify_jobspec(document, accept_go_strip=False, accept_portal_v1=False).scheme


def test_a_jobspec_signed_in_the_browser_verifies_in_python_under_the_primary_scheme(modules: Page) -> None:
    out = run_js(modules, SIGN_IN_JS, document=stamp(JOBSPEC), seed=None)
    signed = out["signed"]
    assert base64.b64decode(out["message"]) == signing_message(signed, PRIMARY)
    assert _strict(signed) is PRIMARY
    assert out["extractable"] is False
    tampered = {**signed, "questions": ["geography_basic"]}
    with pytest.raises(IntakeError) as refused:
        _strict(tampered)
    assert refused.value.code == "signature_mismatch"


def test_a_jobspec_signed_in_python_verifies_in_the_browser(modules: Page) -> None:
    key = Ed25519Key.generate()
    signed = sign_jobspec(stamp(JOBSPEC), key)
    verify = "const c = await import('./js/crypto.js'); return await c.verifyJobspec(document);"
    assert run_js(modules, verify, document=signed) is True
    assert (
        run_js(modules, verify, document={**signed, "constraints": {"regions": ["US"], "min_regions": 1}})
        is False
    )
    other = Ed25519Key.generate()
    assert run_js(modules, verify, document={**signed, "public_key": other.public_key_b64}) is False


@pytest.mark.parametrize("form", ["seed", "go"])
def test_an_imported_seed_is_the_same_key_as_in_python(modules: Page, form: str) -> None:
    key = Ed25519Key.generate()
    raw = key.seed if form == "seed" else key.seed + key.public_key  # docs/signing.md: portal seed, Go form
    out = run_js(modules, SIGN_IN_JS, document=stamp(JOBSPEC), seed=base64.b64encode(raw).decode())
    assert out["public_key"] == key.public_key_b64
    assert out["kid"] == key_id(key.public_key)
    assert out["extractable"] is False
    assert (
        out["signed"]["signature"] == sign_jobspec(out["signed"], key)["signature"]
    )  # Ed25519 is deterministic


def test_the_private_key_cannot_be_exported(modules: Page) -> None:
    body = """
    const c = await import('./js/crypto.js');
    const pair = await c.generateKeypair();
    try { await crypto.subtle.exportKey('pkcs8', pair.privateKey); return 'exported'; } catch (e) { return e.name; }
    """
    assert run_js(modules, body) == "InvalidAccessError"


def test_a_malformed_seed_is_refused_with_a_reason(modules: Page) -> None:
    body = "const c = await import('./js/crypto.js'); await c.importSeed(seed);"
    with pytest.raises(BrowserError, match="32 bytes"):
        run_js(modules, body, seed=base64.b64encode(b"short").decode())
