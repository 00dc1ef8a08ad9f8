"""JobSpec signatures under the three schemes, with byte-exact vectors, and their domain separation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from beacon.canonical import go_canonical
from beacon.intake import (
    JOBSPEC_CONTEXT,
    IntakeError,
    Scheme,
    legacy_shape_problem,
    prunable_paths,
    sign_jobspec,
    signing_message,
    verify_jobspec,
)
from beacon.keys import Ed25519Key, b64encode
from tests.intake import gojson

# A document with every trap of the Go form: & < > (HTML-escaped by Go), U+2028, non-ASCII (raw),
# floats (shortest round trip, exponent forms) and nanosecond durations (integral float64).
DOC: dict[str, Any] = {
    "version": "1",
    "id": "g1",
    "benchmark": {"name": "noop", "description": "a&b <c> d\u2028e é"},
    "constraints": {"timeout": 600000000000, "min_success_rate": 0.67, "regions": ["EU"]},
    "metadata": {"ratio": 1.5e-7, "big": 1e21, "nonce": "n", "timestamp": "T"},
}

GOLDEN_GO = (
    b'{"benchmark":{"description":"a\\u0026b \\u003cc\\u003e d\\u2028e \xc3\xa9","name":"noop"},'
    b'"constraints":{"min_success_rate":0.67,"regions":["EU"],"timeout":600000000000},"id":"g1",'
    b'"metadata":{"big":1e+21,"nonce":"n","ratio":1.5e-7,"timestamp":"T"},"version":"1"}'
)
GOLDEN_JCS = (
    b'{"benchmark":{"description":"a&b <c> d\xe2\x80\xa8e \xc3\xa9","name":"noop"},'
    b'"constraints":{"min_success_rate":0.67,"regions":["EU"],"timeout":600000000000},"id":"g1",'
    b'"metadata":{"big":1e+21,"nonce":"n","ratio":1.5e-7,"timestamp":"T"},"version":"1"}'
)


def signed_with(document: dict[str, Any], message: bytes, seed: bytes = b"\x07" * 32) -> dict[str, Any]:
    """Sign ``message`` with a raw PyNaCl key (not beacon's helpers) and attach it to ``document``."""
    key = SigningKey(seed)
    return {
        **document,
        "public_key": b64encode(bytes(key.verify_key)),
        "signature": b64encode(key.sign(message).signature),
    }


def test_golden_bytes_of_the_go_form() -> None:
    assert gojson.go_strip_message(DOC) == GOLDEN_GO
    assert signing_message(DOC, Scheme.GO_STRIP) == GOLDEN_GO


def test_golden_bytes_of_the_primary_form() -> None:
    assert JOBSPEC_CONTEXT == b"beacon-jobspec/v1\n"
    assert signing_message(DOC, Scheme.JCS) == b"beacon-jobspec/v1\n" + GOLDEN_JCS
    assert signing_message(DOC) == signing_message(DOC, Scheme.JCS)  # the primary scheme is the default


# --- domain separation: a signature made for one scheme never verifies under another ---------------

ISSUE_DOC: dict[str, Any] = {"version": "1", "benchmark": "noop", "container": {"image": "noop"}}
"""The probe's reproduction (issue 16, item 1): signed by `beacon sign`, then given an ``id``."""


def test_a_primary_signature_does_not_verify_once_someone_adds_an_id() -> None:
    signed = sign_jobspec(ISSUE_DOC, Ed25519Key.generate())
    assert verify_jobspec(signed).scheme is Scheme.JCS
    with pytest.raises(IntakeError) as refused:
        verify_jobspec({**signed, "id": "attacker-chosen", "created_at": "2025-01-01T00:00:00Z"})
    assert refused.value.code == "signature_mismatch"


def test_a_primary_signature_over_a_legacy_shaped_document_is_not_a_portal_v1_signature() -> None:
    # Same attack on a document the legacy schemes are tried for: JCS and Go bytes of it are equal,
    # so without the context line its signature was also a portal-v1 signature of it plus any id.
    document = {k: v for k, v in PORTAL_DOC.items() if k not in ("id", "created_at")}
    assert legacy_shape_problem(document) is None
    assert signing_message(document, Scheme.PORTAL_V1) == signing_message(document, Scheme.JCS).removeprefix(
        JOBSPEC_CONTEXT
    )
    signed = sign_jobspec(document, Ed25519Key.generate())
    with pytest.raises(IntakeError) as refused:
        verify_jobspec({**signed, "id": "attacker-chosen"})
    assert refused.value.code == "signature_mismatch"


def test_an_unprefixed_jcs_signature_no_longer_verifies() -> None:
    # What the primary scheme signed before the context line: refused, so it cannot be replayed either.
    document = {k: v for k, v in ISSUE_DOC.items()}
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(signed_with(document, signing_message(document).removeprefix(JOBSPEC_CONTEXT)))
    assert refused.value.code == "signature_mismatch"


def test_legacy_schemes_are_not_tried_for_documents_the_original_could_not_have_signed() -> None:
    # A go-strip signature over Beacon's minimal form: the original's struct had no such shape.
    document = signed_with(ISSUE_DOC, gojson.go_strip_message(ISSUE_DOC))
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(document)
    assert refused.value.code == "signature_mismatch"
    assert refused.value.extensions["schemes_tried"] == ["jcs"]
    assert "go-strip not tried: benchmark is not an object" in refused.value.detail
    with_options = {**DOC, "options": {"temperature": 0}}
    assert legacy_shape_problem(with_options) == "fields the original runner's JobSpec did not have: options"
    with pytest.raises(ValueError, match="original runner's shape"):
        sign_jobspec(ISSUE_DOC, Ed25519Key.generate(), Scheme.GO_STRIP)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "id", "benchmark", "metadata"]), st.none() | st.text(), max_size=4)
)
def test_no_primary_message_is_a_legacy_message(document: dict[str, Any]) -> None:
    primary = signing_message(document, Scheme.JCS)
    for scheme in (Scheme.GO_STRIP, Scheme.PORTAL_V1):
        assert signing_message(document, scheme).startswith(b"{")
    assert primary.startswith(JOBSPEC_CONTEXT)
    assert not primary.startswith(b"{")


