// The create body, read as the Rust server reads it: a port of serde_json's reader (1.0.154,
// without float_roundtrip or arbitrary_precision), so that a body it refuses is refused here
// with the same words and position (http.js puts them in the 400's Description): de.rs
// (deserialize_any, SeqAccess, MapAccess, parse_* and end_*) and read.rs (SliceRead).
// Objects come out as null-prototype objects (the last of duplicate keys wins, as in
// serde_json's Map); numbers as JsonNumber, integer or float as serde_json tells them.

export class JsonSyntaxError extends Error {
  constructor(message, line, column) {
    super(`${message} at line ${line} column ${column}`);
    this.name = 'JsonSyntaxError';
  }
}

/**
 * A number as serde_json's Value holds it: `unsigned` (a u64, as a BigInt), `signed` (a
 * negative i64, as a BigInt) or `float` (an f64).
 */
export class JsonNumber {
  constructor(kind, value) {
    this.kind = kind;
    this.value = value;
  }

  static of(value) {
    if (typeof value !== 'bigint') return new JsonNumber('float', value);
    return new JsonNumber(value < 0n ? 'signed' : 'unsigned', value);
  }
}

const POW10 = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));
const U64_MAX = (1n << 64n) - 1n;
const I32_MAX = 2 ** 31 - 1;

/** Parses `bytes` (a Buffer) as `serde_json::from_slice::<Value>` does. */
export function parseJson(bytes) {
  const reader = new JsonReader(bytes);
  const value = reader.value();
  reader.end();
  return value;
}

class JsonReader {
  constructor(bytes) {
    this.slice = bytes;
    this.index = 0;
    this.remainingDepth = 128;
  }

  // SliceRead

  positionOf(i) {
    const before = this.slice.subarray(0, i);
    const lastNewline = before.lastIndexOf(0x0a);
    const startOfLine = lastNewline < 0 ? 0 : lastNewline + 1;
    let line = 1;
    for (let k = 0; k < startOfLine; k++) if (this.slice[k] === 0x0a) line++;
    return { line, column: i - startOfLine };
  }

  error(message) {
    const { line, column } = this.positionOf(this.index);
    return new JsonSyntaxError(message, line, column);
  }

  peekError(message) {
    const { line, column } = this.positionOf(Math.min(this.slice.length, this.index + 1));
    return new JsonSyntaxError(message, line, column);
  }

  peek() {
    return this.index < this.slice.length ? this.slice[this.index] : undefined;
  }

  peekOrNull() {
    return this.peek() ?? 0;
  }

  next() {
    return this.index < this.slice.length ? this.slice[this.index++] : undefined;
  }

  eat() {
    this.index++;
  }

  // Deserializer

  whitespace() {
    for (;;) {
      const b = this.peek();
      if (b === 0x20 || b === 0x0a || b === 0x09 || b === 0x0d) this.eat();
      else return b;
    }
  }

  end() {
    if (this.whitespace() !== undefined) throw this.peekError('trailing characters');
  }

  value() {
    const peek = this.whitespace();
    if (peek === undefined) throw this.peekError('EOF while parsing a value');
    switch (peek) {
      case 0x6e: // n
        this.eat();
        this.ident('ull');
        return null;
      case 0x74: // t
        this.eat();
        this.ident('rue');
        return true;
      case 0x66: // f
        this.eat();
        this.ident('alse');
        return false;
      case 0x2d: // -
        this.eat();
        return JsonNumber.of(this.integer(false));
      case 0x22: // "
        this.eat();
        return this.string();
      case 0x5b: // [
        return this.nested(() => this.sequence());
      case 0x7b: // {
        return this.nested(() => this.map());
      default:
        if (peek >= 0x30 && peek <= 0x39) return JsonNumber.of(this.integer(true));
        throw this.peekError('expected value');
    }
  }

  nested(visit) {
    this.remainingDepth -= 1;
    if (this.remainingDepth === 0) throw this.peekError('recursion limit exceeded');
    this.eat();
    const value = visit();
    this.remainingDepth += 1;
    return value;
  }

  ident(rest) {
    for (const expected of Buffer.from(rest, 'latin1')) {
      const next = this.next();
      if (next === undefined) throw this.error('EOF while parsing a value');
      if (next !== expected) throw this.error('expected ident');
    }
  }

  sequence() {
    const items = [];
    let first = true;
    for (;;) {
      const peek = this.whitespace();
      if (peek === undefined) throw this.peekError('EOF while parsing a list');
      if (peek === 0x5d) break;
      if (first) {
        first = false;
      } else if (peek === 0x2c) {
        this.eat();
        const after = this.whitespace();
        if (after === 0x5d) throw this.peekError('trailing comma');
        if (after === undefined) throw this.peekError('EOF while parsing a value');
      } else {
        throw this.peekError('expected `,` or `]`');
      }
      items.push(this.value());
    }
    // end_seq: the `]` seen above
    this.eat();
    return items;
  }

