import type { CollectionTag, ScalarTag } from 'yaml';

/** Just enough CloudFormation to read templates in tests: JSON values with intrinsic functions. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Resource {
  Type: string;
  Properties?: JsonObject;
  DependsOn?: string | string[];
  Condition?: string;
}

export interface Template {
  Parameters?: Record<string, JsonObject>;
  Conditions?: JsonObject;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, JsonObject>;
}

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource?: Json;
  Principal?: Json;
  Condition?: JsonObject;
}

const PSEUDO_PARAMETERS = new Set([
  'AWS::AccountId',
  'AWS::NoValue',
  'AWS::NotificationARNs',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
]);

const FUNCTIONS = [
  'Base64',
  'Cidr',
  'Equals',
  'FindInMap',
  'GetAtt',
  'GetAZs',
  'If',
  'ImportValue',
  'Join',
  'Not',
  'And',
  'Or',
  'Select',
  'Split',
  'Sub',
];

/**
 * `yaml` tags for the CloudFormation short forms (`!Ref`, `!Sub`, `!GetAtt`, `!If`...), turning
 * each into its long form (`{ Ref }`, `{ 'Fn::Sub' }`...) as CloudFormation itself does.
 */
export const cloudFormationTags: (ScalarTag | CollectionTag)[] = [
  { tag: '!Ref', resolve: (value: string) => ({ Ref: value }) },
  { tag: '!Condition', resolve: (value: string) => ({ Condition: value }) },
  ...FUNCTIONS.flatMap((name): (ScalarTag | CollectionTag)[] => [
    {
      tag: `!${name}`,
      resolve: (value: string) => ({ [`Fn::${name}`]: name === 'GetAtt' ? value.split('.') : value }),
    },
    { tag: `!${name}`, collection: 'seq', resolve: (seq) => ({ [`Fn::${name}`]: seq.toJSON() }) },
    { tag: `!${name}`, collection: 'map', resolve: (map) => ({ [`Fn::${name}`]: map.toJSON() }) },
  ]),
];

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Every statement of every inline policy of an AWS::IAM::Role. */
export function roleStatements(role: Resource): Statement[] {
  const policies = asList(role.Properties?.Policies) as JsonObject[];
  return policies.flatMap((p) => policyStatements(p.PolicyDocument));
}

/** The statements of a policy document. */
export function policyStatements(document: Json | undefined): Statement[] {
  if (!isObject(document)) throw new Error('not a policy document');
  return asList(document.Statement) as unknown as Statement[];
}

/** The statements granting `action`, exactly (no wildcards are used in our templates). */
export function statementsFor(statements: Statement[], action: string): Statement[] {
  return statements.filter((s) => s.Effect === 'Allow' && asList(s.Action).includes(action));
}

/**
 * Evaluates `Fn::If` for the given condition values and drops `AWS::NoValue`, as CloudFormation does
 * when it creates the stack.
 */
export function withConditions(value: Json, conditions: Record<string, boolean>): Json | undefined {
  if (Array.isArray(value)) {
    return value.map((v) => withConditions(v, conditions)).filter((v): v is Json => v !== undefined);
  }
  if (!isObject(value)) return value;
  if (value.Ref === 'AWS::NoValue') return undefined;
  const fnIf = value['Fn::If'];
  if (Array.isArray(fnIf)) {
    const [name, whenTrue, whenFalse] = fnIf as [string, Json, Json];
    if (!(name in conditions)) throw new Error(`no value given for condition ${name}`);
    return withConditions(conditions[name] ? whenTrue : whenFalse, conditions);
  }
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    const resolved = withConditions(v, conditions);
    if (resolved !== undefined) out[key] = resolved;
  }
  return out;
}