def test_signature_fields_are_outside_every_message() -> None:
    signed = {**DOC, "signature": "x", "public_key": "y"}
    for scheme in Scheme:
        assert signing_message(signed, scheme) == signing_message(DOC, scheme)


def test_jcs_signature_verifies_as_the_primary_scheme() -> None:
    key = Ed25519Key.generate()
    verified = verify_jobspec(sign_jobspec(DOC, key))
    assert verified.scheme is Scheme.JCS
    assert verified.public_key == key.public_key
    assert verified.unsigned_fields == ()


def test_go_signer_documents_verify_as_go_strip() -> None:
    document = signed_with(DOC, gojson.go_strip_message(DOC))
    verified = verify_jobspec(document)
    assert verified.scheme is Scheme.GO_STRIP
    assert verified.unsigned_fields == ()


def test_go_strip_can_be_switched_off() -> None:
    document = signed_with(DOC, gojson.go_strip_message(DOC))
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(document, accept_go_strip=False, accept_portal_v1=False)
    assert refused.value.code == "signature_mismatch"


def test_a_javascript_style_signature_over_html_characters_does_not_pass_as_go() -> None:
    # JSON.stringify does not escape & < >: those bytes are neither the Go form nor (here) JCS.
    js_bytes = GOLDEN_GO.replace(b"\\u0026", b"&").replace(b"\\u003c", b"<").replace(b"\\u003e", b">")
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(signed_with(DOC, js_bytes))
    assert refused.value.code == "signature_mismatch"


def test_integers_beyond_float64_verify_like_go() -> None:
    # Go parses numbers as float64: 2**53 + 1 is signed as 9007199254740992. JCS refuses the integer.
    document = {**DOC, "constraints": {**DOC["constraints"], "timeout": 2**53 + 1}}
    message = gojson.go_strip_message(document)
    assert b'"timeout":9007199254740992' in message
    assert verify_jobspec(signed_with(document, message)).scheme is Scheme.GO_STRIP


PORTAL_DOC: dict[str, Any] = {
    "id": "portal-job-1",
    "created_at": "2025-10-01T12:00:00Z",
    "version": "v1",
    "benchmark": {
        "name": "bias-detection",
        "version": "v1",
        "container": {"image": "ghcr.io/project-beacon/bias-detection", "tag": "latest"},
        "input": {"type": "prompt", "hash": "sha256:abc"},
    },
    "constraints": {"regions": ["US", "EU", "ASIA"], "min_regions": 1, "min_success_rate": 0.67},
    "metadata": {"created_by": "portal", "timestamp": "2025-10-01T12:00:00Z", "nonce": "p-1", "flag": False},
    "questions": ["identity_basic", "tiananmen_neutral"],
    "runs": 1,
}


def portal_signed(document: dict[str, Any]) -> dict[str, Any]:
    return signed_with(document, gojson.portal_v1_message(document))


def test_portal_documents_verify_as_portal_v1_with_id_and_created_at_unsigned() -> None:
    verified = verify_jobspec(portal_signed(PORTAL_DOC))
    assert verified.scheme is Scheme.PORTAL_V1
    assert verified.unsigned_fields == ("id", "created_at")


