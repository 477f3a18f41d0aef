// What the API server does with a custom resource against its CRD's structural schema, for the keywords our
// CRDs use (apiextensions.k8s.io/v1, "Specifying a structural schema" and "Field validation" in the Kubernetes
// docs): types, enums, patterns, bounds, required, closed objects (strict field validation: an unknown field
// is an error, as `kubectl apply` asks for by default), maps via additionalProperties, and list-type map keys.
// Keywords it does not know make it throw, so a schema never passes for a reason this file did not check.

import { evaluate } from '@marcbachmann/cel-js';

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  format?: string;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-validations'?: Array<{ rule: string; message: string }>;
  default?: unknown;
  'x-kubernetes-list-map-keys'?: string[];
}

const KNOWN = new Set([
  'type', 'description', 'properties', 'additionalProperties', 'items', 'required', 'enum', 'pattern', 'minLength',
  'maxLength', 'minimum', 'maximum', 'maxItems', 'format', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
  'x-kubernetes-validations', 'default',
]);

/** Structural-schema rules: every node typed, no `additionalProperties` beside `properties`, none set to false. */
export function structuralProblems(s: Schema, path = ''): string[] {
  const out: string[] = [];
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`crd-schema: keyword ${k} at ${path || '<root>'} is not implemented`);
  if (!s.type) out.push(`${path || '<root>'}: type is required in a structural schema`);
  if (s.properties && s.additionalProperties !== undefined) out.push(`${path}: properties and additionalProperties are mutually exclusive`);
  if (s.additionalProperties === false) out.push(`${path}: additionalProperties: false is not allowed`);
  if (s.type === 'array' && !s.items) out.push(`${path}: array needs items`);
  for (const [k, v] of Object.entries(s.properties ?? {})) out.push(...structuralProblems(v, `${path}.${k}`));
  if (typeof s.additionalProperties === 'object') out.push(...structuralProblems(s.additionalProperties, `${path}[*]`));
  if (s.items) out.push(...structuralProblems(s.items, `${path}[]`));
  return out;
}

/** Validation errors as `path: message`, like the API server's `spec.x: Unsupported value: …`. */
export function validateAgainst(schema: Schema, value: unknown, path = ''): string[] {
  const at = path || '<root>';
  const out: string[] = [];
  const t = schema.type;
  const typeOk =
    t === undefined ||
    (t === 'object' && typeof value === 'object' && value !== null && !Array.isArray(value)) ||
    (t === 'array' && Array.isArray(value)) ||
    (t === 'string' && typeof value === 'string') ||
    (t === 'integer' && Number.isInteger(value)) ||
    (t === 'number' && typeof value === 'number' && Number.isFinite(value)) ||
    (t === 'boolean' && typeof value === 'boolean');
  if (!typeOk) return [`${at}: Invalid value: ${JSON.stringify(value)}: must be of type ${t}`];
  if (schema.enum && !schema.enum.includes(value)) out.push(`${at}: Unsupported value: ${JSON.stringify(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) out.push(`${at}: Invalid value: ${JSON.stringify(value)}: should match '${schema.pattern}'`);
    if (schema.minLength !== undefined && value.length < schema.minLength) out.push(`${at}: Invalid value: should be at least ${schema.minLength} chars long`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) out.push(`${at}: Too long: may not be longer than ${schema.maxLength}`);
    if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) out.push(`${at}: Invalid value: ${JSON.stringify(value)}: must be a date-time`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${at}: Invalid value: ${value}: should be greater than or equal to ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${at}: Invalid value: ${value}: should be less than or equal to ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) out.push(`${at}: Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    value.forEach((v, i) => out.push(...validateAgainst(schema.items!, v, `${path}[${i}]`)));
    const lt = schema['x-kubernetes-list-type'];
    if (lt === 'set' || lt === 'map') {
      const keyOf = (v: unknown): string =>
        lt === 'set' ? JSON.stringify(v) : JSON.stringify((schema['x-kubernetes-list-map-keys'] ?? []).map((k) => (v as Record<string, unknown>)[k]));
      const seen = new Set<string>();
      value.forEach((v, i) => {
        const k = keyOf(v);
        if (seen.has(k)) out.push(`${path}[${i}]: Duplicate value: ${k}`);
        seen.add(k);
      });
    }
  }
  if (t === 'object' && typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in obj)) out.push(`${path ? path + '.' : ''}${r}: Required value`);
    for (const [k, v] of Object.entries(obj)) {
      const p = path ? `${path}.${k}` : k;
      const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      // metadata is validated by the API server itself, not by the CRD schema
      if (sub === undefined && !(schema.properties === undefined && schema.additionalProperties === undefined)) out.push(`${p}: unknown field "${p}"`);
      else if (sub) out.push(...validateAgainst(sub, v, p));
    }
  }
  if (out.length === 0) {
    // CEL rules run on a node whose own schema checks and its children's passed, with `self` bound to it (as the API server does).
    for (const v of schema['x-kubernetes-validations'] ?? []) {
      let ok: unknown;
      try {
        ok = evaluate(v.rule, { self: value });
      } catch (err) {
        throw new Error(`crd-schema: rule ${JSON.stringify(v.rule)} at ${at} does not evaluate: ${(err as Error).message}`);
      }
      if (ok !== true) out.push(`${at}: Invalid value: ${v.message}`);
    }
  }
  return out;
}
