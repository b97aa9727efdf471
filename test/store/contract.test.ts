/** One store contract, both stores: LMDB on real files in a temp dir, and the in-memory one. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/shared/logger.js';
import { openLmdbStores } from '../../src/store/lmdb/lmdb-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { storeContract } from './contract.js';

storeContract('lmdb', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cuttle-contract-'));
  return openLmdbStores(dir, 64 * 1024 ** 2, { minUses: 1, windowMs: 1000 }, createLogger('silent', {}))
    .store;
});
storeContract('memory', async () => new MemoryStore());
