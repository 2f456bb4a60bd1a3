// A push-style JSON tokenizer: bytes go in chunk by chunk (as an fs read stream delivers them),
// events come out. It holds no document, only the current token, so a 400 MiB heap snapshot
// is read with a few KiB of parser state. Non-negative integers — almost every byte of a heap
// snapshot — are accumulated without building a string. Errors name the byte offset.

export interface JsonEvents {
  startObject(): void;
  endObject(): void;
  startArray(): void;
  endArray(): void;
  key(name: string): void;
  string(value: string): void;
  number(value: number): void;
  literal(value: boolean | null): void;
  /** In record capture (see captureRecords): one whole record of integers. */
  record(fields: Float64Array): void;
}

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

// What the tokenizer expects next, between tokens.
const enum Expect {
  Value, // a value (top level, after ':' or after ',' in an array)
  ValueOrEnd, // first element of an array: a value or ']'
  KeyOrEnd, // first member of an object: a key or '}'
  Key, // after ',' in an object
  Colon,
  CommaOrEnd, // after a value inside a container
  Done, // the top-level value is complete
}

// What token is in progress across chunk boundaries.
const enum Token {
  None,
  Int, // digits of a non-negative integer
  Num, // any other number, collected as text
  Str,
  Lit,
}

const CONTAINER_OBJECT = 1;
const CONTAINER_ARRAY = 2;

function describe(byte: number): string {
  if (byte >= 0x21 && byte < 0x7f) return `'${String.fromCharCode(byte)}'`;
  return `byte 0x${byte.toString(16).padStart(2, '0')}`;
}

export class JsonTokenizer {
  private expect: Expect = Expect.Value;
  private token: Token = Token.None;
  private readonly stack: number[] = [];
  /** Absolute offset of the first byte of the current chunk. */
  private base = 0;
  private intValue = 0;
  private text = '';
  private strIsKey = false;
  private strEscaped = false;
  private strBackslash = false;
  private strParts: Buffer[] = [];
  private strStart = 0;
  private tokenOffset = 0;

  /** Record capture: integers of the array at depth `recordDepth` are delivered `record.length` at a time. */
  private record: Float64Array | null = null;
  private recordPos = 0;
  private recordDepth = 0;

  constructor(private readonly events: JsonEvents) {}

  /**
   * From inside startArray(): deliver this array's integers as records of `fieldCount` through
   * events.record() instead of one number() call each (a heap snapshot's nodes and edges).
   */
  captureRecords(fieldCount: number): void {
    this.record = new Float64Array(fieldCount);
    this.recordPos = 0;
    this.recordDepth = this.stack.length;
  }

  /** Ends record capture; returns how many integers of an unfinished record were left over. */
  endCapture(): number {
    const left = this.recordPos;
    this.record = null;
    this.recordPos = 0;
    return left;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.base;
  }

  get depth(): number {
    return this.stack.length;
  }

  get complete(): boolean {
    return this.expect === Expect.Done && this.token === Token.None;
  }

