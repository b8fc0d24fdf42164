// Bundles the CLI and the Lambda handlers with esbuild: one self-contained file each,
// so `npx ecr-mirror` needs no TypeScript at run time and Lambda packages stay small.

import { existsSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
};

// The CLI is split: `copy` between plain registries loads about 200 KB, while the AWS SDK (ECR
// hosts, `status`, `resync`) sits in chunks that load on first use. Measured with `npm run bench`:
// one 2 MB file cost ~70 ms of start-up on every run, whatever the command. Splitting needs ESM;
// the banner gives the bundled CommonJS dependencies the `require` they expect.
await rm('dist/cli', { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { 'ecr-mirror': 'src/cli/main.ts' },
  outdir: 'dist/cli',
  format: 'esm',
  splitting: true,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  target: 'node20',
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);",
  },
});
await chmod('dist/cli/ecr-mirror.mjs', 0o755);
await rm('dist/cli.js', { force: true });
await rm('dist/cli.js.map', { force: true });

// `npm start`: the local run. dynalite (a development dependency with a native part) stays outside.
await build({
  ...common,
  entryPoints: ['src/local/main.ts'],
  outfile: 'dist/local.js',
  format: 'cjs',
  target: 'node20',
  external: ['dynalite'],
});

const handlers = ['src/handlers/mirror.ts', 'src/handlers/resync.ts'].filter((f) => existsSync(f));
if (handlers.length > 0) {
  await build({
    ...common,
    entryPoints: handlers,
    outdir: 'dist/lambda',
    format: 'cjs',
    target: 'node22',
    // The Lambda runtime ships the AWS SDK v3, but bundling pins the version we test with.
    minify: true,
  });
}
