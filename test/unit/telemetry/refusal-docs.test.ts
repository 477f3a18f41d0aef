// The refusals the proxy records (REFUSAL_REASONS) are the ones docs/metrics.md (spans) and docs/audit.md list:
// each status with its reason, so a refusal added in code cannot go undocumented.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REFUSAL_REASONS } from '../../../sidecar/telemetry/refusal.js';

const doc = (name: string): string => readFileSync(join(__dirname, '../../../docs', name), 'utf8').replace(/\s+/g, ' ');

describe('refusals in the docs', () => {
  const spans = doc('metrics.md').split('### Spans')[1]!.split('| attribute |')[0]!;
  const audit = doc('audit.md');
  for (const [status, reason] of Object.entries(REFUSAL_REASONS)) {
    it(`${status} ${reason} is documented`, () => {
      expect(spans).toMatch(new RegExp(`\\b${status} `));
      expect(spans).toContain(`\`${reason}\``);
      expect(audit).toMatch(new RegExp(`\\b${status} `));
      expect(audit).toContain(`\`${reason}\``);
    });
  }
});