  map() {
    const object = Object.create(null);
    let first = true;
    for (;;) {
      const peek = this.whitespace();
      if (peek === undefined) throw this.peekError('EOF while parsing an object');
      if (peek === 0x7d) break;
      if (first) {
        first = false;
        if (peek !== 0x22) throw this.peekError('key must be a string');
      } else if (peek === 0x2c) {
        this.eat();
        const after = this.whitespace();
        if (after === 0x7d) throw this.peekError('trailing comma');
        if (after === undefined) throw this.peekError('EOF while parsing a value');
        if (after !== 0x22) throw this.peekError('key must be a string');
      } else {
        throw this.peekError('expected `,` or `}`');
      }
      this.eat(); // the key's opening quote
      const key = this.string();
      const colon = this.whitespace();
      if (colon === 0x3a) this.eat();
      else if (colon === undefined) throw this.peekError('EOF while parsing an object');
      else throw this.peekError('expected `:`');
      object[key] = this.value();
    }
    // end_map: the `}` seen above
    this.eat();
    return object;
  }

  // Numbers (only whether they parse matters; values are approximate)

  integer(positive) {
    const next = this.next();
    if (next === undefined) throw this.error('EOF while parsing a value');
    if (next === 0x30) {
      const peek = this.peekOrNull();
      if (peek >= 0x30 && peek <= 0x39) throw this.peekError('invalid number');
      return this.number(positive, 0n);
    }
    if (next >= 0x31 && next <= 0x39) {
      let significand = BigInt(next - 0x30);
      for (;;) {
        const c = this.peekOrNull();
        if (c >= 0x30 && c <= 0x39) {
          const candidate = significand * 10n + BigInt(c - 0x30);
          if (candidate > U64_MAX) return this.longInteger(positive, significand);
          this.eat();
          significand = candidate;
        } else {
          return this.number(positive, significand);
        }
      }
    }
    throw this.error('invalid number');
  }

