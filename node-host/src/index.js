// litegraph-backup's Node host: the policy component the Rust host embeds, run by Node.
//
//   import { createBackupService } from 'litegraph-backup-node-host';
//   const service = await createBackupService({ database, backups });
//   const backup = await service.create();

export { createBackupService, defaultComponentPath } from './service.js';
export { DEFAULT_GUEST_TIME_MS, DEFAULT_MEMORY_BYTES } from './limits.js';
export { BackupError } from './errors.js';
