// The PII and secret detectors: true and false positives per kind, and the checksums behind them.
import { describe, expect, it } from 'vitest';
import { PII_KINDS, type PiiKind } from '../../../../shared/policy/filters.js';
import { prng } from './support.js';
import { detect, holdFrom, luhn, mod97, pendingSecret, PEM_MAX } from '../../../../sidecar/pipeline/filters/pii-detectors.js';

const ALL = new Set<PiiKind>(PII_KINDS);
const finds = (text: string, kinds: Set<PiiKind> = ALL): string[] => detect(text, kinds).map((m) => `${m.kind}:${text.slice(m.start, m.end)}`);

describe('checksums', () => {
  it('Luhn: valid test numbers pass, a changed digit fails', () => {
    for (const n of ['4111111111111111', '5500000000000004', '340000000000009', '6011000000000004', '4242424242424242']) expect(luhn(n), n).toBe(true);
    for (const n of ['4111111111111112', '5500000000000005', '1234567812345678']) expect(luhn(n), n).toBe(false);
  });
  it('mod-97: valid IBANs pass, a swapped digit fails', () => {
    for (const n of ['DE89370400440532013000', 'GB82WEST12345698765432', 'FR1420041010050500013M02606', 'NL91ABNA0417164300']) expect(mod97(n), n).toBe(true);
    for (const n of ['DE89370400440532013001', 'GB82WEST12345698765423']) expect(mod97(n), n).toBe(false);
  });
});

describe('true positives', () => {
  it.each([
    ['write to ada.lovelace@example.com today', 'email:ada.lovelace@example.com'],
    ['cc bob+tag@mail.co.uk.', 'email:bob+tag@mail.co.uk'],
    ['call +49 30 1234567 now', 'phone:+49 30 1234567'],
    ['call +14155552671', 'phone:+14155552671'],
    ['US office (415) 555-2671', 'phone:(415) 555-2671'],
    ['dial 415-555-2671', 'phone:415-555-2671'],
    ['Berlin 030 1234567', 'phone:030 1234567'],
    ['card 4111 1111 1111 1111 exp', 'credit-card:4111 1111 1111 1111'],
    ['amex 3400-000000-00009', 'credit-card:3400-000000-00009'],
    ['visa 4242424242424242', 'credit-card:4242424242424242'],
    ['pay DE89 3704 0044 0532 0130 00 please', 'iban:DE89 3704 0044 0532 0130 00'],
    ['pay GB82WEST12345698765432 AND more', 'iban:GB82WEST12345698765432'],
    ['ssn 123-45-6789.', 'us-ssn:123-45-6789'],
    ['host 192.168.1.10 is up', 'ip-address:192.168.1.10'],
    ['v6 2001:db8::8a2e:370:7334 ok', 'ip-address:2001:db8::8a2e:370:7334'],
    ['key AKIAIOSFODNN7EXAMPLE here', 'secret:AKIAIOSFODNN7EXAMPLE'],
    ['temp ASIAY34FZKBOKMUTVV7A', 'secret:ASIAY34FZKBOKMUTVV7A'],
    [`openai sk-proj-${'a1B2'.repeat(12)}`, `secret:sk-proj-${'a1B2'.repeat(12)}`],
    [`anthropic sk-ant-api03-${'x'.repeat(90)}`, `secret:sk-ant-api03-${'x'.repeat(90)}`],
    [`google AIza${'B'.repeat(35)}`, `secret:AIza${'B'.repeat(35)}`],
    [`gh ghp_${'A'.repeat(36)}`, `secret:ghp_${'A'.repeat(36)}`],
    [`gl glpat-${'z'.repeat(20)}`, `secret:glpat-${'z'.repeat(20)}`],
    ['slack xoxb-123456789012-abcdefABCDEF', 'secret:xoxb-123456789012-abcdefABCDEF'],
    ['"private_key_id": "0123456789abcdef0123456789abcdef01234567"', 'secret:"private_key_id": "0123456789abcdef0123456789abcdef01234567"'],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', 'secret:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
  ])('%s', (text, want) => {
    expect(finds(text)).toEqual([want]);
  });

  it('PEM private-key blocks, whole', () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yQ==\n-----END RSA PRIVATE KEY-----';
    expect(finds(`here:\n${pem}\nthanks`)).toEqual([`secret:${pem}`]);
  });

  it('a candidate the check refuses does not hide a real find inside it (the result does not depend on where a scan starts)', () => {
    expect(finds('ref 12 4111 1111 1111 1111 ok')).toEqual(['credit-card:4111 1111 1111 1111']);
    expect(finds('DE89 3704 0044 0532 0130 00 4111 1111 1111 1111')).toEqual(['iban:DE89 3704 0044 0532 0130 00', 'credit-card:4111 1111 1111 1111']);
  });

  it('holdFrom: a stream holds prose by its last word, a number or token until it ends', () => {
    expect(holdFrom('The report is rea', ALL)).toBe('The report is '.length);
    expect(holdFrom('The report is ready. ', ALL)).toBe('The report is ready'.length); // '. ' could still run into a number
    expect(holdFrom('call +49 30 12', ALL)).toBe('call'.length); // the space may be a phone number's too
    expect(holdFrom('card 4111 1111', ALL)).toBe('card'.length);
    expect(holdFrom('mail ada@exa', ALL)).toBe('mail '.length);
    expect(holdFrom('key: "private_key_id": "0123', ALL)).toBe('key: '.length);
    // only the kinds asked for: a phone number is not held by an email-only filter
    expect(holdFrom('call +49 30 12', new Set<PiiKind>(['email']))).toBe('call +49 30 '.length);
  });

  it('pendingSecret: where a long secret that may still grow begins at the end of a text (what a stream holds)', () => {
    const head = 'text before ';
    const open = `${head}-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg${'A'.repeat(400)}\n-----END EC PRIV`;
    expect(pendingSecret(open, ALL)).toBe(head.length);
    expect(pendingSecret(`${open}ATE KEY-----`, ALL)).toBe(`${open}ATE KEY-----`.length); // complete: a find, not pending
    expect(pendingSecret(`${open}`, new Set<PiiKind>(['email']))).toBe(open.length); // not looking for secrets
    const cert = `${head}-----BEGIN CERTIFICATE-----\nMIIB${'A'.repeat(400)}`;
    expect(pendingSecret(cert, ALL)).toBe(cert.length); // not a key: nothing
    const jwt = `${head}eyJhbGciOiJIUzI1NiJ9.eyJ${'a'.repeat(500)}.sig`;
    expect(pendingSecret(jwt, ALL)).toBe(head.length);
    expect(pendingSecret(`${jwt} and on`, ALL)).toBe(jwt.length + 7); // the run ended: the regex decides
    expect(pendingSecret(`${head}github_pat_${'a'.repeat(200)}`, ALL)).toBe(head.length);
    // bounded: a block longer than any find is not held
    expect(pendingSecret(`-----BEGIN PRIVATE KEY-----\n${'A'.repeat(PEM_MAX)}`, ALL)).toBe(PEM_MAX + 28);
  });
});

