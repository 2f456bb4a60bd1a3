import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_SPAWN_RULE_CONFIG,
  evaluateSpawnRules,
  isSuspicious,
  parseInvocation,
  SPAWN_RULES,
  type ParentFacts,
  type ScriptFacts,
  type SpawnFacts,
} from '../../../agent/watch/spawn-rules.js';

const T0 = 1_750_000_000_000;

function script(path: string, over: Partial<ScriptFacts> = {}): ScriptFacts {
  return { argPath: path, path, resolvedPath: path, state: 'present', mtimeMs: T0 - 3_600_000, ctimeMs: T0 - 3_600_000, ...over };
}

function shParent(over: Partial<ParentFacts> = {}): ParentFacts {
  return { pid: 10, comm: 'sh', argv: ['/bin/sh', '/entrypoint.sh'], exe: '/bin/dash', startTimeMs: T0 - 1000, ...over };
}

function facts(over: Partial<SpawnFacts>): SpawnFacts {
  return { argv: [], exe: null, startTimeMs: T0, cwd: '/app', script: null, parent: shParent(), ...over };
}

const ids = (f: SpawnFacts, cfg = {}): string[] => evaluateSpawnRules(f, cfg).map((m) => m.id);

describe('parseInvocation finds the script behind interpreter flags', () => {
  const cases: Array<[string[], string | null, Partial<ReturnType<typeof parseInvocation>>]> = [
    [['python3', '/tmp/tmpk3j1.py'], '/usr/bin/python3.11', { interpreter: 'python', interpreterName: 'python3.11', program: 'script', scriptArg: '/tmp/tmpk3j1.py' }],
    [['python', '-u', '-B', '-X', 'dev', '-W', 'ignore', 'app.py', '--port', '80'], null, { program: 'script', scriptArg: 'app.py' }],
    [['python3', '-Wignore', '-Ximporttime', '-OO', 'x.py'], null, { program: 'script', scriptArg: 'x.py' }],
    [['python3', '-c', 'import time; time.sleep(1)', 'arg'], null, { program: 'inline', inlineCode: 'import time; time.sleep(1)' }],
    [['python3', '-uc', 'print(1)'], null, { program: 'inline', inlineCode: 'print(1)' }],
    [['python3', '-cprint(2)'], null, { program: 'inline', inlineCode: 'print(2)' }],
    [['python3', '-m', 'http.server', '8000'], null, { program: 'module', module: 'http.server' }],
    [['python3', '--', '-weird.py'], null, { program: 'script', scriptArg: '-weird.py' }],
    [['python3', '-'], null, { program: 'stdin' }],
    [['python3'], null, { program: 'stdin' }],
    [['python3', '--check-hash-based-pycs', 'always', 's.py'], null, { program: 'script', scriptArg: 's.py' }],
    [['node', '-r', 'dotenv/config', '--max-old-space-size=512', '--inspect', 'server.js'], '/usr/local/bin/node', { interpreter: 'node', program: 'script', scriptArg: 'server.js' }],
    [['node', '--import', 'tsx', '--stack-size', '2000', 'main.ts'], null, { program: 'script', scriptArg: 'main.ts' }],
    [['node', '-e', "require('fs')"], null, { program: 'inline', inlineCode: "require('fs')" }],
    [['node', '--eval=1+1'], null, { program: 'inline', inlineCode: '1+1' }],
    [['node', '-p', '42'], null, { program: 'inline', inlineCode: '42' }],
    [['sh', '-c', 'echo hi; sleep 1', 'name'], '/bin/dash', { interpreter: 'shell', program: 'inline', inlineCode: 'echo hi; sleep 1' }],
    [['bash', '-ec', 'true'], null, { program: 'inline', inlineCode: 'true' }],
    [['bash', '-o', 'pipefail', '-e', '/tmp/run.sh', 'a'], null, { program: 'script', scriptArg: '/tmp/run.sh' }],
    [['bash', '--rcfile', '/etc/rc', 'job.sh'], null, { program: 'script', scriptArg: 'job.sh' }],
    [['sh', '-s', 'arg'], null, { program: 'stdin' }],
    [['-bash'], '/usr/bin/bash', { interpreter: 'shell', program: 'stdin' }],
    [['sh', '-c', 'exec x'], '/bin/busybox', { interpreter: 'shell', interpreterName: 'sh', program: 'inline' }],
    [['perl', '-e', 'print 1', '-e', 'print 2'], null, { interpreter: 'perl', program: 'inline', inlineCode: 'print 1\nprint 2' }],
    [['perl', '-Ilib', '-w', 'tool.pl'], null, { program: 'script', scriptArg: 'tool.pl' }],
    [['perl', '-I', 'lib', 'tool.pl'], null, { program: 'script', scriptArg: 'tool.pl' }],
    [['perl', '-lne', 'print if /x/', 'file.txt'], null, { program: 'inline', inlineCode: 'print if /x/' }],
    [['ruby', '-Ilib', '-r', 'json', 'app.rb'], null, { interpreter: 'ruby', program: 'script', scriptArg: 'app.rb' }],
    [['ruby', '-e', 'puts 1'], null, { program: 'inline', inlineCode: 'puts 1' }],
    [['php', '-r', 'echo 1;'], null, { interpreter: 'php', program: 'inline', inlineCode: 'echo 1;' }],
    [['php', '-d', 'memory_limit=1G', '-f', '/var/www/cron.php'], null, { program: 'script', scriptArg: '/var/www/cron.php' }],
    [['php', '-q', 'index.php'], null, { program: 'script', scriptArg: 'index.php' }],
    [['php', '-S', '0.0.0.0:80', '-t', '/var/www'], null, { program: 'none' }],
    // setproctitle rewrote argv: the exe is python, argv is free text; no script can be named.
    [['gunicorn: worker [app]'], '/usr/local/bin/python3.12', { interpreter: 'python', program: 'unknown', scriptArg: null }],
    [['nginx: worker process'], '/usr/sbin/nginx', { interpreter: null, program: 'none' }],
    [[], null, { interpreter: null, program: 'none' }],
  ];
  for (const [argv, exe, want] of cases) {
    test(`${JSON.stringify(argv)} exe=${exe}`, () => {
      const got = parseInvocation(argv, exe);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, `${k} of ${JSON.stringify(got)}`);
    });
  }
});

