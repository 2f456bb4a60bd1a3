import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bearerToken, createTokenAuth, createTokenInFile, generateToken, hashToken, hasScope, loadTokensFile, parseScopes, writeTokensFile } from '../../server/auth.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'leakwatch-auth-'));
}

describe('tokens', () => {
  it('generates distinct prefixed 32-byte base64url tokens', () => {
    const a = generateToken();
    const b = generateToken();
    assert.match(a, /^lw_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a.slice(3), 'base64url').length, 32);
    assert.notEqual(a, b);
  });

  it('authenticates a Bearer header against sha256 entries, by name and scopes', () => {
    const reader = generateToken();
    const admin = generateToken();
    const auth = createTokenAuth([
      { name: 'reader', sha256: hashToken(reader), scopes: ['read'] },
      { name: 'boss', sha256: hashToken(admin), scopes: ['admin'] },
    ]);
    assert.deepEqual(auth.authenticate(`Bearer ${reader}`), { name: 'reader', scopes: ['read'] });
    assert.deepEqual(auth.authenticate(`bearer   ${admin}`), { name: 'boss', scopes: ['admin'] });
    for (const bad of [undefined, '', reader, `Bearer`, `Bearer ${reader}x`, `Basic ${reader}`, `Bearer ${hashToken(reader)}`, `Bearer ${reader} extra`, `Bearer ${'a'.repeat(10_000)}`]) {
      assert.equal(auth.authenticate(bad), null, `accepted ${String(bad).slice(0, 40)}`);
    }
    assert.equal(bearerToken(`Bearer ${reader}`), reader);
  });

  it('admin implies every scope; others only their own', () => {
    const admin = { name: 'a', scopes: ['admin' as const] };
    const agent = { name: 'b', scopes: ['agent' as const] };
    for (const s of ['agent', 'read', 'snapshots', 'admin'] as const) assert.equal(hasScope(admin, s), true);
    assert.equal(hasScope(agent, 'agent'), true);
    assert.equal(hasScope(agent, 'read'), false);
    assert.equal(hasScope(agent, 'admin'), false);
  });

  it('parses scope lists and names the valid ones on a mistake', () => {
    assert.deepEqual(parseScopes('agent, read,agent'), ['agent', 'read']);
    assert.throws(() => parseScopes('agent,write'), /unknown scope "write" \(expected agent, read, snapshots, admin\)/);
    assert.throws(() => parseScopes(' , '), /one or more scopes/);
  });
});

describe('tokens file', () => {
  it('creates a 0600 file holding only the sha256, and appends', () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'sub', 'tokens.json');
      const first = createTokenInFile(path, 'ci-agent', ['agent']);
      const second = createTokenInFile(path, 'alice', ['read', 'snapshots']);
      const text = readFileSync(path, 'utf8');
      assert.ok(!text.includes(first.token) && !text.includes(second.token), 'the file holds a token');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const entries = loadTokensFile(path);
      assert.deepEqual(entries, [
        { name: 'ci-agent', sha256: hashToken(first.token), scopes: ['agent'] },
        { name: 'alice', sha256: hashToken(second.token), scopes: ['read', 'snapshots'] },
      ]);
      assert.equal(createTokenAuth(entries).authenticate(`Bearer ${second.token}`)?.name, 'alice');
      assert.throws(() => createTokenInFile(path, 'alice', ['read']), /already exists/);
      assert.throws(() => createTokenInFile(path, 'bad name!', ['read']), /token name must be/);
      // A path that cannot be written leaves no half-written file behind.
      assert.throws(() => writeTokensFile(join(dir, 'sub'), []), /cannot write tokens file .*sub/);
      assert.deepEqual(readdirSync(dir), ['sub']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('accepts plaintext entries with a warning', () => {
    const dir = tempDir();
    try {
      const path = join(dir, 't.json');
      writeFileSync(path, JSON.stringify([{ name: 'legacy', token: 'lw_plain', scopes: ['read'] }]));
      const warnings: string[] = [];
      const entries = loadTokensFile(path, { warn: (m) => warnings.push(m) });
      assert.deepEqual(entries, [{ name: 'legacy', sha256: hashToken('lw_plain'), scopes: ['read'] }]);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /plaintext token/);
      assert.ok(!warnings[0]!.includes('lw_plain'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a broken file with an error naming the file and the entry', () => {
    const dir = tempDir();
    try {
      const path = join(dir, 't.json');
      const cases: Array<[string, RegExp]> = [
        ['{not json', /is not valid JSON/],
        ['{"name":"x"}', /expected a JSON array/],
        ['[42]', /entry 0: expected an object/],
        ['[{"name":"a","sha256":"00","scopes":["read"]}]', /entry 0 \(a\): sha256 must be 64 hex digits/],
        [`[{"name":"a","sha256":"${'0'.repeat(64)}","scopes":["root"]}]`, /entry 0 \(a\): unknown scope "root"/],
        [`[{"name":"a","sha256":"${'0'.repeat(64)}","scopes":"read"}]`, /scopes must be an array/],
        [`[{"name":"a","sha256":"${'0'.repeat(64)}","scopes":["read"]},{"name":"a","sha256":"${'1'.repeat(64)}","scopes":["read"]}]`, /entry 1: duplicate name "a"/],
        ['[{"name":"a","scopes":["read"]}]', /needs sha256/],
        ['[{"scopes":["read"],"token":"x"}]', /entry 0: name must be/],
      ];
      for (const [text, pattern] of cases) {
        writeFileSync(path, text);
        assert.throws(() => loadTokensFile(path), (err: Error) => pattern.test(err.message) && err.message.includes(path), text);
      }
      assert.throws(() => loadTokensFile(join(dir, 'missing.json')), /tokens file .*missing\.json does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
