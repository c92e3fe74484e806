// `POST /v1.0/backup-retention/prune[?dryrun]` as the Rust server answers it
// (host/src/http/schedule.rs): the retention rules from the body, a JSON object in
// LiteGraph's PascalCase (`KeepLast`, `KeepHourly`, `KeepDaily`, `KeepWeekly`,
// `KeepMonthly`, `KeepYearly`, `KeepWithin` as a duration with its unit, `IncludeNamed`),
// read as serde reads `RetentionJson` (deny_unknown_fields, Option<u32>, Option<String>,
// bool; the fields in the order a serde_json Map keeps them, sorted) so that a refused body
// gets the Rust server's words; `KeepWithin` read as humantime 2.4 reads a duration. An empty
// body (ASCII whitespace only) means the rules the handler was configured with.

import { ApiError } from './http-wire.js';
import { JsonNumber, JsonSyntaxError, parseJson } from './http-json.js';

const FIELDS = [
  ['KeepLast', 'keepLast', 'u32'],
  ['KeepHourly', 'keepHourly', 'u32'],
  ['KeepDaily', 'keepDaily', 'u32'],
  ['KeepWeekly', 'keepWeekly', 'u32'],
  ['KeepMonthly', 'keepMonthly', 'u32'],
  ['KeepYearly', 'keepYearly', 'u32'],
  ['KeepWithin', 'keepWithin', 'string'],
  ['IncludeNamed', 'includeNamed', 'bool'],
];

/**
 * The WIT `retention` record (jco's shape) for a prune request's body, or the configured
 * rules (`configured`, the same shape) when the body is empty; throws ApiError.
 */
export function requestedRules(body, configured) {
  if (body.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d)) {
    if (!configured || isEmpty(configured)) {
      throw new ApiError(
        'BadRequest',
        'No retention rule is configured (--keep-last, --keep-daily, ...): give the rules in the request body, e.g. {"KeepLast": 7}.',
      );
    }
    return configured;
  }
  const refused = (why) =>
    new ApiError('BadRequest', `The request body is not a set of retention rules: ${why}`);
  let value;
  try {
    value = parseJson(body);
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw refused(error.message);
    throw error;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof JsonNumber) {
    throw refused('a JSON object was expected');
  }
  const rules = { includeNamed: false };
  let within;
  // serde_json's Map is a BTreeMap: its entries come out sorted by key, bytewise.
  const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const key of keys) {
    const field = FIELDS.find(([name]) => name === key);
    if (!field) {
      throw refused(`unknown field \`${key}\`, expected one of ${FIELDS.map(([name]) => `\`${name}\``).join(', ')}`);
    }
    const [, camel, type] = field;
    const member = value[key];
    if (type === 'u32') {
      if (member !== null) rules[camel] = u32(member, refused);
    } else if (type === 'string') {
      if (member !== null) {
        if (typeof member !== 'string') throw refused(`invalid type: ${unexpected(member)}, expected a string`);
        within = member;
      }
    } else if (typeof member !== 'boolean') {
      throw refused(`invalid type: ${unexpected(member)}, expected a boolean`);
    } else {
      rules[camel] = member;
    }
  }
  if (within !== undefined) {
    try {
      rules.keepWithinSeconds = parseDuration(trimUnicode(within)).seconds;
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      throw new ApiError(
        'BadRequest',
        `KeepWithin ${rustDebug(within)}: ${error.message} (write a duration with its unit, e.g. 30d)`,
      );
    }
  }
  return rules;
}

/** Whether a rules record keeps nothing (wire.rs `Retention::is_empty`). */
function isEmpty(rules) {
  const counts = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'];
  return counts.every((key) => !rules[key]) && !rules.keepWithinSeconds;
}

/** A JSON value as serde's u32 visitor takes it. */
function u32(member, refused) {
  if (!(member instanceof JsonNumber) || member.kind === 'float') {
    throw refused(`invalid type: ${unexpected(member)}, expected u32`);
  }
  if (member.value < 0n || member.value > 0xffffffffn) {
    throw refused(`invalid value: ${unexpected(member)}, expected u32`);
  }
  return Number(member.value);
}

/** serde's `Unexpected` as serde_json displays it. */
function unexpected(member) {
  if (member === null) return 'null';
  if (typeof member === 'boolean') return `boolean \`${member}\``;
  if (typeof member === 'string') return `string ${rustDebug(member)}`;
  if (Array.isArray(member)) return 'sequence';
  if (member instanceof JsonNumber) {
    if (member.kind === 'float') return `floating point \`${zmij(member.value)}\``;
    return `integer \`${member.value}\``;
  }
  return 'map';
}