  number(positive, significand) {
    const peek = this.peekOrNull();
    if (peek === 0x2e) return this.decimal(positive, significand, 0);
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, 0);
    if (positive) return significand;
    // serde_json: `-0` and negatives beyond i64 become floats.
    return significand > 0n && significand <= 1n << 63n ? -significand : -Number(significand);
  }

  decimal(positive, significand, exponentBefore) {
    this.eat();
    let after = 0;
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      const candidate = significand * 10n + BigInt(c - 0x30);
      if (candidate > U64_MAX) return this.decimalOverflow(positive, significand, exponentBefore + after);
      this.eat();
      significand = candidate;
      after -= 1;
    }
    if (after === 0) {
      if (this.peek() !== undefined) throw this.peekError('invalid number');
      throw this.peekError('EOF while parsing a value');
    }
    const exponent = exponentBefore + after;
    const peek = this.peekOrNull();
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, exponent);
    return this.fromParts(positive, significand, exponent);
  }

  exponent(positive, significand, startingExp) {
    this.eat();
    let positiveExp = true;
    const sign = this.peekOrNull();
    if (sign === 0x2b) this.eat();
    else if (sign === 0x2d) {
      this.eat();
      positiveExp = false;
    }
    const next = this.next();
    if (next === undefined) throw this.error('EOF while parsing a value');
    if (!(next >= 0x30 && next <= 0x39)) throw this.error('invalid number');
    let exp = next - 0x30;
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
      const candidate = exp * 10 + (c - 0x30);
      if (candidate > I32_MAX) return this.exponentOverflow(positive, significand === 0n, positiveExp);
      exp = candidate;
    }
    const saturate = (n) => Math.max(-(2 ** 31), Math.min(I32_MAX, n));
    const finalExp = saturate(positiveExp ? startingExp + exp : startingExp - exp);
    return this.fromParts(positive, significand, finalExp);
  }

  exponentOverflow(positive, zeroSignificand, positiveExp) {
    if (!zeroSignificand && positiveExp) throw this.error('number out of range');
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
    }
    return positive ? 0 : -0;
  }

  longInteger(positive, significand) {
    let exponent = 0;
    for (;;) {
      const c = this.peekOrNull();
      if (c >= 0x30 && c <= 0x39) {
        this.eat();
        exponent += 1;
      } else if (c === 0x2e) {
        return this.decimal(positive, significand, exponent);
      } else if (c === 0x65 || c === 0x45) {
        return this.exponent(positive, significand, exponent);
      } else {
        return this.fromParts(positive, significand, exponent);
      }
    }
  }

  decimalOverflow(positive, significand, exponent) {
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
    }
    const peek = this.peekOrNull();
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, exponent);
    return this.fromParts(positive, significand, exponent);
  }

  fromParts(positive, significand, exponent) {
    let f = Number(significand);
    for (;;) {
      const pow = POW10[Math.abs(exponent)];
      if (pow !== undefined) {
        if (exponent >= 0) {
          f *= pow;
          if (!Number.isFinite(f)) throw this.error('number out of range');
        } else {
          f /= pow;
        }
        break;
      }
      if (f === 0) break;
      if (exponent >= 0) throw this.error('number out of range');
      f /= 1e308;
      exponent += 308;
    }
    return positive ? f : -f;
  }

  // Strings (SliceRead::parse_str_bytes with validation, then as_str)

  string() {
    const scratch = [];
    let start = this.index;
    for (;;) {
      while (this.index < this.slice.length && !isEscape(this.slice[this.index])) this.index++;
      if (this.index === this.slice.length) throw this.error('EOF while parsing a string');
      const b = this.slice[this.index];
      if (b === 0x22) {
        scratch.push(this.slice.subarray(start, this.index));
        this.index += 1;
        return this.asStr(Buffer.concat(scratch));
      }
      if (b === 0x5c) {
        scratch.push(this.slice.subarray(start, this.index));
        this.index += 1;
        scratch.push(this.escape());
        start = this.index;
      } else {
        this.index += 1;
        throw this.error('control character (\\u0000-\\u001F) found while parsing a string');
      }
    }
  }

  asStr(bytes) {
    const validUpTo = utf8ValidUpTo(bytes);
    if (validUpTo === bytes.length) return bytes.toString('utf8');
    const { line, column } = this.positionOf(this.index);
    throw new JsonSyntaxError(
      'invalid unicode code point',
      line,
      Math.max(0, column - (bytes.length - validUpTo)),
    );
  }

  nextOrEof() {
    const b = this.next();
    if (b === undefined) throw this.error('EOF while parsing a string');
    return b;
  }

  peekOrEof() {
    const b = this.peek();
    if (b === undefined) throw this.error('EOF while parsing a string');
    return b;
  }

  /** One escape after its backslash, as UTF-8 bytes. */
  escape() {
    const ch = this.nextOrEof();
    const simple = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };
    if (Object.hasOwn(simple, ch)) return Buffer.from([simple[ch]]);
    if (ch === 0x75) return this.unicodeEscape();
    throw this.error('invalid escape');
  }

  hexEscape() {
    if (this.slice.length - this.index < 4) {
      this.index = this.slice.length;
      throw this.error('EOF while parsing a string');
    }
    const text = this.slice.subarray(this.index, this.index + 4);
    this.index += 4;
    let value = 0;
    for (const byte of text) {
      const digit = hexValue(byte);
      if (digit < 0) throw this.error('invalid escape');
      value = value * 16 + digit;
    }
    return value;
  }

  unicodeEscape() {
    const n = this.hexEscape();
    if (n >= 0xdc00 && n <= 0xdfff) throw this.error('lone leading surrogate in hex escape');
    if (n < 0xd800 || n > 0xdbff) return Buffer.from(String.fromCodePoint(n), 'utf8');
    if (this.peekOrEof() !== 0x5c) {
      this.eat();
      throw this.error('unexpected end of hex escape');
    }
    this.eat();
    if (this.peekOrEof() !== 0x75) {
      this.eat();
      throw this.error('unexpected end of hex escape');
    }
    this.eat();
    const n2 = this.hexEscape();
    if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error('lone leading surrogate in hex escape');
    const code = (((n - 0xd800) << 10) | (n2 - 0xdc00)) + 0x10000;
    return Buffer.from(String.fromCodePoint(code), 'utf8');
  }
}

function isEscape(byte) {
  return byte === 0x22 || byte === 0x5c || byte < 0x20;
}

/** How many leading bytes of `bytes` are valid UTF-8 (Rust's `Utf8Error::valid_up_to`). */
function utf8ValidUpTo(bytes) {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let width;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) width = 1;
    else if (b >= 0xc2 && b <= 0xdf) width = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      width = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      width = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + width > bytes.length) return i;
    for (let k = 1; k < width; k++) {
      const c = bytes[i + k];
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < min || c > max) return i;
    }
    i += width;
  }
  return i;
}

/** The value of an ASCII hex digit, or -1. */
export function hexValue(byte) {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}
