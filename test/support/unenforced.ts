// For tests of the schema and merge rules of policy fields this version does not enforce yet: a stand-in for
// shared/policy/enforced.ts that refuses nothing. Production code never loads it.
import type * as Enforced from '../../shared/policy/enforced.js';

export function acceptUnenforced(): typeof Enforced {
  return {
    NOT_ENFORCED_MESSAGE: 'not enforced by this version',
    NOT_ENFORCED_FIELDS: [],
    notEnforced: () => [],
  };
}