/** An f64 as the zmij crate writes it (serde_json's floats in error messages). */
function zmij(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  let text;
  if (exp >= -5 && exp <= 15) {
    if (digits.length - 1 <= exp) text = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
    else if (exp >= 0) text = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
    else text = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else {
    text = `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${exp >= 0 ? '+' : '-'}${Math.abs(exp)}`;
  }
  return sign + text;
}

/** A string as Rust's `{:?}` shows it (quotes; `"`, `\` and control characters escaped). */
export function rustDebug(text) {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += '\\0';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------------------
// humantime 2.4's parse_duration

class DurationError extends Error {}

/** Rust's `char::is_whitespace` (the Unicode White_Space property). */
function isWhitespace(ch) {
  return /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u.test(ch);
}

function trimUnicode(text) {
  const chars = [...text];
  let start = 0;
  let end = chars.length;
  while (start < end && isWhitespace(chars[start])) start++;
  while (end > start && isWhitespace(chars[end - 1])) end--;
  return chars.slice(start, end).join('');
}

const UNITS = {
  nanos: 'ns', nsec: 'ns', ns: 'ns',
  usec: 'us', us: 'us', 'µs': 'us',
  millis: 'ms', msec: 'ms', ms: 'ms',
  seconds: 's', second: 's', secs: 's', sec: 's', s: 's',
  minutes: 'm', minute: 'm', min: 'm', mins: 'm', m: 'm',
  hours: 'h', hour: 'h', hr: 'h', hrs: 'h', h: 'h',
  days: 'd', day: 'd', d: 'd',
  weeks: 'w', week: 'w', wk: 'w', wks: 'w', w: 'w',
  months: 'M', month: 'M', M: 'M',
  years: 'y', year: 'y', yr: 'y', yrs: 'y', y: 'y',
};
const U64_MAX = (1n << 64n) - 1n;
const OVERFLOW = 'number is too large or cannot be represented without a lack of precision (values below 1ns are not supported)';

function checked(n) {
  if (n > U64_MAX) throw new DurationError(OVERFLOW);
  return n;
}

function exactDiv(n, d) {
  if (n % d !== 0n) throw new DurationError(OVERFLOW);
  return n / d;
}

/** `{ seconds, nanoseconds }` (BigInts) of a duration written as humantime reads one. */
export function parseDuration(src) {
  if (src === '0') return { seconds: 0n, nanoseconds: 0n };
  // Characters with their byte offsets, as Rust's `Chars` walks a str.
  const chars = [];
  let offset = 0;
  for (const ch of src) {
    chars.push([ch, offset]);
    offset += Buffer.byteLength(ch, 'utf8');
  }
  const total = offset;
  let i = 0;
  const off = () => (i < chars.length ? chars[i][1] : total);
  const next = () => (i < chars.length ? chars[i++][0] : undefined);
  const isDigit = (c) => c >= '0' && c <= '9';
  const isLetter = (c) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === 'µ';
  let out = { seconds: 0n, nanoseconds: 0n };

  const firstChar = () => {
    const at = off();
    for (let c = next(); c !== undefined; c = next()) {
      if (isDigit(c)) return BigInt(c);
      if (isWhitespace(c)) continue;
      throw new DurationError(`expected number at ${at}`);
    }
    return undefined;
  };
  const fraction = (offRef) => {
    let numerator = 0n;
    let denominator = 1n;
    let zeros = true;
    for (let c = next(); c !== undefined; c = next()) {
      if (c === '0') {
        denominator = checked(denominator * 10n);
        if (!zeros) numerator = checked(numerator * 10n);
      } else if (c >= '1' && c <= '9') {
        zeros = false;
        denominator = checked(denominator * 10n);
        numerator = checked(numerator * 10n + BigInt(c));
      } else if (isWhitespace(c)) {
        // skipped
      } else if (isLetter(c)) {
        break;
      } else {
        throw new DurationError(`invalid character at ${offRef.value}`);
      }
      offRef.value = off();
    }
    if (denominator === 1n) throw new DurationError(`invalid character at ${offRef.value}`);
    return { numerator, denominator };
  };
  const add = (sec, nsec) => {
    let nanos = checked(out.nanoseconds + nsec);
    let seconds = sec;
    if (nanos > 1_000_000_000n) {
      seconds = checked(seconds + nanos / 1_000_000_000n);
      nanos %= 1_000_000_000n;
    }
    seconds = checked(out.seconds + seconds);
    // Duration::new carries whole seconds out of the nanoseconds.
    out = { seconds: checked(seconds + nanos / 1_000_000_000n), nanoseconds: nanos % 1_000_000_000n };
  };
  const unit = (n, frac, start, end) => {
    const text = Buffer.from(src, 'utf8').subarray(start, end).toString('utf8');
    const kind = Object.hasOwn(UNITS, text) ? UNITS[text] : undefined;
    if (!kind) {
      if (text === '') throw new DurationError(`time unit needed, for example ${n}sec or ${n}ms`);
      throw new DurationError(
        `unknown time unit ${rustDebug(text)}, supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)`,
      );
    }
    const secondsPer = { s: 1n, m: 60n, h: 3600n, d: 86400n, w: 604800n, M: 2_630_016n, y: 31_557_600n };
    const nanosPer = { ns: 1n, us: 1000n, ms: 1_000_000n };
    if (kind in nanosPer) add(0n, checked(n * nanosPer[kind]));
    else add(checked(n * secondsPer[kind]), 0n);
    if (frac) {
      const { numerator: f, denominator: d } = frac;
      if (kind === 'ns') throw new DurationError(OVERFLOW);
      if (kind === 'us') add(0n, exactDiv(checked(f * 1000n), d));
      else if (kind === 'ms') add(0n, exactDiv(checked(f * 1_000_000n), d));
      else if (kind === 's') add(0n, exactDiv(checked(f * 1_000_000_000n), d));
      else if (kind === 'm') add(0n, exactDiv(checked(f * 60_000_000_000n), d));
      else add(exactDiv(checked(f * secondsPer[kind]), d), 0n);
    }
  };

  let n = firstChar();
  if (n === undefined) throw new DurationError('value was empty');
  outer: for (;;) {
    let frac;
    const offRef = { value: off() };
    for (let c = next(); c !== undefined; c = next()) {
      if (isDigit(c)) {
        n = checked(n * 10n + BigInt(c));
      } else if (isWhitespace(c)) {
        // skipped
      } else if (isLetter(c)) {
        break;
      } else if (c === '.') {
        frac = fraction(offRef);
        break;
      } else {
        throw new DurationError(`invalid character at ${offRef.value}`);
      }
      offRef.value = off();
    }
    const start = offRef.value;
    let end = off();
    for (let c = next(); c !== undefined; c = next()) {
      if (isDigit(c)) {
        unit(n, frac, start, end);
        n = BigInt(c);
        continue outer;
      } else if (isWhitespace(c)) {
        break;
      } else if (!isLetter(c)) {
        throw new DurationError(`invalid character at ${end}`);
      }
      end = off();
    }
    unit(n, frac, start, end);
    n = firstChar();
    if (n === undefined) return out;
  }
}