describe('the rule table', () => {
  test('ids are unique and every rule explains itself', () => {
    const seen = new Set(SPAWN_RULES.map((r) => r.id));
    assert.equal(seen.size, SPAWN_RULES.length);
    for (const id of ['tmp-script', 'fresh-script', 'deleted-script', 'deleted-exe', 'memfd-exe', 'decode-exec', 'server-spawns-interpreter']) {
      assert.ok(seen.has(id as never), id);
    }
    for (const r of SPAWN_RULES) assert.ok(r.description.length > 20, r.id);
  });
});

describe('tmp-script', () => {
  test('the seed: python runs a temp file in /tmp', () => {
    const m = evaluateSpawnRules(facts({ argv: ['python', '/tmp/tmpk3j1.py'], exe: '/usr/local/bin/python3.11', script: script('/tmp/tmpk3j1.py') }));
    const r = m.find((x) => x.id === 'tmp-script');
    assert.ok(r);
    assert.match(r.reason, /\/tmp\/tmpk3j1\.py/);
    assert.match(r.reason, /world-writable/);
  });
  for (const p of ['/var/tmp/a.sh', '/dev/shm/.x/run.pl']) {
    test(`matches ${p}`, () => {
      const argv = p.endsWith('.sh') ? ['bash', p] : ['perl', p];
      assert.ok(ids(facts({ argv, script: script(p) })).includes('tmp-script'));
    });
  }
  test('does not match look-alikes or normalised escapes', () => {
    assert.ok(!ids(facts({ argv: ['python3', '/tmpfoo/x.py'], script: script('/tmpfoo/x.py') })).includes('tmp-script'));
    assert.ok(!ids(facts({ argv: ['python3', '/tmp/../app/x.py'], script: script('/tmp/../app/x.py') })).includes('tmp-script'));
  });
  test('a symlink from the app dir into /tmp still counts', () => {
    const m = evaluateSpawnRules(facts({ argv: ['python3', '/app/job.py'], script: script('/app/job.py', { resolvedPath: '/tmp/job.py' }) }));
    const r = m.find((x) => x.id === 'tmp-script');
    assert.ok(r);
    assert.match(r.reason, /through a symlink from \/app\/job\.py/);
  });
  test('not for non-interpreters or inline code', () => {
    assert.deepEqual(ids(facts({ argv: ['cat', '/tmp/x.py'], exe: '/bin/cat' })), []);
    assert.ok(!ids(facts({ argv: ['python3', '-c', 'open("/tmp/x.py")'] })).includes('tmp-script'));
  });
  test('world-writable dirs are configurable', () => {
    const f = facts({ argv: ['python3', '/scratch/x.py'], script: script('/scratch/x.py') });
    assert.ok(!ids(f).includes('tmp-script'));
    assert.ok(ids(f, { worldWritableDirs: ['/scratch'] }).includes('tmp-script'));
  });
});

