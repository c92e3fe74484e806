// The `remote` capability of a host that lends no remote targets: `targets` is empty and
// every other call is refused with `not-permitted`, as wit/remote.wit documents.

import { WitError } from './errors.js';

function refused() {
  throw new WitError('not-permitted', 'this host lends no remote targets');
}

/** The `litegraph:backup/remote` import object of a host without remote targets. */
export function createRemote() {
  return {
    targets: () => [],
    putFile: refused,
    put: refused,
    list: refused,
    get: refused,
    getFile: refused,
    delete: refused,
  };
}
