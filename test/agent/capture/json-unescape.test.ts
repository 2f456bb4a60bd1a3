import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonEscapeError, unescapeJsonStringInPlace } from '../../../agent/capture/json-unescape.js';

/** What a plain client gets: JSON.parse of the string, then UTF-8 bytes. */
function viaJsonParse(body: Buffer): Buffer {
  return Buffer.from(JSON.parse(`"${body.toString('utf8')}"`) as string, 'utf8');
}

function decoded(body: Buffer): Buffer {
  const copy = Buffer.from(body);
  return copy.subarray(0, unescapeJsonStringInPlace(copy));
}

describe('in-place JSON string decoding', () => {
  it('decodes every escape JSON has, like JSON.parse', () => {
    for (const s of ['plain', 'a\nb', 'tab\there', 'q"uote', 'back\\slash', 'sl/ash', '\b\f\r', 'é ü 中文 😀', '\u0001\u001f', '{"snapshot":{"meta":{}}}\n[1,2,3]']) {
      const body = Buffer.from(JSON.stringify(s).slice(1, -1), 'utf8');
      assert.deepEqual(decoded(body), Buffer.from(s, 'utf8'), JSON.stringify(s));
    }
  });

  it('decodes \\u escapes including surrogate pairs and lone surrogates as JSON.parse then UTF-8 does', () => {
    for (const body of ['\\u00e9', '\\u4e2d', '\\ud83d\\ude00', '\\ud83d', 'x\\udc00y', '\\ud83dx', '\\ud83d\\u0041', '\\u002F']) {
      assert.deepEqual(decoded(Buffer.from(body)), viaJsonParse(Buffer.from(body)), body);
    }
  });

  it('matches JSON.parse on random strings', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = ['a', '1', ',', '\n', '"', '\\', '/', '\t', '\u0000', 'é', '中', '😀', '\ud800', '\udfff'];
    for (let i = 0; i < 500; i++) {
      let s = '';
      for (let j = rand(60); j > 0; j--) s += alphabet[rand(alphabet.length)];
      const body = Buffer.from(JSON.stringify(s).slice(1, -1), 'utf8');
      assert.deepEqual(decoded(body), viaJsonParse(body));
    }
  });

  it('rejects broken escapes', () => {
    assert.throws(() => unescapeJsonStringInPlace(Buffer.from('abc\\')), JsonEscapeError);
    assert.throws(() => unescapeJsonStringInPlace(Buffer.from('\\x41')), /invalid escape/);
    assert.throws(() => unescapeJsonStringInPlace(Buffer.from('\\u12')), /truncated/);
    assert.throws(() => unescapeJsonStringInPlace(Buffer.from('\\u12zz')), /bad hex digit/);
  });
});
