// Verifying what the runner issued, in the browser, without trusting the runner's word for it:
// execution receipts (beacon/receipts.py), C2SP signed notes and checkpoints
// (beacon/transparency/note.py, checkpoint.py) and RFC 6962 inclusion proofs (RFC 9162 §2.1.3.2,
// beacon/transparency/merkle.py). Every function returns or throws; nothing here fetches.

import { canonicalBytes } from "./jcs.js";
import { verifyBytes } from "./crypto.js";
import { b64decode, b64encode, concat, equalBytes, fromHex, hex, sha256, utf8 } from "./bytes.js";

export class VerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerificationError";
  }
}

function fail(message) {
  throw new VerificationError(message);
}

// --- receipts ----------------------------------------------------------------------------------

export const RECEIPT_SCHEMA = "beacon.receipt/v1";
const RECEIPT_FIELDS = [
  "schema", "receipt_id", "execution_id", "job_id", "jobspec_hash", "region", "backend", "model",
  "question", "prompt", "options", "attempt", "timings", "output", "status", "host", "kid", "issued_at",
];
const DOCUMENT_SIGNATURE_FIELDS = ["signature", "public_key"];

/** The bytes a runner document's signature covers (beacon.signing.signing_bytes): JCS minus the two fields. */
export function documentSigningBytes(document) {
  return canonicalBytes(
    Object.fromEntries(Object.entries(document).filter(([name]) => !DOCUMENT_SIGNATURE_FIELDS.includes(name))),
  );
}

/** That one of `runnerKeys` (base64) signed a runner document (receipt, difference report): beacon.signing. */
export async function verifyDocument(document, runnerKeys) {
  if (typeof document.signature !== "string" || typeof document.public_key !== "string") {
    fail("the document has no signature/public_key");
  }
  if (!runnerKeys.includes(document.public_key)) fail("signed by a key that is not one of the runner's keys");
  let valid = false;
  try {
    valid = await verifyBytes(document.public_key, documentSigningBytes(document), document.signature);
  } catch (error) {
    fail(`the signature cannot be checked: ${error.message}`);
  }
  if (!valid) fail("signature does not match the document");
  return document.public_key;
}

/** receipt_id of (execution id, attempt): "rc_" + the first 29 hex digits of SHA-256("<id>\x1f<attempt>"). */
export async function receiptId(executionId, attempt) {
  return "rc_" + hex(await sha256(utf8(`${executionId}\x1f${attempt}`))).slice(0, 29);
}

/**
 * Check a receipt as beacon.receipts.verify_receipt does, and that one of `runnerKeys` (base64, from
 * GET /api/v1/keys) signed it. Returns the key that signed; throws VerificationError saying what failed.
 */
export async function verifyReceipt(receipt, runnerKeys) {
  if (receipt === null || typeof receipt !== "object" || Array.isArray(receipt)) fail("a receipt is a JSON object");
  if (receipt.schema !== RECEIPT_SCHEMA) fail(`unknown receipt schema ${JSON.stringify(receipt.schema)}`);
  const missing = RECEIPT_FIELDS.filter((name) => !(name in receipt));
  if (missing.length) fail(`the receipt lacks ${missing.join(", ")}`);
  if (receipt.receipt_id !== (await receiptId(String(receipt.execution_id), Number(receipt.attempt)))) {
    fail("receipt_id does not match (execution_id, attempt)");
  }
  const text = receipt.output?.text;
  if (text != null && receipt.output.sha256 !== hex(await sha256(utf8(String(text))))) {
    fail("output.sha256 does not match output.text");
  }
  return verifyDocument(receipt, runnerKeys);
}

// --- RFC 6962 hashing and inclusion ---------------------------------------------------------------

