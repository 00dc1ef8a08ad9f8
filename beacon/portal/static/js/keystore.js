// The signing key in IndexedDB: CryptoKey objects are stored as they are (structured clone keeps a
// non-extractable key non-extractable), so the private key never exists as bytes in this page.

const DB_NAME = "beacon-portal";
const STORE = "keys";
const SLOT = "signing";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The stored keypair record, or undefined. */
export function loadKeypair() {
  return transact("readonly", (store) => store.get(SLOT));
}

export function saveKeypair(keypair, source) {
  const record = { ...keypair, source, created_at: new Date().toISOString() };
  return transact("readwrite", (store) => store.put(record, SLOT)).then(() => record);
}

export function forgetKeypair() {
  return transact("readwrite", (store) => store.delete(SLOT));
}