  write(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    if (this.token === Token.Str) {
      this.strStart = 0;
      i = this.continueString(chunk, 0);
    }
    while (i < n) {
      const c = chunk[i]!;
      // Hot path: "123,456,789" inside an array — most of a heap snapshot's bytes.
      if (this.token === Token.Int) {
        let v = this.intValue;
        let d = c;
        while (d >= 48 && d <= 57) {
          v = v * 10 + (d - 48);
          if (++i === n) break;
          d = chunk[i]!;
        }
        this.intValue = v;
        if (i === n) break;
        if (d === 46 || d === 101 || d === 69) {
          // '.', 'e', 'E': not an integer after all.
          this.token = Token.Num;
          this.text = String(v);
          continue;
        }
        this.token = Token.None;
        const rec = this.record;
        if (rec !== null && this.stack.length === this.recordDepth) {
          if (v > Number.MAX_SAFE_INTEGER) throw new JsonSyntaxError('integer too large to represent exactly', this.tokenOffset);
          rec[this.recordPos++] = v;
          if (this.recordPos === rec.length) {
            this.recordPos = 0;
            this.events.record(rec);
          }
          this.expect = Expect.CommaOrEnd;
        } else {
          this.emitNumber(v);
        }
        if (d === 44 && this.stack[this.stack.length - 1] === CONTAINER_ARRAY) {
          // The comma, and if a digit follows, the next integer starts at once.
          i++;
          if (i < n) {
            const e = chunk[i]!;
            if (e >= 48 && e <= 57) {
              this.token = Token.Int;
              this.tokenOffset = this.base + i;
              this.intValue = e - 48;
              i++;
              continue;
            }
          }
          this.expect = Expect.Value;
        }
        continue; // re-read the delimiter
      }
      if (this.token === Token.Num) {
        if ((c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45) {
          this.text += String.fromCharCode(c);
          i++;
          continue;
        }
        this.token = Token.None;
        this.finishNumberText();
        continue;
      }
      if (this.token === Token.Lit) {
        if (c >= 97 && c <= 122) {
          this.text += String.fromCharCode(c);
          i++;
          continue;
        }
        this.token = Token.None;
        this.finishLiteral();
        continue;
      }
      // Between tokens.
      if (c === 32 || c === 10 || c === 13 || c === 9) {
        i++;
        continue;
      }
      const at = this.base + i;
      switch (this.expect) {
        case Expect.Value:
        case Expect.ValueOrEnd:
          if (c === 93 && this.expect === Expect.ValueOrEnd) {
            this.closeContainer(CONTAINER_ARRAY, at);
            i++;
            continue;
          }
          i = this.startValue(chunk, i, c, at);
          continue;
        case Expect.KeyOrEnd:
        case Expect.Key:
          if (c === 125 && this.expect === Expect.KeyOrEnd) {
            this.closeContainer(CONTAINER_OBJECT, at);
            i++;
            continue;
          }
          if (c !== 34) throw new JsonSyntaxError(`expected a property name but found ${describe(c)}`, at);
          this.strIsKey = true;
          i = this.beginString(chunk, i + 1, at);
          continue;
        case Expect.Colon:
          if (c !== 58) throw new JsonSyntaxError(`expected ':' but found ${describe(c)}`, at);
          this.expect = Expect.Value;
          i++;
          continue;
        case Expect.CommaOrEnd: {
          const top = this.stack[this.stack.length - 1];
          if (c === 44) {
            this.expect = top === CONTAINER_OBJECT ? Expect.Key : Expect.Value;
            i++;
            continue;
          }
          if (c === 93 && top === CONTAINER_ARRAY) {
            this.closeContainer(CONTAINER_ARRAY, at);
            i++;
            continue;
          }
          if (c === 125 && top === CONTAINER_OBJECT) {
            this.closeContainer(CONTAINER_OBJECT, at);
            i++;
            continue;
          }
          throw new JsonSyntaxError(
            `expected ',' or '${top === CONTAINER_OBJECT ? '}' : ']'}' but found ${describe(c)}`,
            at,
          );
        }
        case Expect.Done:
          throw new JsonSyntaxError(`unexpected ${describe(c)} after the end of the document`, at);
      }
    }
    if (this.token === Token.Str) {
      // Keep the unfinished string's bytes; the chunk's buffer may be reused by the stream.
      this.strParts.push(Buffer.from(chunk.subarray(this.strStart)));
    }
    this.base += n;
  }

  /** Call at end of input: throws if the document is incomplete. */
  end(): void {
    if (this.stack.length > 0) {
      // Inside a container the document is incomplete whatever token is pending.
      throw new JsonSyntaxError(
        this.token === Token.Str ? 'input ends inside a string' : `input ends early, ${this.stack.length} container(s) still open`,
        this.base,
      );
    }
    if (this.token === Token.Int) {
      this.token = Token.None;
      this.emitNumber(this.intValue);
    } else if (this.token === Token.Num) {
      this.token = Token.None;
      this.finishNumberText();
    } else if (this.token === Token.Lit) {
      this.token = Token.None;
      this.finishLiteral();
    }
    if (this.token === Token.Str) {
      throw new JsonSyntaxError('input ends inside a string', this.base);
    }
    if (this.expect !== Expect.Done) {
      throw new JsonSyntaxError(
        this.base === 0 ? 'input is empty' : `input ends early, ${this.stack.length} container(s) still open`,
        this.base,
      );
    }
  }

  private startValue(chunk: Buffer, i: number, c: number, at: number): number {
    if (c >= 48 && c <= 57) {
      this.token = Token.Int;
      this.tokenOffset = at;
      this.intValue = c - 48;
      return i + 1;
    }
    switch (c) {
      case 123: // {
        this.stack.push(CONTAINER_OBJECT);
        this.expect = Expect.KeyOrEnd;
        this.events.startObject();
        return i + 1;
      case 91: // [
        this.stack.push(CONTAINER_ARRAY);
        this.expect = Expect.ValueOrEnd;
        this.events.startArray();
        return i + 1;
      case 34: // "
        this.strIsKey = false;
        return this.beginString(chunk, i + 1, at);
      case 45: // -
        this.token = Token.Num;
        this.tokenOffset = at;
        this.text = '-';
        return i + 1;
      case 116: // t
      case 102: // f
      case 110: // n
        this.token = Token.Lit;
        this.tokenOffset = at;
        this.text = String.fromCharCode(c);
        return i + 1;
      default:
        throw new JsonSyntaxError(`expected a value but found ${describe(c)}`, at);
    }
  }

  private closeContainer(kind: number, at: number): void {
    const top = this.stack.pop();
    if (top !== kind) throw new JsonSyntaxError('mismatched bracket', at);
    if (kind === CONTAINER_OBJECT) this.events.endObject();
    else this.events.endArray();
    this.afterValue();
  }

  private afterValue(): void {
    this.expect = this.stack.length === 0 ? Expect.Done : Expect.CommaOrEnd;
  }

  private emitNumber(value: number): void {
    if (value > Number.MAX_SAFE_INTEGER) {
      throw new JsonSyntaxError('integer too large to represent exactly', this.tokenOffset);
    }
    this.events.number(value);
    this.afterValue();
  }

  private finishNumberText(): void {
    const t = this.text;
    if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(t)) {
      throw new JsonSyntaxError(`malformed number '${t.slice(0, 40)}'`, this.tokenOffset);
    }
    this.events.number(Number(t));
    this.afterValue();
  }

