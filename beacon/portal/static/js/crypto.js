// Ed25519 in WebCrypto: the portal's signing key, and the message a JobSpec signature covers.
//
// The private key is created (or imported) non-extractable: script can sign with it but never read
// it, and it is kept in IndexedDB as a CryptoKey object (keystore.js). Public keys and signatures
// are standard base64, as the runner expects them in `public_key` and `signature`.

import { canonicalBytes } from "./jcs.js";
import { b64decode, b64encode, concat, hex, sha256, utf8 } from "./bytes.js";

const ED25519 = { name: "Ed25519" };

/** Prefix of the signed message (domain separation, as the runner's JOBSPEC_CONTEXT): "beacon-jobspec/v1" and LF. */
export const SIGNING_CONTEXT = "beacon-jobspec/v1\n";

export const SIGNATURE_FIELDS = ["signature", "public_key"];

/** The document without its signature fields (what is signed, and what is sent with them added). */
export function unsignedBody(document) {
  return Object.fromEntries(Object.entries(document).filter(([name]) => !SIGNATURE_FIELDS.includes(name)));
}

/** The bytes an Ed25519 JobSpec signature covers: the context prefix, then JCS of the unsigned body. */
export function signingMessage(document) {
  return concat(utf8(SIGNING_CONTEXT), canonicalBytes(unsignedBody(document)));
}

/** A key's id as the runner computes one for an unlisted key: hex of the first 8 bytes of SHA-256. */
export async function fingerprint(publicKeyRaw) {
  return hex((await sha256(publicKeyRaw)).slice(0, 8));
}

async function describe(privateKey, publicKey) {
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
  return {
    privateKey,
    publicKey,
    publicKeyB64: b64encode(raw),
    kid: await fingerprint(raw),
    extractable: privateKey.extractable,
  };
}

/** A new keypair whose private half can never be exported. */
export async function generateKeypair() {
  const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
  return describe(pair.privateKey, pair.publicKey);
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410): a fixed 16-byte header, then the seed.
const PKCS8_ED25519_HEADER = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * Import a seed (base64 of the 32-byte seed: `docs/signing.md`'s "Portal seed" form, or the Go form:
 * 64 bytes = seed ‖ public key). The seed is imported once extractable only to read its public half
 * (JWK `x`), then re-imported non-extractable; the extractable copy is dropped.
 */
export async function importSeed(text) {
  let raw;
  try {
    raw = b64decode(text.trim());
  } catch {
    throw new Error("the seed is not standard base64");
  }
  if (raw.length === 64) raw = raw.slice(0, 32);
  if (raw.length !== 32) throw new Error(`an Ed25519 seed has 32 bytes (got ${raw.length})`);
  const transient = await crypto.subtle.importKey("pkcs8", concat(PKCS8_ED25519_HEADER, raw), ED25519, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", transient);
  const privateKey = await crypto.subtle.importKey("jwk", jwk, ED25519, false, ["sign"]);
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: jwk.kty, crv: jwk.crv, x: jwk.x },
    ED25519,
    true,
    ["verify"],
  );
  return describe(privateKey, publicKey);
}

/** Base64 Ed25519 signature of `message` (bytes). */
export async function signBytes(privateKey, message) {
  return b64encode(new Uint8Array(await crypto.subtle.sign(ED25519, privateKey, message)));
}

/** Whether `signatureB64` is `publicKeyB64`'s Ed25519 signature of `message`. */
export async function verifyBytes(publicKeyB64, message, signatureB64) {
  const key = await crypto.subtle.importKey("raw", b64decode(publicKeyB64), ED25519, false, ["verify"]);
  return crypto.subtle.verify(ED25519, key, b64decode(signatureB64), message);
}

/** What `beacon sign` adds before signing: metadata.timestamp (RFC 3339 UTC, seconds) and metadata.nonce. */
export function stamp(document, now = new Date()) {
  const metadata = { ...(document.metadata ?? {}) };
  metadata.timestamp ??= now.toISOString().replace(/\.\d{3}Z$/, "Z");
  metadata.nonce ??= hex(crypto.getRandomValues(new Uint8Array(16)));
  return { ...document, metadata };
}

/** The signed JobSpec: the unsigned body with `public_key` and `signature` added. */
export async function signJobspec(document, keypair) {
  const body = unsignedBody(document);
  const signature = await signBytes(keypair.privateKey, signingMessage(body));
  return { ...body, public_key: keypair.publicKeyB64, signature };
}

/** Whether a signed JobSpec verifies under the portal's scheme with its own `public_key`. */
export async function verifyJobspec(document) {
  if (typeof document.signature !== "string" || typeof document.public_key !== "string") return false;
  return verifyBytes(document.public_key, signingMessage(document), document.signature);
}