describe('false positives that must not be found', () => {
  it.each([
    ['order id 12345678901234'], // 14 digits, no card prefix/Luhn
    ['invoice 4111111111111112'], // fails Luhn
    ['build 2024-01-15T10:30:45Z'], // a timestamp
    ['epoch 1700000000123'],
    ['version 1.2.3 and v1.2.3.4 and 10.0.0'],
    ['time 12:30:45'],
    ['IBAN-like DE89 3704 0044 0532 0130 01'], // mod-97 fails
    ['XX89370400440532013000'], // unknown country
    ['ssn-like 000-12-3456 and 666-12-3456 and 900-12-3456'],
    ['ip-like 999.1.1.1 and 1.2.3'],
    ['a user@localhost mention'],
    ['sk-short'],
    ['phone-ish 12345'],
    ['isbn 978-3-16-148410-0'],
  ])('%s', (text) => {
    expect(finds(text)).toEqual([]);
  });
});

describe('secret tokens need a left boundary: a prefix inside a word, a path or a slug is not a key', () => {
  const body = 'a1B2'.repeat(12);
  it.each([
    ['risk-assessment-for-the-quarterly-review'],
    ['task-runner-integration-tests-nightly'],
    ['https://example.com/blog/ask-the-community-forum-guidelines'],
    [`disk-${body}`], // openai sk- inside a word
    [`desk-proj-${body}`],
    [`x_sk-ant-api03-${'x'.repeat(90)}`], // anthropic
    [`MYAKIAIOSFODNN7EXAMPLE`], // aws, run on from a word
    [`keyASIAY34FZKBOKMUTVV7A`],
    [`xAIza${'B'.repeat(35)}`], // google
    [`AIza${'B'.repeat(36)}`], // google, too long to be one
    [`prefixghp_${'A'.repeat(36)}`], // github
    [`my-github_pat_${'A'.repeat(30)}`],
    [`aglpat-${'z'.repeat(20)}`], // gitlab
    ['glpat-the-deployment-guide-for-teams'],
    ['detoxoxb-123456789012-abcdefABCDEF'], // slack
    ['xoxb-is-the-prefix-slack-uses-for-bots'],
    ['sk-learn-compatible-estimators-and-pipelines'], // a slug after the prefix
    ['/sk-the-community-forum-guidelines'],
    ['aeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'], // jwt inside a word
  ])('%s', (text) => {
    expect(finds(text, new Set(['secret']))).toEqual([]);
  });

  it('still finds them after a space, punctuation, a quote or a JSON escape', () => {
    const key = `sk-proj-${body}`;
    for (const pre of [' ', '(', '"', '=', ':', '\\n', '\n', '/']) expect(finds(`x${pre}${key}`, new Set(['secret'])), JSON.stringify(pre)).toEqual([`secret:${key}`]);
    expect(finds(`{"k":"line\\nAKIAIOSFODNN7EXAMPLE"}`, new Set(['secret']))).toEqual(['secret:AKIAIOSFODNN7EXAMPLE']);
    expect(finds(`xoxb-123456789012-abcdefABCDEF`, new Set(['secret']))).toEqual(['secret:xoxb-123456789012-abcdefABCDEF']);
  });
});

