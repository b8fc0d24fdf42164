import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { type FunctionName, NOT_SENT, PERMISSIONS } from '../../src/permissions';
import { SERVICES } from './sdk-actions';

/**
 * src/permissions.ts against the code: every AWS SDK command a handler's code can send is listed for
 * that function, and every action listed as an SDK call is one. The code is what esbuild bundles
 * for the handler (the same entry points as scripts/build.mjs), so a call added anywhere the handler
 * reaches is found. serverless.test.ts and destination-role.test.ts compare the list with the roles.
 */

const root = resolve(__dirname, '../..');

/** Our source files esbuild takes into a handler's bundle (dependencies left out). */
async function sourceFiles(name: FunctionName): Promise<string[]> {
  const result = await build({
    entryPoints: [join(root, `src/handlers/${name}.ts`)],
    bundle: true,
    platform: 'node',
    packages: 'external',
    write: false,
    metafile: true,
    logLevel: 'silent',
    absWorkingDir: root,
  });
  return Object.keys(result.metafile.inputs).filter((f) => f.startsWith('src/'));
}

/**
 * The commands a source file sends: names `<Operation>Command` that a package it imports (statically
 * or with `import()`) exports, used anywhere in the file.
 */
function commandsIn(text: string): { pkg: string; command: string }[] {
  const found: { pkg: string; command: string }[] = [];
  const packages = new Set(
    [...text.matchAll(/(?:from|import\()\s*'(@aws-sdk\/[a-z0-9-]+)'/g)].map((m) => m[1]!),
  );
  for (const pkg of packages) {
    if (!SERVICES[pkg]) throw new Error(`${pkg}: unknown SDK package; add it to SERVICES`);
    const exported = new Set(Object.keys(require(pkg) as object).filter((k) => k.endsWith('Command')));
    for (const m of text.matchAll(/\b([A-Z][A-Za-z0-9]*)Command\b/g)) {
      if (exported.has(`${m[1]}Command`)) found.push({ pkg, command: m[1]! });
    }
  }
  return found;
}

async function sdkActions(name: FunctionName): Promise<Map<string, string[]>> {
  const actions = new Map<string, string[]>();
  for (const file of await sourceFiles(name)) {
    for (const { pkg, command } of commandsIn(await readFile(join(root, file), 'utf8'))) {
      const action = SERVICES[pkg]!(command);
      actions.set(action, [...new Set([...(actions.get(action) ?? []), file])]);
    }
  }
  return actions;
}

describe.each(['mirror', 'resync'] as const)('the %s function', (name) => {
  let called: Map<string, string[]>;

  beforeAll(async () => {
    called = await sdkActions(name);
  });

  it('reaches its code through the handler (the scan sees the AWS adapters)', async () => {
    const files = await sourceFiles(name);
    expect(files).toContain(`src/handlers/${name}.ts`);
    expect(files).toContain('src/aws/assume-role.ts');
  });

  it('lists every AWS SDK command its code can send: granted as an sdk call, or never sent and why', () => {
    const listed = new Set([
      ...PERMISSIONS[name].filter((p) => p.via === 'sdk').map((p) => p.action),
      ...NOT_SENT[name].map((n) => n.action),
    ]);
    // A new call: list it in src/permissions.ts and grant it in serverless.yml (or the destination role).
    const missing = [...called]
      .filter(([action]) => !listed.has(action))
      .map(([a, f]) => `${a} (${f}): list it in src/permissions.ts, grant it in the role`);
    expect(missing).toEqual([]);
  });

  it('lists as never sent only commands that are in its code, and none that it is granted', () => {
    const stale = NOT_SENT[name].filter((n) => !called.has(n.action)).map((n) => n.action);
    expect(stale).toEqual([]);
    const granted = new Set(PERMISSIONS[name].filter((p) => p.caller === 'function').map((p) => p.action));
    expect(NOT_SENT[name].filter((n) => granted.has(n.action)).map((n) => n.action)).toEqual([]);
  });

  it('lists as sdk calls only commands its code sends', () => {
    const stale = PERMISSIONS[name].filter((p) => p.via === 'sdk' && !called.has(p.action));
    expect(stale.map((p) => p.action)).toEqual([]);
  });

  it('gives every action once per caller, with a reason', () => {
    const keys = PERMISSIONS[name].map((p) => `${p.caller} ${p.action}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const p of PERMISSIONS[name]) {
      expect(p.action).toMatch(/^[a-z0-9-]+:[A-Z][A-Za-z]+$/);
      expect(p.why.length).toBeGreaterThan(5);
      // Destination grants by the destination stack's parameters; the functions' own by what the destinations need.
      if (p.when) {
        const functionOptions = ['HasDestinationRoles', 'HasDestinationSecrets', 'HasSecretKmsKeys'];
        expect(p.caller).toBe(functionOptions.includes(p.when) ? 'function' : 'destination');
      }
    }
  });
});

describe('the scan', () => {
  it('finds commands sent through a dynamic import, and maps batch and document-client commands', () => {
    const text = [
      "import { PutCommand } from '@aws-sdk/lib-dynamodb';",
      "import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';",
      "const sdk = await import('@aws-sdk/client-ecr');",
      'await c.send(new sdk.GetAuthorizationTokenCommand({}));',
      'type Out = GetAuthorizationTokenCommandOutput;',
    ].join('\n');
    const actions = commandsIn(text).map(({ pkg, command }) => SERVICES[pkg]!(command));
    expect(actions.sort()).toEqual(['dynamodb:PutItem', 'ecr:GetAuthorizationToken', 'sqs:SendMessage']);
  });
});
