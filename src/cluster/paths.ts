// Where cluster state lives under the spool root (shared storage: every node sees it).
//
//   <root>/cluster/heartbeats/<node>.json   each node's heartbeat, rewritten every second
//   <root>/cluster/members/<seq>-<node>     registration numbers, one per process start (leader = lowest live)
//   <root>/cluster/desired.json             desired modes with a generation number (intake mode)
//   <root>/cluster/drained/<node>           present while an operator has drained the node (intake node drain)
//   <root>/cluster/keys.json                API keys, hashed (intake keys)
//   <root>/cluster/id-secret.json           the secret idempotency ids are derived with (made by the first node)
//   <root>/cluster/schedules.json           cron schedules the cluster enqueues requests for (intake schedules)
//   <root>/cluster/schedule-state.json      per schedule, the last tick whose request is on the spool (the scheduler)
//   <root>/cluster/books.json               the latest books (intake verify's figures), taken by one save-mode node
import { join } from 'node:path';

export const clusterDir = (root: string) => join(root, 'cluster');
export const heartbeatsDir = (root: string) => join(root, 'cluster', 'heartbeats');
export const heartbeatPath = (root: string, node: string) => join(root, 'cluster', 'heartbeats', `${node}.json`);
export const membersDir = (root: string) => join(root, 'cluster', 'members');
export const desiredPath = (root: string) => join(root, 'cluster', 'desired.json');
export const drainedDir = (root: string) => join(root, 'cluster', 'drained');
export const drainedPath = (root: string, node: string) => join(root, 'cluster', 'drained', node);
export const keysPath = (root: string) => join(root, 'cluster', 'keys.json');
export const idSecretPath = (root: string) => join(root, 'cluster', 'id-secret.json');
export const schedulesPath = (root: string) => join(root, 'cluster', 'schedules.json');
export const scheduleStatePath = (root: string) => join(root, 'cluster', 'schedule-state.json');
export const booksPath = (root: string) => join(root, 'cluster', 'books.json');
