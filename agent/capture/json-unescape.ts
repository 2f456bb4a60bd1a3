// Decoding a JSON string's body in place, on bytes. Heap snapshot chunks arrive as the escaped
// body of a JSON string inside a CDP message; turning each into a JS string (JSON.parse) and back
// into bytes costs two copies of up to 1 MiB per chunk on the V8 heap. Decoding never makes the
// text longer, so it can overwrite the message buffer it came in.

const BACKSLASH = 0x5c;

export class JsonEscapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonEscapeError';
  }
}

function hex4(buf: Buffer, at: number): number {
  if (at + 4 > buf.length) throw new JsonEscapeError('truncated \\u escape');
  let v = 0;
  for (let i = at; i < at + 4; i++) {
    const c = buf[i]!;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) throw new JsonEscapeError(`bad hex digit in \\u escape at byte ${i}`);
    v = (v << 4) | d;
  }
  return v;
}

function putUtf8(buf: Buffer, w: number, cp: number): number {
  if (cp < 0x80) {
    buf[w] = cp;
    return w + 1;
  }
  if (cp < 0x800) {
    buf[w] = 0xc0 | (cp >> 6);
    buf[w + 1] = 0x80 | (cp & 63);
    return w + 2;
  }
  if (cp < 0x10000) {
    buf[w] = 0xe0 | (cp >> 12);
    buf[w + 1] = 0x80 | ((cp >> 6) & 63);
    buf[w + 2] = 0x80 | (cp & 63);
    return w + 3;
  }
  buf[w] = 0xf0 | (cp >> 18);
  buf[w + 1] = 0x80 | ((cp >> 12) & 63);
  buf[w + 2] = 0x80 | ((cp >> 6) & 63);
  buf[w + 3] = 0x80 | (cp & 63);
  return w + 4;
}

/**
 * Decodes the escapes of a JSON string body (without its quotes) in place and returns the
 * decoded length. Lone surrogates become U+FFFD, as JSON.parse followed by UTF-8 encoding does.
 */
export function unescapeJsonStringInPlace(buf: Buffer): number {
  const len = buf.length;
  let r = buf.indexOf(BACKSLASH);
  if (r === -1) return len;
  let w = r;
  // One byte at a time: a snapshot has an escape (\n, \") every few dozen bytes, and a plain
  // loop beats a native copy call per run between escapes by about four times.
  while (r < len) {
    const c = buf[r]!;
    if (c !== BACKSLASH) {
      buf[w++] = c;
      r++;
      continue;
    }
    const e = buf[r + 1];
    if (e === undefined) throw new JsonEscapeError('string ends inside an escape');
    r += 2;
    switch (e) {
      case 0x6e: buf[w++] = 0x0a; break; // n
      case 0x22: buf[w++] = 0x22; break; // "
      case 0x5c: buf[w++] = 0x5c; break; // \
      case 0x2f: buf[w++] = 0x2f; break; // /
      case 0x74: buf[w++] = 0x09; break; // t
      case 0x72: buf[w++] = 0x0d; break; // r
      case 0x62: buf[w++] = 0x08; break; // b
      case 0x66: buf[w++] = 0x0c; break; // f
      case 0x75: {
        let cp = hex4(buf, r);
        r += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (buf[r] === BACKSLASH && buf[r + 1] === 0x75) {
            const low = hex4(buf, r + 2);
            if (low >= 0xdc00 && low <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
              r += 6;
            } else cp = 0xfffd;
          } else cp = 0xfffd;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) cp = 0xfffd;
        w = putUtf8(buf, w, cp);
        break;
      }
      default:
        throw new JsonEscapeError(`invalid escape \\${String.fromCharCode(e)} at byte ${r - 2}`);
    }
  }
  return w;
}