describe('PEM blocks are found in linear time, with the finds of the bounded lazy regex they replace', () => {
  // the pattern PEM blocks were found with: tried at every BEGIN line it ran up to 16 KiB on, so 560 KB of
  // repeated BEGIN lines took 2.5 s against 36 ms for prose of the same size (now about the same as prose)
  const REFERENCE = /-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----[A-Za-z0-9+/=\s\\:,-]{1,16384}?-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----/g;
  const SECRET = new Set<PiiKind>(['secret']);
  const pems = (text: string): [number, number][] => detect(text, SECRET).map((m) => [m.start, m.end]);
  const reference = (text: string): [number, number][] => [...text.matchAll(REFERENCE)].map((m) => [m.index, m.index + m[0].length]);

  it('the same finds as the regex on random mixes of BEGIN and END lines, bodies, and characters outside the body set', () => {
    const pieces = ['-----BEGIN PRIVATE KEY-----', '-----BEGIN RSA PRIVATE KEY-----', '-----BEGIN CERTIFICATE-----', '-----END PRIVATE KEY-----', '-----END RSA PRIVATE KEY-----', '-----END X-----', '-----BEGIN ', '-----END ', 'MIIEpAIB', 'aFDr+Bz9/vFq==', '\n', ' ', 'Proc-Type: 4,ENCRYPTED', '.', '!', '"', 'ok', 'é'];
    const rnd = prng(21);
    for (let round = 0; round < 2000; round++) {
      const n = 1 + Math.floor(rnd() * 14);
      const text = Array.from({ length: n }, () => pieces[Math.floor(rnd() * pieces.length)]).join(rnd() < 0.5 ? '\n' : '');
      expect(pems(text), JSON.stringify(text)).toEqual(reference(text));
    }
    // the body bound: 16,384 characters are a block, 16,385 are not
    const body = (n: number) => `-----BEGIN PRIVATE KEY-----${'A'.repeat(n)}-----END PRIVATE KEY-----`;
    expect(pems(body(16_384))).toEqual(reference(body(16_384)));
    expect(pems(body(16_384))).toHaveLength(1);
    expect(pems(body(16_385))).toEqual([]);
  });

  it('a run of single digits and spaces (a card candidate at every digit) finds nothing, and a card after it is still found', () => {
    expect(detect('1 '.repeat(5000), new Set<PiiKind>(['credit-card']))).toEqual([]);
    expect(finds(`${'1 '.repeat(50)}x 4111 1111 1111 1111`, new Set<PiiKind>(['credit-card']))).toEqual(['credit-card:4111 1111 1111 1111']);
  });

  it('560 KB of repeated BEGIN lines, then a key: one find, the one the regex makes (from the first BEGIN line within 16 KiB of the END)', () => {
    const line = '-----BEGIN PRIVATE KEY-----\n';
    const key = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----';
    const text = line.repeat(20_000) + key;
    expect(pems(line.repeat(20_000))).toEqual([]);
    const got = pems(text);
    expect(got).toHaveLength(1);
    const [start, end] = got[0]!;
    expect(end).toBe(text.length);
    const foot = text.length - '-----END RSA PRIVATE KEY-----'.length;
    expect(start % line.length).toBe(0);
    expect(foot - (start + line.length - 1)).toBeLessThanOrEqual(16_384);
    expect(foot - (start - 1)).toBeGreaterThan(16_384);
  });
});

describe('detect', () => {
  it('looks only for the kinds asked for, and resolves overlaps to the longest', () => {
    const text = 'mail ada@example.com from 10.0.0.1';
    expect(finds(text, new Set(['email']))).toEqual(['email:ada@example.com']);
    expect(finds(text, new Set(['ip-address']))).toEqual(['ip-address:10.0.0.1']);
    const iban = 'GB82WEST12345698765432';
    expect(finds(iban)).toEqual([`iban:${iban}`]);
  });
});