describe('fresh-script', () => {
  const at = (ageMs: number) => facts({ argv: ['python3', '/app/gen.py'], script: script('/app/gen.py', { mtimeMs: T0 - ageMs }) });
  test('written 0.4 s before start', () => {
    const r = evaluateSpawnRules(at(400)).find((m) => m.id === 'fresh-script');
    assert.ok(r);
    assert.match(r.reason, /0\.4 s before the process started \(threshold 10 s\)/);
  });
  test('boundaries: 10 s matches, 10.5 s does not, configurable', () => {
    assert.ok(ids(at(10_000)).includes('fresh-script'));
    assert.ok(!ids(at(10_500)).includes('fresh-script'));
    assert.ok(ids(at(10_500), { freshScriptSec: 30 }).includes('fresh-script'));
  });
  test('a write just after the estimated start is within clock slack; much later is not', () => {
    assert.ok(ids(at(-1500)).includes('fresh-script'));
    assert.ok(!ids(at(-5000)).includes('fresh-script'));
  });
  test('unknown mtime never matches', () => {
    assert.ok(!ids(facts({ argv: ['python3', '/app/x.py'], script: script('/app/x.py', { mtimeMs: null }) })).includes('fresh-script'));
  });
});

describe('deleted-script', () => {
  test('a script gone while the interpreter runs', () => {
    const r = evaluateSpawnRules(facts({ argv: ['bash', '/tmp/s.sh'], script: script('/tmp/s.sh', { state: 'deleted', mtimeMs: null, deletedOpenFd: 255 }) }));
    const d = r.find((m) => m.id === 'deleted-script');
    assert.ok(d);
    assert.match(d.reason, /fd 255/);
  });
  test('present or refused scripts are not deleted', () => {
    assert.ok(!ids(facts({ argv: ['bash', '/tmp/s.sh'], script: script('/tmp/s.sh') })).includes('deleted-script'));
    assert.ok(!ids(facts({ argv: ['bash', '/tmp/s.sh'], script: script('/tmp/s.sh', { state: 'refused' }) })).includes('deleted-script'));
  });
});

describe('executables', () => {
  test('deleted-exe', () => {
    const r = evaluateSpawnRules(facts({ argv: ['./x'], exe: '/opt/tool/x (deleted)' }));
    assert.deepEqual(r.map((m) => m.id), ['deleted-exe']);
    assert.match(r[0]?.reason ?? '', /\/opt\/tool\/x was deleted/);
  });
  test('memfd-exe, and not also deleted-exe', () => {
    assert.deepEqual(ids(facts({ argv: ['[kworker]'], exe: '/memfd:payload (deleted)' })), ['memfd-exe']);
  });
  test('tmp-exe with deleted-exe', () => {
    assert.deepEqual(ids(facts({ argv: ['/dev/shm/m'], exe: '/dev/shm/m (deleted)' })), ['tmp-exe', 'deleted-exe']);
  });
  test('a normal binary matches nothing', () => {
    assert.deepEqual(ids(facts({ argv: ['/usr/bin/convert', 'a.png', 'b.jpg'], exe: '/usr/bin/convert' })), []);
  });
});