/** Logical names a value refers to through Ref, Fn::GetAtt and Fn::Sub (pseudo parameters excluded). */
export function referencedNames(value: Json): string[] {
  const names: string[] = [];
  const visit = (v: Json): void => {
    if (Array.isArray(v)) {
      for (const item of v) visit(item);
      return;
    }
    if (!isObject(v)) return;
    for (const [key, inner] of Object.entries(v)) {
      if (key === 'Ref' && typeof inner === 'string') names.push(inner);
      else if (key === 'Fn::GetAtt') {
        names.push(Array.isArray(inner) ? String(inner[0]) : String(inner).split('.')[0]!);
      } else if (key === 'Fn::Sub') {
        const [text, variables] = Array.isArray(inner) ? inner : [inner, {}];
        const local = new Set(Object.keys(isObject(variables) ? variables : {}));
        for (const match of String(text).matchAll(/\$\{([^!}][^}]*)\}/g)) {
          const name = match[1]!.split('.')[0]!;
          if (!local.has(name)) names.push(name);
        }
        if (isObject(variables)) visit(variables);
      } else visit(inner);
    }
  };
  visit(value);
  return names.filter((n) => !PSEUDO_PARAMETERS.has(n));
}

/** Names referred to that are neither a parameter nor a resource of the template. */
export function danglingReferences(template: Template): string[] {
  const known = new Set([...Object.keys(template.Parameters ?? {}), ...Object.keys(template.Resources)]);
  const all = [
    ...Object.values(template.Resources).flatMap((r) => [
      ...referencedNames(r.Properties ?? {}),
      ...asList(r.DependsOn),
    ]),
    ...referencedNames((template.Outputs ?? {}) as Json),
  ];
  return [...new Set(all.filter((n) => !known.has(n)))];
}

/** A dependency cycle between resources (CloudFormation refuses those), or undefined. */
export function dependencyCycle(template: Template): string[] | undefined {
  const edges = new Map<string, string[]>();
  for (const [name, r] of Object.entries(template.Resources)) {
    const deps = [...referencedNames(r.Properties ?? {}), ...asList(r.DependsOn)];
    edges.set(
      name,
      deps.filter((d) => d in template.Resources),
    );
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'visiting') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'visiting');
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const CENTRAL_HEADER = Buffer.from([0x50, 0x4b, 0x01, 0x02]);

/** File names in a zip archive, read from its central directory. */
export function zipEntries(zip: Buffer): string[] {
  const names: string[] = [];
  for (let at = zip.indexOf(CENTRAL_HEADER); at >= 0; at = zip.indexOf(CENTRAL_HEADER, at + 4)) {
    const nameLength = zip.readUInt16LE(at + 28);
    names.push(zip.toString('utf8', at + 46, at + 46 + nameLength));
  }
  return names;
}

/**
 * The values of a packaged template's conditions, where each is known at package time: `Fn::Equals`
 * of two strings (serverless.yml's conditions compare a value the param step computed with "true"),
 * and `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition` over those.
 */
export function conditionValues(template: Template): Record<string, boolean> {
  const conditions = (template.Conditions ?? {}) as JsonObject;
  const values: Record<string, boolean> = {};
  const evaluate = (value: Json): boolean => {
    if (!isObject(value)) throw new Error(`not a condition: ${JSON.stringify(value)}`);
    if ('Condition' in value) return conditionValue(String(value.Condition));
    const [fn, args] = Object.entries(value)[0]!;
    const list = asList(args as Json | Json[]);
    if (fn === 'Fn::Equals') {
      if (!list.every((a) => typeof a === 'string'))
        throw new Error(`not known at package time: ${JSON.stringify(value)}`);
      return list[0] === list[1];
    }
    if (fn === 'Fn::Not') return !evaluate(list[0]!);
    if (fn === 'Fn::And') return list.every(evaluate);
    if (fn === 'Fn::Or') return list.some(evaluate);
    throw new Error(`unknown condition function ${fn}`);
  };
  const conditionValue = (name: string): boolean => {
    if (!(name in values)) values[name] = evaluate(conditions[name]!);
    return values[name]!;
  };
  for (const name of Object.keys(conditions)) conditionValue(name);
  return values;
}
