// What the HTTP tests share: a node:http server on 127.0.0.1 port 0 around a handler, and a
// client that sends exactly the request line and headers given (no URL normalisation, so
// `/v1.0/backups/..` reaches the server as written) and collects the whole answer.

import http from 'node:http';

/** Serves `handler` on 127.0.0.1, a free port; closed after the test. */
export async function serve(t, handler) {
  const server = http.createServer(handler);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  t?.after(() => close(server));
  return { server, port: server.address().port };
}

/** Closes `server`, ending idle keep-alive connections. */
export function close(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

export const ADMIN = 'Bearer litegraphadmin';

/**
 * One request; resolves `{ status, headers, body (Buffer), text, json() }`. `authorization`
 * undefined sends none; `body` a string or Buffer; `headers` more headers.
 */
export function request(port, method, path, options = {}) {
  const { body, headers = {} } = options;
  const authorization = Object.hasOwn(options, 'authorization') ? options.authorization : ADMIN;
  return new Promise((resolve, reject) => {
    const all = { ...headers };
    if (authorization !== undefined) all.authorization = authorization;
    const payload = body === undefined ? undefined : Buffer.from(body);
    if (payload !== undefined && all['content-length'] === undefined) {
      all['content-length'] = payload.length;
    }
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: all, agent: false },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          const text = bytes.toString('utf8');
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: bytes,
            text,
            complete: res.complete,
            json() {
              try {
                return JSON.parse(text);
              } catch (error) {
                throw new Error(`not JSON (${error.message}): ${JSON.stringify(text.slice(0, 300))}`);
              }
            },
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Shorthand: an admin request. */
export const admin = (port, method, path, body) => request(port, method, path, { body });

/** Polls `GET /health` until it answers (any status), or throws after `deadlineMs`. */
export async function waitForHealth(port, deadlineMs = 30_000) {
  const deadline = Date.now() + deadlineMs;
  let last;
  while (Date.now() < deadline) {
    try {
      return await request(port, 'GET', '/health', { authorization: undefined });
    } catch (error) {
      last = error;
    }
    // Polling a socket that is not listening yet: wait for the next tick of a short timer,
    // bounded by the deadline (this is the wait, not a synchronisation by sleeping).
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no answer from 127.0.0.1:${port}/health within ${deadlineMs} ms: ${last?.message}`);
}

export const BAD_REQUEST_MESSAGE =
  'We were unable to discern your request.  Please check your URL, query, and request body.';
export const AUTHENTICATION_FAILED =
  '{"Error":"AuthenticationFailed","Message":"Your authentication material was not accepted.","StatusCode":401}';
