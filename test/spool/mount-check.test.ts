// The start-time mount check on sample /proc/self/mountinfo lines (NFS hard and soft, old NFS
// versions, attribute and lookup caching, tmpfs, a local disk, GlusterFS client arguments), and
// on this machine's own mount table. The check on a real GlusterFS mount is in
// test/cluster/on-gluster.test.ts, which has a volume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkMount, checkSpoolMount, MountCodes, mountOf, parseMountinfo } from '../../src/spool/mount-check.js';

const LIMITS = { lockStaleMs: 10_000, deadAfterMs: 3000 }; // the defaults: at most 1000 ms of cache

const MOUNTINFO = [
  '26 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  '40 26 0:45 / /mnt/good rw,relatime shared:20 - nfs4 nas:/intake rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.2,lookupcache=none,local_lock=none,addr=10.0.0.1',
  '41 26 0:46 / /mnt/soft rw,relatime shared:21 - nfs4 nas:/intake rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,soft,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.2,lookupcache=none,local_lock=none,addr=10.0.0.1',
  '42 26 0:47 / /mnt/defaults rw,relatime shared:22 - nfs4 nas:/intake rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.2,local_lock=none,addr=10.0.0.1',
  '43 26 0:48 / /mnt/v3 rw,relatime shared:23 - nfs nas:/intake rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,noac,hard,nolock,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.1,mountvers=3,mountport=20048,mountproto=udp,lookupcache=pos,local_lock=all,addr=10.0.0.1',
  '44 26 0:49 / /mnt/with\\040space rw,nosuid,nodev - tmpfs tmpfs rw,size=2048k',
  '45 26 0:50 / /mnt/gluster rw,relatime - fuse.glusterfs localhost:/vol rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072',
].join('\n');

const entries = parseMountinfo(MOUNTINFO);
const at = (path: string) => {
  const m = mountOf(entries, path);
  assert.ok(m, `a mount for ${path}`);
  return m;
};
const codes = (path: string, glusterArgs: string[] | null = null) => checkMount(at(path), LIMITS, glusterArgs).map((w) => w.code);

test('mountinfo is parsed: mount point (octal escapes undone), type, source, both option lists', () => {
  assert.equal(entries.length, 7);
  const m = at('/mnt/with space/spool');
  assert.equal(m.mountPoint, '/mnt/with space');
  assert.equal(m.fsType, 'tmpfs');
  assert.equal(m.options.get('size'), '2048k');
  assert.ok(m.options.has('nosuid'), 'the per-mount options count too');
  assert.equal(at('/mnt/good/spool').options.get('vers'), '4.2');
  assert.equal(at('/mnt/goodness').mountPoint, '/', 'a mount point is a whole path component');
  assert.equal(at('/srv/intake').fsType, 'ext4');
});

test('NFS 4.2, hard, actimeo=1, lookupcache=none: no warning; nolock or local_lock do not matter (no POSIX locks on the spool)', () => {
  assert.deepEqual(codes('/mnt/good/spool'), []);
});

test('NFS soft: INTAKE_SPOOL_MOUNT_SOFT', () => {
  assert.deepEqual(codes('/mnt/soft/spool'), [MountCodes.soft]);
});

test('NFS with the default attribute and lookup caches: INTAKE_SPOOL_MOUNT_CACHE twice (60 s attributes, cached lookups)', () => {
  const w = checkMount(at('/mnt/defaults/spool'), LIMITS);
  assert.deepEqual(w.map((x) => x.code), [MountCodes.cache, MountCodes.cache]);
  assert.match(w[0]!.message, /60 s/);
  assert.match(w[1]!.message, /lookupcache=none/);
  // With longer lock and dead times a 1 s cache is fine, a 60 s one still is not.
  assert.deepEqual(codes('/mnt/good/spool'), []);
  assert.equal(checkMount(at('/mnt/good/spool'), { lockStaleMs: 2000, deadAfterMs: 1500 }).length, 1, 'a 1 s cache is too long for a 2 s lock stale time');
});

test('NFS version 3: INTAKE_SPOOL_MOUNT_NFS_VERSION (noac makes lookupcache=pos safe; nolock does not matter)', () => {
  assert.deepEqual(codes('/mnt/v3/spool'), [MountCodes.nfsVersion]);
});

test('tmpfs: INTAKE_SPOOL_MOUNT_VOLATILE; a local disk: nothing', () => {
  assert.deepEqual(codes('/mnt/with space/spool'), [MountCodes.volatile]);
  assert.deepEqual(codes('/srv/intake'), []);
});

test("GlusterFS: the client's cache timeouts decide (they are not in mountinfo)", () => {
  const client = (...opts: string[]) => ['/usr/sbin/glusterfs', ...opts, '--process-name', 'fuse', '--volfile-server=localhost', '--volfile-id=/vol', '/mnt/gluster'];
  assert.deepEqual(codes('/mnt/gluster/spool', client('--attribute-timeout=0', '--entry-timeout=0', '--negative-timeout=0')), []);
  assert.deepEqual(codes('/mnt/gluster/spool', client()), [MountCodes.cache, MountCodes.cache], "the client's defaults: 1 s attributes and entries");
  assert.deepEqual(codes('/mnt/gluster/spool', null), [], 'no client arguments to read: nothing said');
});

test("this machine's own mount table is read (the spool's folder under the temp dir)", async () => {
  const r = await checkSpoolMount(process.cwd(), LIMITS);
  assert.ok(r.mount, 'the mount of the working directory is found');
  assert.ok(Array.isArray(r.warnings));
});