describe('decode-exec', () => {
  const reasonOf = (argv: string[], extra: Partial<SpawnFacts> = {}) => evaluateSpawnRules(facts({ argv, ...extra })).find((m) => m.id === 'decode-exec')?.reason;
  test('base64 -d piped into sh', () => {
    const r = reasonOf(['sh', '-c', 'echo aW1wb3J0IG9z | base64 -d | sh']);
    assert.ok(r);
    assert.match(r, /base64 -d/);
    assert.match(r, /\| interpreter/);
  });
  test('each language form', () => {
    const forms: string[][] = [
      ['python3', '-c', "import base64;exec(base64.b64decode('cHJpbnQoMSk='))"],
      ['python3', '-c', 'import base64,zlib;exec(zlib.decompress(base64.urlsafe_b64decode(x)))'],
      ['node', '-e', "eval(Buffer.from('Y29uc29sZS5sb2coMSk=', 'base64').toString())"],
      ['node', '-e', 'new Function(atob(s))()'],
      ['perl', '-MMIME::Base64', '-e', 'eval decode_base64($x)'],
      ['php', '-r', 'eval(base64_decode("ZWNobyAxOw=="));'],
      ['ruby', '-rbase64', '-e', 'eval Base64.decode64(s)'],
      ['bash', '-c', 'base64 --decode /app/resources.dat > /tmp/x.py && python3 /tmp/x.py'],
      ['sh', '-c', 'openssl enc -d -base64 -in blob | sh'],
    ];
    for (const argv of forms) assert.ok(reasonOf(argv), `no decode-exec for ${JSON.stringify(argv)}`);
    assert.match(reasonOf(forms[0] as string[]) ?? '', /b64decode.*exec\(/);
  });
  test('encoding, look-alike words and plain servers do not match', () => {
    for (const argv of [
      ['python3', 'app.py', '--mode=decode'],
      ['base64', '/etc/hostname'],
      ['sh', '-c', 'base64 -w0 file > out.b64'],
      ['node', 'server.js', '--eval-mode'],
      ['grep', '-d', 'skip', 'base64', 'notes.txt'],
    ]) {
      assert.equal(reasonOf(argv), undefined, JSON.stringify(argv));
    }
  });
  test('an interpreter reading stdin whose parent pipes decoded data into it', () => {
    const parent = shParent({ argv: ['sh', '-c', 'base64 -d /app/resources.dat | python3'] });
    const r = reasonOf(['python3'], { parent });
    assert.ok(r);
    assert.match(r, /reads its program from stdin/);
    assert.equal(reasonOf(['python3'], { parent: shParent({ argv: ['sh', '-c', 'cat job.py | python3'] }) }), undefined);
  });
  test('markup and control characters are data, not a crash', () => {
    const argv = ['sh', '-c', "echo '<script>alert(1)</script>\x00\x1b[31m' | base64 -d | sh"];
    const r = reasonOf(argv);
    assert.ok(r);
  });
});

describe('server-spawns-interpreter', () => {
  const server: ParentFacts = { pid: 7, comm: 'python', argv: ['python', 'app.py'], exe: '/usr/local/bin/python3.11', startTimeMs: T0 - 300_000 };
  test('a server up for 5 minutes starts python', () => {
    const r = evaluateSpawnRules(facts({ argv: ['python', '/app/collector_job.py'], parent: server, script: script('/app/collector_job.py') }));
    const m = r.find((x) => x.id === 'server-spawns-interpreter');
    assert.ok(m);
    assert.match(m.reason, /python app\.py \(pid 7\), running for 5 min, started the interpreter python/);
  });
  test('alone it is context, not a finding: an app running its own old helper script is normal', () => {
    const r = evaluateSpawnRules(facts({ argv: ['python', '/app/collector_job.py'], parent: server, script: script('/app/collector_job.py') }));
    assert.deepEqual(r.map((x) => x.id), ['server-spawns-interpreter']);
    assert.equal(isSuspicious(r), false);
    const fromTmp = evaluateSpawnRules(facts({ argv: ['python', '/tmp/tmpk3j1.py'], parent: server, script: script('/tmp/tmpk3j1.py') }));
    assert.ok(fromTmp.some((x) => x.id === 'server-spawns-interpreter'));
    assert.equal(isSuspicious(fromTmp), true);
  });
  test('uptime threshold is configurable', () => {
    const young = { ...server, startTimeMs: T0 - 30_000 };
    assert.ok(!ids(facts({ argv: ['sh', '-c', 'x'], parent: young })).includes('server-spawns-interpreter'));
    assert.ok(ids(facts({ argv: ['sh', '-c', 'x'], parent: young }), { serverMinUptimeSec: 10 }).includes('server-spawns-interpreter'));
  });
  test('launchers (shells, inits, supervisors) are not servers', () => {
    for (const p of [
      shParent({ startTimeMs: T0 - 3_600_000 }),
      { ...server, comm: 'supervisord', argv: ['/usr/bin/python3', '/usr/bin/supervisord'] },
      { ...server, comm: 'tini', exe: '/sbin/tini', argv: ['/sbin/tini', '--', 'python', 'app.py'] },
    ]) {
      assert.ok(!ids(facts({ argv: ['python3', '/app/job.py'], parent: p })).includes('server-spawns-interpreter'), p.comm);
    }
  });
  test('forked workers and multiprocessing helpers are not spawns', () => {
    assert.deepEqual(ids(facts({ argv: ['python', 'app.py'], exe: server.exe, parent: server, script: script('/app/app.py') })), []);
    const mp = ['python3', '-c', 'from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)', '--multiprocessing-fork'];
    assert.deepEqual(ids(facts({ argv: mp, parent: server })), []);
  });
  test('non-interpreter children are not flagged', () => {
    assert.deepEqual(ids(facts({ argv: ['convert', 'a.png', 'b.png'], exe: '/usr/bin/convert', parent: server })), []);
  });
});

describe('controls', () => {
  test('an old app script started by the entrypoint shell matches nothing', () => {
    assert.deepEqual(ids(facts({ argv: ['python3', '/app/worker.py'], exe: '/usr/bin/python3.11', script: script('/app/worker.py') })), []);
  });
  test('defaults are frozen', () => {
    assert.ok(Object.isFrozen(DEFAULT_SPAWN_RULE_CONFIG));
    assert.equal(DEFAULT_SPAWN_RULE_CONFIG.freshScriptSec, 10);
  });
});
