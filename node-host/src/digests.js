/** MD5, SHA-1 and SHA-256 of the same bytes, fed once, as LiteGraph's wire format wants them. */

import crypto from 'node:crypto';

/** Three hashes updated together; `hex()` gives `{ md5, sha1, sha256 }`, uppercase hex. */
export function threeDigests() {
  const hashes = ['md5', 'sha1', 'sha256'].map((name) => crypto.createHash(name));
  return {
    update(bytes) {
      for (const hash of hashes) hash.update(bytes);
    },
    hex() {
      const [md5, sha1, sha256] = hashes.map((hash) => hash.digest('hex').toUpperCase());
      return { md5, sha1, sha256 };
    },
  };
}