/** MTH of one leaf: SHA-256(0x00 || data). */
export function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** RFC 9162 §2.1.3.2: that `leaf` is at `index` of the tree of `size` leaves whose hash is `root`. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0)) fail("bad index or size");
  if (index >= size) fail(`leaf index ${index} is not in a tree of size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) fail("the proof is longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail("the proof is shorter than the tree is deep");
  if (!equalBytes(r, root)) fail("the proof does not lead to the checkpoint's root hash");
}

// --- C2SP signed notes and checkpoints --------------------------------------------------------------

const SIGNATURE_PREFIX = "\u2014 ";
const ALG_ED25519 = 1;

async function noteKeyId(name, publicKey) {
  return (await sha256(concat(utf8(name + "\n"), Uint8Array.of(ALG_ED25519), publicKey))).slice(0, 4);
}

/** A verifier key `name+hexid+base64(0x01 || key)`, checked. */
export async function parseVerifierKey(vkey) {
  const text = vkey.trim();
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  if (first < 1 || second < 0) fail("a verifier key has the form name+hexid+base64key");
  const [name, idHex, encoded] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)]; // base64 may hold "+"
  const raw = b64decode(encoded);
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) fail("only Ed25519 verifier keys are supported");
  const publicKey = raw.slice(1);
  if (hex(await noteKeyId(name, publicKey)) !== idHex) fail("the verifier key's id does not match");
  return { name, keyId: idHex, publicKeyB64: b64encode(publicKey) };
}

/** Verify a signed note with one verifier key: returns its text. */
export async function openNote(note, verifier) {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0) fail("a signed note has a blank line before its signatures");
  const text = note.slice(0, cut + 1);
  const lines = note.slice(cut + 2).split("\n");
  if (lines.pop() !== "") fail("the signature block must end with a newline");
  let verified = false;
  for (const line of lines) {
    if (!line.startsWith(SIGNATURE_PREFIX)) fail(`malformed signature line ${JSON.stringify(line.slice(0, 60))}`);
    const [name, encoded] = line.slice(SIGNATURE_PREFIX.length).split(" ");
    const raw = b64decode(encoded ?? "");
    if (name !== verifier.name || hex(raw.slice(0, 4)) !== verifier.keyId) continue; // someone else's
    if (!(await verifyBytes(verifier.publicKeyB64, utf8(text), b64encode(raw.slice(4))))) {
      fail(`invalid signature by the log key ${name}+${verifier.keyId}`);
    }
    verified = true;
  }
  if (!verified) fail("the note carries no signature by the log key");
  return text;
}

/** A checkpoint's text: origin, size, root (c2sp.org/tlog-checkpoint). */
export function parseCheckpoint(text) {
  const lines = text.slice(0, -1).split("\n");
  if (!text.endsWith("\n") || lines.length < 3) fail("a checkpoint has an origin, a size and a root line");
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("the checkpoint's tree size is not a decimal");
  const root = b64decode(lines[2]);
  if (root.length !== 32) fail("the checkpoint's root hash has 32 bytes");
  return { origin: lines[0], size: Number(lines[1]), root };
}

/**
 * That `receipt` (its RFC 8785 bytes are its log entry) is included in the log, by a proof from
 * GET /api/v1/transparency/proof bound to a checkpoint signed by the log key (`vkey`, from
 * GET /api/v1/transparency/keys) of log `origin`. Returns the checkpoint.
 */
export async function verifyReceiptInclusion(receipt, proof, vkey, origin) {
  const verifier = await parseVerifierKey(vkey);
  const checkpoint = parseCheckpoint(await openNote(proof.checkpoint, verifier));
  if (origin && checkpoint.origin !== origin) fail(`the checkpoint is from log ${checkpoint.origin}, not ${origin}`);
  if (checkpoint.size !== proof.size) fail("the proof is for another tree size than its checkpoint");
  const leaf = await leafHash(canonicalBytes(receipt));
  if (proof.leaf_hash && hex(leaf) !== proof.leaf_hash) fail("the logged leaf is not this receipt");
  await verifyInclusion(leaf, proof.index, checkpoint.size, proof.proof.map(fromHex), checkpoint.root);
  return checkpoint;
}
