// Bundles the CLI and the Lambda handlers with esbuild, one file each, so `npx ecr-mirror` needs no
// TypeScript at run time and Lambda packages stay small. The Lambda bundles are self-contained; the
// CLI leaves the AWS SDK to node_modules (see below).

import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
};

// The CLI is one CommonJS file of our code and commander (~330 KB). The AWS SDK stays out of it: the
// package depends on it, and it is required from node_modules on first use (ECR logins, `status`,
// `resync`), so `copy` between other registries never loads it. Measured on `--version`: bundling
// the SDK in cost ~70 ms per start; an ESM build split into chunks ~20 ms more than this (Node's ESM
// loader).
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.js',
  format: 'cjs',
  target: 'node20',
  // zod too: only `doctor` loads it (the configuration validator), and bundled it tripled the file
  // (220 KB to 1.1 MB) and cost every command ~20 ms of start-up.
  external: ['@aws-sdk/*', '@smithy/*', 'zod'],
  banner: { js: '#!/usr/bin/env node' },
});
await chmod('dist/cli.js', 0o755);

// `npm start`: the local run. dynalite (a development dependency with a native part) stays outside.
await build({
  ...common,
  entryPoints: ['src/local/main.ts'],
  outfile: 'dist/local.js',
  format: 'cjs',
  target: 'node20',
  external: ['dynalite'],
});

// `osls package`: infra/serverless-params.cjs checks the destinations param with the Lambdas' own
// validator (src/config/package-check.ts), so a configuration they would refuse fails packaging.
await build({
  ...common,
  sourcemap: false,
  minify: true,
  entryPoints: ['src/config/package-check.ts'],
  outfile: 'dist/config-check.js',
  format: 'cjs',
  target: 'node20',
});

const handlers = ['src/handlers/mirror.ts', 'src/handlers/resync.ts'].filter((f) => existsSync(f));
if (handlers.length > 0) {
  await build({
    ...common,
    entryPoints: handlers,
    outdir: 'dist/lambda',
    format: 'cjs',
    target: 'node24',
    // The Lambda runtime ships the AWS SDK v3, but bundling pins the version we test with.
    minify: true,
  });
}
