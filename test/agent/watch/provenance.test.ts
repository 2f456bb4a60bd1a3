import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import { decodeBase64Text, findProvenance, isBase64Text, searchProvenance } from '../../../agent/watch/provenance.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const PID = 777;

function wrap(text: string, width: number, eol = '\n'): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) lines.push(text.slice(i, i + width));
  return lines.join(eol) + eol;
}

/** A small Python script with enough length to make size filters meaningful; it only sleeps. */
function scriptText(tag: string): Buffer {
  const body = [`# collector ${tag}`, 'import time', ...Array.from({ length: 20 }, (_, i) => `value_${i} = ${i} * 2  # padding line ${tag}`), 'time.sleep(30)', ''];
  return Buffer.from(body.join('\n'));
}

async function gzipStreamOfZeros(totalBytes: number): Promise<Buffer> {
  // Streamed so the test never holds the uncompressed bomb in memory.
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', () => resolve());
    gz.on('error', reject);
  });
  const chunk = Buffer.alloc(1024 * 1024);
  for (let written = 0; written < totalBytes; written += chunk.length) {
    if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
  }
  gz.end();
  await done;
  return Buffer.concat(out);
}

describe('provenance search in a fake container root', () => {
  let base: string;
  let procRoot: string;
  let root: string;
  const put = async (p: string, data: Buffer | string) => {
    await fsp.mkdir(dirname(join(root, p)), { recursive: true });
    await fsp.writeFile(join(root, p), data);
  };
  const where = (cwd: string, extra: Partial<Parameters<typeof searchProvenance>[1]> = {}) => ({ procRoot, pid: PID, cwd, ...extra });

  before(async () => {
    base = await fsp.mkdtemp(join(tmpdir(), 'lw-prov-'));
    procRoot = join(base, 'proc');
    root = join(procRoot, String(PID), 'root');
    await fsp.mkdir(root, { recursive: true });
  });
  after(async () => {
    await fsp.rm(base, { recursive: true, force: true });
  });

  test('finds resources.dat: base64 wrapped at 76 columns, among decoys', async () => {
    const s = scriptText('seed');
    const encoded = wrap(s.toString('base64'), 76);
    await put('/app/resources.dat', encoded);
    await put('/app/app.py', 'from flask import Flask\n');
    // Decoys: same-sized base64 of other bytes, same-sized binary, base64 text of another script.
    await put('/app/static/noise.b64', randomBytes(s.length).toString('base64'));
    await put('/app/static/blob.bin', randomBytes(Buffer.byteLength(encoded)));
    await put('/app/templates/other.dat', scriptText('other').toString('base64'));
    const r = await searchProvenance(s, where('/app'));
    assert.ok(r.match, JSON.stringify(r));
    assert.equal(r.match.path, '/app/resources.dat');
    assert.equal(r.match.encoding, 'base64');
    assert.equal(r.match.decodedSha256, sha(s));
    assert.equal(r.match.sha256, sha(Buffer.from(encoded)));
    assert.equal(r.stoppedBy, null);
  });

  test('URL-safe alphabet, unpadded, CRLF wrapped at 64', async () => {
    // 0xfb 0xff bytes make + and / appear in standard base64, - and _ in URL-safe.
    const s = Buffer.concat([scriptText('urlsafe'), Buffer.from('# \u00fb\u00ff\u00fe\n')]);
    const url = s.toString('base64url');
    assert.match(url, /[-_]/);
    await put('/url/payload.txt', wrap(url, 64, '\r\n'));
    const m = await findProvenance(s, where('/url'));
    assert.ok(m);
    assert.equal(m.encoding, 'base64');
    assert.equal(m.path, '/url/payload.txt');
  });

  test('gzip+base64', async () => {
    const s = scriptText('gz');
    await put('/gz/conf/settings.bin', wrap(gzipSync(s).toString('base64'), 76));
    await put('/gz/readme.md', 'H4sI but not really base64 of anything!!!\n');
    const m = await findProvenance(s, where('/gz'));
    assert.ok(m);
    assert.equal(m.encoding, 'gzip+base64');
    assert.equal(m.path, '/gz/conf/settings.bin');
    assert.equal(m.decodedSha256, sha(s));
  });

  test('a plain copy is found, but an encoded source is preferred', async () => {
    const s = scriptText('copy');
    await put('/copy/a/job.py', s);
    const m = await findProvenance(s, where('/copy'));
    assert.equal(m?.encoding, 'copy');
    assert.equal(m?.path, '/copy/a/job.py');
    // The copy sits shallower than the encoded file, yet the encoded one wins.
    await put('/copy/a/b/c/data.dat', s.toString('base64'));
    const both = await findProvenance(s, where('/copy'));
    assert.equal(both?.encoding, 'base64');
    assert.equal(both?.path, '/copy/a/b/c/data.dat');
  });

  test('the script itself is excluded; hash+size targets work like bytes', async () => {
    const s = scriptText('self');
    await put('/self/tmpk3j1.py', s);
    assert.equal(await findProvenance(s, where('/self', { excludePaths: ['/self/tmpk3j1.py'] })), null);
    const byHash = await findProvenance({ sha256: sha(s), sizeBytes: s.length }, where('/self'));
    assert.equal(byHash?.path, '/self/tmpk3j1.py');
  });

  test('extraDirs are searched after cwd', async () => {
    const s = scriptText('extra');
    await put('/srv/code/blob.dat', s.toString('base64'));
    await put('/work/empty.txt', 'x');
    const m = await findProvenance(s, where('/work', { extraDirs: ['/srv/code'] }));
    assert.equal(m?.path, '/srv/code/blob.dat');
  });

  test('bounds: depth, file count, file size', async () => {
    const s = scriptText('bounds');
    await put('/deep/1/2/3/4/5/res.dat', s.toString('base64'));
    assert.equal(await findProvenance(s, where('/deep')), null, 'deeper than 4 levels');
    assert.equal((await findProvenance(s, where('/deep', {}), { maxDepth: 5 }))?.path, '/deep/1/2/3/4/5/res.dat');

    for (let i = 0; i < 30; i++) await put(`/many/f${String(i).padStart(2, '0')}.txt`, `file ${i}`);
    await put('/many/zz/res.dat', s.toString('base64'));
    const cut = await searchProvenance(s, where('/many'), { maxFiles: 10 });
    assert.equal(cut.match, null);
    assert.equal(cut.stoppedBy, 'max-files');
    assert.equal(cut.filesSeen, 10);
    const full = await searchProvenance(s, where('/many'));
    assert.equal(full.match?.path, '/many/zz/res.dat');
    assert.equal(full.filesSeen, 31);
    // Only files whose size fits base64 of the script were read.
    assert.ok(full.filesRead <= 2, `read ${full.filesRead} files`);

    const tooBig = await findProvenance(s, where('/deep', {}), { maxDepth: 5, maxFileBytes: 100 });
    assert.equal(tooBig, null);
  });

  test('symlinks are not followed and pseudo filesystems at the root are skipped', async () => {
    const s = scriptText('links');
    await put('/elsewhere/res.dat', s.toString('base64'));
    await fsp.mkdir(join(root, 'linked'), { recursive: true });
    await fsp.symlink('/elsewhere/res.dat', join(root, 'linked/res.dat'));
    await fsp.symlink('/elsewhere', join(root, 'linked/dir'));
    assert.equal(await findProvenance(s, where('/linked')), null);

    const t = scriptText('proc');
    await put('/proc/1/environ.b64', t.toString('base64'));
    const fromRoot = await searchProvenance(t, where('/'));
    assert.equal(fromRoot.match, null);
  });

  test('a gzip bomb in base64 is bounded by the script size', async () => {
    const s = Buffer.from('import time\ntime.sleep(30)\n'.repeat(8000));
    const bomb = (await gzipStreamOfZeros(32 * 1024 * 1024)).toString('base64');
    assert.ok(bomb.length < s.length * 1.3, `bomb of ${bomb.length} base64 chars fits the candidate size range`);
    await put('/bomb/res.dat', bomb);
    const before = process.memoryUsage().rss;
    const r = await searchProvenance(s, where('/bomb'));
    assert.equal(r.match, null);
    assert.equal(r.filesRead >= 1, true, 'the bomb was a candidate and was read');
    assert.ok(process.memoryUsage().rss - before < 24 * 1024 * 1024, 'did not inflate 32 MiB');
  });

  test('a missing cwd or a vanished root is reported, not thrown', async () => {
    const s = scriptText('none');
    const r = await searchProvenance(s, where('/does/not/exist'));
    assert.equal(r.match, null);
    assert.equal(r.refused[0]?.reason, 'missing');
    const gone = await searchProvenance(s, { procRoot, pid: PID + 1, cwd: '/' });
    assert.equal(gone.refused[0]?.reason, 'no-process');
  });
});

describe('base64 text checks', () => {
  test('isBase64Text accepts wrapped and URL-safe text, rejects binary and inner padding', () => {
    assert.equal(isBase64Text(Buffer.from('aGVsbG8=\n')), true);
    assert.equal(isBase64Text(Buffer.from('aGVs\r\nbG8')), true);
    assert.equal(isBase64Text(Buffer.from('-_-_')), true);
    assert.equal(isBase64Text(Buffer.from('aGVs=bG8=')), false);
    assert.equal(isBase64Text(Buffer.from([0x89, 0x50, 0x4e, 0x47])), false);
    assert.equal(isBase64Text(Buffer.from('abcde')), false, 'length 1 mod 4 cannot be base64');
    assert.equal(isBase64Text(Buffer.from('  \n')), false);
  });
  test('decodeBase64Text', () => {
    assert.equal(decodeBase64Text(Buffer.from('aGVs\nbG8='))?.toString(), 'hello');
    assert.equal(decodeBase64Text(Buffer.from('not base64!')), null);
  });
});
