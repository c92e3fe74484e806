// LiteGraph's backup routes (/v1.0/backups) served by Node with the policy `litegraph-backup
// serve` runs. LITEGRAPH_DB, LITEGRAPH_BACKUPS, LITEGRAPH_ADMIN_TOKEN, PORT (default 8701).
import http from 'node:http';
import { createBackupService } from 'litegraph-backup-node-host';
import { createHandler } from 'litegraph-backup-node-host/http';

const env = process.env;
const service = await createBackupService({ database: env.LITEGRAPH_DB ?? 'litegraph.db', backups: env.LITEGRAPH_BACKUPS ?? 'backups' });
if (service.swept > 0) console.log(`removed ${service.swept} temporary files left by an interrupted run`);
const handler = createHandler(service, { adminToken: env.LITEGRAPH_ADMIN_TOKEN ?? 'litegraphadmin', log: console.log });
const server = http.createServer(handler);
// The Rust server's limits: 30 s to send the headers, then 30 s for the body (the handler's
// own deadline, answered as the Rust server answers it); Node's whole-request limit is their sum.
server.headersTimeout = 30_000;
server.requestTimeout = 60_000;
server.listen(Number(env.PORT ?? 8701), '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
const stop = () => server.close(() => service.close());
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