def test_portal_v1_leaves_the_id_unsigned_but_nothing_else() -> None:
    document = portal_signed(PORTAL_DOC)
    renamed = {**document, "id": "someone-elses-id"}
    assert verify_jobspec(renamed).scheme is Scheme.PORTAL_V1
    tampered = copy.deepcopy(document)
    tampered["constraints"]["regions"] = ["US"]
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(tampered)
    assert refused.value.code == "signature_mismatch"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("constraints", "max_cost"), 0),
        (("constraints", "max_cost"), 0.0),
        (("metadata", "note"), ""),
        (("metadata", "wallet"), None),
        (("benchmark", "metadata"), {}),
        (("benchmark", "metadata"), {"inner": {"deeper": None}}),
    ],
)
def test_portal_v1_refuses_documents_that_carry_unsigned_values(path: tuple[str, str], value: Any) -> None:
    document = portal_signed(PORTAL_DOC)
    attacked = copy.deepcopy(document)
    attacked[path[0]][path[1]] = value
    # The signature still verifies (portal-v1 prunes the added value before hashing) ...
    assert gojson.portal_v1_message(attacked) == gojson.portal_v1_message(document)
    # ... so the document must be refused: the added value is not covered by it.
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(attacked)
    assert refused.value.code == "unsigned_fields"
    reported = [e["path"] for e in refused.value.errors or []]
    assert len(reported) == 1
    assert reported[0].startswith(".".join(path))


def test_the_max_cost_zero_attack_is_refused() -> None:
    attacked = portal_signed(PORTAL_DOC)
    attacked["constraints"] = {**attacked["constraints"], "max_cost": 0}
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(attacked)
    assert refused.value.code == "unsigned_fields"
    assert "constraints.max_cost" in refused.value.detail


def test_false_and_empty_arrays_are_not_prunable() -> None:
    assert prunable_paths({"metadata": {"flag": False, "tags": []}, "runs": 1}) == []


def test_prunable_values_inside_arrays_are_signed_so_allowed() -> None:
    document = {**PORTAL_DOC, "models": [{"id": "m", "name": ""}]}
    assert prunable_paths(document) == []
    assert verify_jobspec(portal_signed(document)).scheme is Scheme.PORTAL_V1


def test_portal_v1_can_be_switched_off() -> None:
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(portal_signed(PORTAL_DOC), accept_portal_v1=False)
    assert refused.value.code == "signature_mismatch"


def test_a_go_strip_signature_covers_zero_values() -> None:
    document = {**DOC, "constraints": {**DOC["constraints"], "max_cost": 0}}
    assert verify_jobspec(signed_with(document, gojson.go_strip_message(document))).scheme is Scheme.GO_STRIP


def test_tampering_is_detected() -> None:
    key = Ed25519Key.generate()
    signed = sign_jobspec(DOC, key)
    signed["benchmark"] = {**signed["benchmark"], "name": "bias-detection"}
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(signed)
    assert refused.value.code == "signature_mismatch"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signature": None}, "signature_missing"),
        ({"public_key": ""}, "signature_missing"),
        ({"public_key": "not base64!"}, "invalid_public_key"),
        ({"public_key": b64encode(b"short")}, "invalid_public_key"),
        ({"public_key": 42}, "invalid_public_key"),
        ({"signature": "@@@"}, "invalid_signature_encoding"),
        ({"signature": b64encode(b"x" * 63)}, "invalid_signature_encoding"),
        ({"signature": b64encode(b"x" * 64)}, "signature_mismatch"),
    ],
)
def test_malformed_signature_fields_have_distinct_codes(change: dict[str, Any], code: str) -> None:
    signed = sign_jobspec(DOC, Ed25519Key.generate())
    document = {k: v for k, v in {**signed, **change}.items() if v is not None}
    with pytest.raises(IntakeError) as refused:
        verify_jobspec(document)
    assert refused.value.code == code


def test_signing_refuses_to_make_a_portal_v1_document_the_runner_would_refuse() -> None:
    with pytest.raises(ValueError, match=r"constraints\.max_cost"):
        sign_jobspec({**DOC, "constraints": {"max_cost": 0}}, Ed25519Key.generate(), Scheme.PORTAL_V1)


# --- the two Go-form implementations agree on arbitrary documents ---------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(
        alphabet=st.characters(blacklist_categories=["Cs"])
        | st.sampled_from("&<>\u2028\u2029\b\f\x00\x1f\x7f")
    )
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_go_canonical_matches_the_independent_model(value: Any) -> None:
    assert go_canonical(value) == gojson.go_bytes(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "id", "created_at", "metadata"]), _json, max_size=5))
def test_portal_v1_message_matches_the_independent_model(document: dict[str, Any]) -> None:
    assert signing_message(document, Scheme.PORTAL_V1) == gojson.portal_v1_message(document)