  private finishLiteral(): void {
    const t = this.text;
    let v: boolean | null;
    if (t === 'true') v = true;
    else if (t === 'false') v = false;
    else if (t === 'null') v = null;
    else throw new JsonSyntaxError(`unknown literal '${t.slice(0, 40)}'`, this.tokenOffset);
    this.events.literal(v);
    this.afterValue();
  }

  private beginString(chunk: Buffer, i: number, at: number): number {
    this.token = Token.Str;
    this.tokenOffset = at;
    this.strEscaped = false;
    this.strBackslash = false;
    this.strParts = [];
    this.strStart = i;
    return this.continueString(chunk, i);
  }

  /** Scans string bytes from i; returns the index after the closing quote, or chunk.length. */
  private continueString(chunk: Buffer, i: number): number {
    const n = chunk.length;
    let backslash = this.strBackslash;
    for (; i < n; i++) {
      const c = chunk[i]!;
      if (backslash) {
        backslash = false;
        continue;
      }
      if (c === 92) {
        backslash = true;
        this.strEscaped = true;
        continue;
      }
      if (c === 34) {
        this.strBackslash = false;
        this.finishString(chunk, i);
        return i + 1;
      }
      if (c < 0x20) {
        throw new JsonSyntaxError(`control character ${describe(c)} inside a string`, this.base + i);
      }
    }
    this.strBackslash = backslash;
    return n;
  }

  private finishString(chunk: Buffer, closeQuote: number): void {
    let raw: string;
    if (this.strParts.length === 0) {
      raw = chunk.toString('utf8', this.strStart, closeQuote);
    } else {
      this.strParts.push(chunk.subarray(this.strStart, closeQuote));
      raw = Buffer.concat(this.strParts).toString('utf8');
      this.strParts = [];
    }
    let value = raw;
    if (this.strEscaped) {
      try {
        // Only the escape sequences of this one literal are decoded here; structure is ours.
        value = JSON.parse(`"${raw}"`) as string;
      } catch {
        throw new JsonSyntaxError('invalid escape sequence in a string', this.tokenOffset);
      }
    }
    this.token = Token.None;
    if (this.strIsKey) {
      this.expect = Expect.Colon;
      this.events.key(value);
    } else {
      this.events.string(value);
      this.afterValue();
    }
  }
}
