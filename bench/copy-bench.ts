/**
 * `npm run bench`: ecr-mirror against skopeo on two local registries, peak memory on a large layer,
 * the cost of a re-copy, and (BENCH_SWEEP=1) a blob-concurrency sweep. Loopback only.
 *
 * Environment:
 *   BENCH_RUNS=7            timed copies per tool (alternating, destination emptied before each)
 *   BENCH_LAYERS_MB=…       layer sizes of the test image, default 40,32,24,16,8,8 (128 MiB)
 *   BENCH_BIG_MB=512        size of the single layer for the memory test
 *   BENCH_RSS_RUNS=3        ecr-mirror copies of that layer (the highest peak RSS counts)
 *   BENCH_SWEEP=1           also time --concurrency BENCH_SWEEP_LEVELS (default 1,2,4,6,8,12)
 *   BENCH_SWEEP_RUNS=3      copies per concurrency level (the median counts)
 *   BENCH_STRICT=1          exit 1 when a target is missed
 *   BENCH_CLI_ARGS=…        extra arguments for every ecr-mirror copy (e.g. --no-referrers)
 *   BENCH_NO_GNU_TIME=1     measure peak RSS by polling /proc/<pid>/status VmHWM, not with /usr/bin/time
 *   BENCH_FLEET_RUNS=5      rounds of the fleet case (each: both tools, cold then warm, alternating)
 *   BENCH_FLEET_REPOS=6     repositories in the fleet; BENCH_FLEET_TAGS=4 tags each (each signed)
 *   BENCH_FLEET_SWEEP=1     also time ecr-mirror sync cold with --images BENCH_FLEET_IMAGES (1,2,4,8)
 *                           and --concurrency BENCH_FLEET_CONCURRENCY (4,8,16), median of 3 each
 */
import '../src/local/quiet';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { CopySummary } from '../src/copy/events';
import { MediaType } from '../src/core/media-types';
import { LOCAL_HTPASSWD } from '../src/local/registry-server';
import { TEST_PASSWORD, TEST_USER } from '../test/support/registry';
import {
  type FleetContext,
  type FleetRun,
  skopeoIsolation,
  syncWithEcrMirror,
  syncWithSkopeo,
  verifyFleet,
} from './fleet';
import { type Fleet, seedFleet } from './fleet-seed';
import { multiArchBatch } from './multiarch';
import { check, GNU_TIME, type RunResult, runCommand, running } from './process';
import { BenchRegistry } from './registry';
import { seedImage } from './seed';

const ROOT = resolve(__dirname, '..');
const BUILT_CLI = join(ROOT, 'dist', 'cli.js');
/** The copy of dist/cli.js that every run uses (set in main), so a rebuild mid-bench changes nothing. */
let CLI = BUILT_CLI;
const SKOPEO = process.env.SKOPEO_BIN ?? '/usr/bin/skopeo';
const CREDS = `${TEST_USER}:${TEST_PASSWORD}`;
const MiB = 1024 * 1024;

const RSS_TARGET_BYTES = 150 * 1000 * 1000; // "150 MB", read strictly as decimal megabytes
const RECOPY_MAX_DEST_REQUESTS = 5;

function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number >= ${min}`);
  return n;
}

function listEnv(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new Error(`${name} must be a comma-separated list of positive whole numbers`);
  }
  return list;
}

const RUNS = intEnv('BENCH_RUNS', 7);
const LAYERS_MB = listEnv('BENCH_LAYERS_MB', [40, 32, 24, 16, 8, 8]);
const BIG_MB = intEnv('BENCH_BIG_MB', 512);
const RSS_RUNS = intEnv('BENCH_RSS_RUNS', 3);
const SWEEP = process.env.BENCH_SWEEP === '1';
const SWEEP_LEVELS = listEnv('BENCH_SWEEP_LEVELS', [1, 2, 4, 6, 8, 12]);
const SWEEP_RUNS = intEnv('BENCH_SWEEP_RUNS', 3);
const STRICT = process.env.BENCH_STRICT === '1';
const EXTRA_CLI_ARGS = (process.env.BENCH_CLI_ARGS ?? '').split(/\s+/).filter(Boolean);
const KEEP_ENV = process.env.BENCH_KEEP_ENV === '1';
const FLEET_RUNS = intEnv('BENCH_FLEET_RUNS', 5);
const FLEET_REPOS = intEnv('BENCH_FLEET_REPOS', 6, 2);
const FLEET_TAGS = intEnv('BENCH_FLEET_TAGS', 4);
const FLEET_SWEEP = process.env.BENCH_FLEET_SWEEP === '1';
const FLEET_IMAGES = listEnv('BENCH_FLEET_IMAGES', [1, 2, 4, 8]);
const FLEET_CONCURRENCY = listEnv('BENCH_FLEET_CONCURRENCY', [4, 8, 16]);
const FLEET_COLD_TARGET = 0.6;
const FLEET_WARM_TARGET = 0.5;

/**
 * The environment both tools run in. NODE_EXTRA_CA_CERTS is left out (BENCH_KEEP_ENV=1 keeps it):
 * Node.js parses that bundle at every start, before any code of ours runs, and neither tool needs
 * it for copies over loopback HTTP. Some machines set it to a whole system bundle; the bench says
 * what it costs there (startupCost below).
 */
const TOOL_ENV: NodeJS.ProcessEnv = KEEP_ENV
  ? process.env
  : Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

/** Median wall milliseconds of `node -e 0` in an environment: the floor of any Node.js command. */
function nodeStartMs(env: NodeJS.ProcessEnv, runs = 7): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0'], { env });
    times.push(performance.now() - t0);
  }
  return Math.round(median(times));
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
const pad = (s: string | number, n: number): string => String(s).padStart(n);
const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

// ---------------------------------------------------------------------------------------------
// Set-up and clean-up

let workDir: string | undefined;
const registries: BenchRegistry[] = [];

/** Last resort on any exit: synchronous, so it also runs after process.exit(). */
function killEverything(): void {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const r of registries) {
    if (r.pid !== undefined) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function cleanUp(): Promise<void> {
  await Promise.allSettled(registries.map((r) => r.stop()));
  if (workDir) await rm(workDir, { recursive: true, force: true });
  workDir = undefined;
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
    killEverything();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/**
 * Copies dist/cli.js into the bench's directory and checks that the copy runs (between plain
 * registries it needs nothing else; the AWS SDK it requires for ECR never loads here):
 * whoever rebuilds dist while the bench runs (a test run in the same tree) cannot change what it times.
 */
async function snapshotCli(dir: string): Promise<string> {
  const snapshot = join(dir, 'cli.js');
  for (let attempt = 1; ; attempt++) {
    await copyFile(BUILT_CLI, snapshot);
    if (spawnSync(process.execPath, [snapshot, '--version']).status === 0) return snapshot;
    if (attempt === 3) throw new Error('dist/cli.js does not run (a build in progress?)');
    await new Promise((r) => setTimeout(r, 2000));
    ensureBuilt();
  }
}

/** Builds dist/cli.js with `npm run build` when it is missing or older than what it is built from. */
function ensureBuilt(): void {
  const inputs = [join(ROOT, 'src'), join(ROOT, 'scripts', 'build.mjs'), join(ROOT, 'package-lock.json')];
  const newestInput = Math.max(...inputs.filter((p) => existsSync(p)).map(newestMtime));
  if (existsSync(BUILT_CLI) && statSync(BUILT_CLI).mtimeMs >= newestInput) return;
  log(
    existsSync(BUILT_CLI)
      ? 'dist/cli.js is older than src: npm run build'
      : 'dist/cli.js missing: npm run build',
  );
  const built = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (built.status !== 0) throw new Error('npm run build failed');
}

function requireTools(): void {
  for (const [name, bin] of [
    ['docker-registry', process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry'],
    ['skopeo', SKOPEO],
  ] as const) {
    if (spawnSync(bin, ['--version']).status !== 0) {
      throw new Error(`${name} (${bin}) is not runnable: bash scripts/ensure-system-deps.sh bench`);
    }
  }
}

function toolVersion(bin: string): string {
  return spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0] ?? '?';
}

// ---------------------------------------------------------------------------------------------
// The two copiers

type Tool = 'ecr-mirror' | 'skopeo';

interface CopyRun {
  tool: Tool;
  wallSeconds: number;
  /** ecr-mirror's own figure from --json (no process start-up). */
  reportedSeconds?: number;
  summary?: CopySummary;
  /** Requests the registries logged during the run (401 challenges included). */
  loggedSource: number;
  loggedDestination: number;
  loggedDestinationBlob: number;
  /** CPU seconds of the copying process, and of registries A and B together, during the run. */
  cpuSeconds?: number;
  registryCpuSeconds: number;
  peakRssKiB?: number;
}

interface CopyTarget {
  a: BenchRegistry;
  b: BenchRegistry;
  repository: string;
  tag: string;
}

function ecrMirrorArgs(t: CopyTarget, extra: string[] = []): string[] {
  return [
    CLI,
    'copy',
    `${t.a.host}/${t.repository}:${t.tag}`,
    `${t.b.host}/${t.repository}:${t.tag}`,
    '--src-creds',
    CREDS,
    '--dest-creds',
    CREDS,
    '--insecure',
    '--json',
    ...EXTRA_CLI_ARGS,
    ...extra,
  ];
}

function skopeoArgs(t: CopyTarget): string[] {
  return [
    'copy',
    '--all',
    '--preserve-digests',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    '--src-creds',
    CREDS,
    '--dest-creds',
    CREDS,
    `docker://${t.a.host}/${t.repository}:${t.tag}`,
    `docker://${t.b.host}/${t.repository}:${t.tag}`,
  ];
}

/** Lets the registries' last access-log lines come through the pipe. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));

async function copyOnce(
  tool: Tool,
  t: CopyTarget,
  options: { rss?: boolean; extra?: string[] } = {},
): Promise<CopyRun> {
  const markA = t.a.mark();
  const markB = t.b.mark();
  const registryCpu = t.a.cpuSeconds() + t.b.cpuSeconds();
  const runOptions = {
    timeFile: join(workDir!, 'time.out'),
    env: TOOL_ENV,
    ...(options.rss && { rss: true }),
  };
  const result: RunResult =
    tool === 'ecr-mirror'
      ? await runCommand(process.execPath, ecrMirrorArgs(t, options.extra), runOptions)
      : await runCommand(SKOPEO, skopeoArgs(t), runOptions);
  check(tool, result);
  await settle();
  const dest = t.b.requestsSince(markB);
  const run: CopyRun = {
    tool,
    wallSeconds: result.wallSeconds,
    loggedSource: t.a.requestsSince(markA).total,
    loggedDestination: dest.total,
    loggedDestinationBlob: dest.blob,
    registryCpuSeconds: t.a.cpuSeconds() + t.b.cpuSeconds() - registryCpu,
    ...(result.cpuSeconds !== undefined && { cpuSeconds: result.cpuSeconds }),
    ...(result.peakRssKiB !== undefined && { peakRssKiB: result.peakRssKiB }),
  };
  if (tool === 'ecr-mirror') {
    const line = result.stdout.trim().split('\n').pop() ?? '';
    const summary = JSON.parse(line) as CopySummary;
    run.summary = summary;
    run.reportedSeconds = summary.seconds;
  }
  return run;
}

/** The destination must answer the tag with the source's manifest digest: byte-identical. */
async function verifyCopied(t: CopyTarget, expectedDigest: string): Promise<void> {
  const res = await fetch(`${t.b.url}/v2/${t.repository}/manifests/${t.tag}`, {
    method: 'HEAD',
    headers: { authorization: t.b.authorization, accept: Object.values(MediaType).join(', ') },
  });
  const digest = res.headers.get('docker-content-digest');
  if (res.status !== 200 || digest !== expectedDigest) {
    throw new Error(`destination ${t.repository}:${t.tag}: HTTP ${res.status}, digest ${digest}`);
  }
}

// ---------------------------------------------------------------------------------------------

interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

/** Other work on this machine skews wall times (not CPU seconds): say how busy it was. */
function machineLoad(): { load1: number; cpuPressure10?: number } {
  const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  try {
    const m = /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return { load1, ...(m?.[1] && { cpuPressure10: Number(m[1]) }) };
  } catch {
    return { load1 };
  }
}

const fmt = (x: number | undefined, digits = 3, width = 7): string =>
  pad(x === undefined ? '-' : x.toFixed(digits), width);

function summarize(runs: readonly CopyRun[], tool: Tool) {
  const mine = runs.filter((r) => r.tool === tool);
  const cpu = mine.map((r) => r.cpuSeconds).filter((x): x is number => x !== undefined);
  return {
    wall: mine.map((r) => round(r.wallSeconds)),
    medianWall: round(median(mine.map((r) => r.wallSeconds))),
    medianCpu: cpu.length ? round(median(cpu)) : undefined,
    medianRegistryCpu: round(median(mine.map((r) => r.registryCpuSeconds))),
    requests: {
      source: median(mine.map((r) => r.loggedSource)),
      destination: median(mine.map((r) => r.loggedDestination)),
    },
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  requireTools();
  ensureBuilt();
  workDir = await mkdtemp(join(tmpdir(), 'ecr-mirror-bench-'));
  CLI = await snapshotCli(workDir);
  const loadBefore = machineLoad();

  const totalMiB = LAYERS_MB.reduce((x, y) => x + y, 0);
  log('ecr-mirror copy benchmark');
  log(
    `  node ${process.version}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; ` +
      `${toolVersion(SKOPEO)}; ${toolVersion(process.env.DOCKER_REGISTRY_BIN ?? '/usr/bin/docker-registry')}`,
  );
  log(
    `  image: ${LAYERS_MB.length} layers (${LAYERS_MB.join(', ')} MiB), ${totalMiB} MiB of random bytes; ` +
      `${RUNS} timed runs per tool; big layer ${BIG_MB} MiB`,
  );
  if (LAYERS_MB.length < 5 || totalMiB * MiB < 100e6) {
    log('  note: fewer than 5 layers or under 100 MB: smaller than the benchmark the issue asks for');
  }
  log(
    `  load before: 1-min load average ${loadBefore.load1}` +
      (loadBefore.cpuPressure10 === undefined ? '' : `, CPU pressure ${loadBefore.cpuPressure10}% (avg10)`),
  );
  if (loadBefore.load1 > 0.5) {
    log('  warning: the machine is busy with other work; wall times will scatter (CPU seconds less so)');
  }
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const startup = {
    nodeStartMs: nodeStartMs(TOOL_ENV),
    ...(extraCa !== undefined && { withExtraCaCertsMs: nodeStartMs(process.env) }),
  };
  log(`  Node.js start-up (node -e 0) in the tools' environment: ${startup.nodeStartMs} ms`);
  if (extraCa !== undefined) {
    log(
      `  NODE_EXTRA_CA_CERTS is set (${extraCa}): with it, every Node.js start takes ` +
        `${startup.withExtraCaCertsMs} ms. ${KEEP_ENV ? 'Kept (BENCH_KEEP_ENV=1).' : 'Both tools run without it (BENCH_KEEP_ENV=1 keeps it).'}`,
    );
  }

  const htpasswd = join(workDir, 'htpasswd');
  await writeFile(htpasswd, LOCAL_HTPASSWD);
  const [a, b] = await Promise.all([
    BenchRegistry.start('A', join(workDir, 'registry-a'), htpasswd),
    BenchRegistry.start('B', join(workDir, 'registry-b'), htpasswd),
  ]);
  registries.push(a, b);
  log(`  source A ${a.url}, destination B ${b.url} (docker-registry, htpasswd Basic auth)`);

  // --- seed
  let t0 = performance.now();
  const image = await seedImage(
    a,
    'bench/app',
    'v1',
    LAYERS_MB.map((m) => m * MiB),
  );
  log(
    `  seeded bench/app:v1 (${image.manifest.digest.slice(0, 19)}…) in ${round((performance.now() - t0) / 1000, 1)} s`,
  );
  const app: CopyTarget = { a, b, repository: 'bench/app', tag: 'v1' };

  // --- wall time, alternating
  log();
  log('1. Copy bench/app:v1 from A to B, B emptied (stopped, wiped, restarted) before every run');
  log('   wall: process start to exit; own: the "seconds" of ecr-mirror --json (no start-up);');
  log(
    '   cpu: user+system seconds of the copying process; A+B cpu: of both registries; req: requests logged',
  );
  log();
  log('   run   tool           wall s    own s    cpu s  A+B cpu   req A  req B');
  const runs: CopyRun[] = [];
  const printRun = (label: string, r: CopyRun): void => {
    log(
      `   ${label.padEnd(5)} ${r.tool.padEnd(12)} ${fmt(r.wallSeconds, 3, 8)} ${fmt(r.reportedSeconds, 3, 8)}` +
        ` ${fmt(r.cpuSeconds, 2, 8)} ${fmt(r.registryCpuSeconds, 2, 8)} ${pad(r.loggedSource, 7)} ${pad(r.loggedDestination, 6)}`,
    );
  };
  // One untimed copy each first: page cache, the CLI bundle, skopeo's blob-info cache.
  for (const tool of ['ecr-mirror', 'skopeo'] as const) {
    await b.empty();
    const r = await copyOnce(tool, app);
    await verifyCopied(app, image.manifest.digest);
    printRun('warm', r);
  }
  for (let i = 0; i < RUNS; i++) {
    // ABBA order, so that neither tool always runs right after the other one's writes.
    const order: Tool[] = i % 2 === 0 ? ['ecr-mirror', 'skopeo'] : ['skopeo', 'ecr-mirror'];
    for (const tool of order) {
      await b.empty();
      const r = await copyOnce(tool, app);
      await verifyCopied(app, image.manifest.digest);
      runs.push(r);
      printRun(String(i + 1), r);
    }
  }
  const ecr = summarize(runs, 'ecr-mirror');
  const sko = summarize(runs, 'skopeo');
  const ecrOwn = runs.filter((r) => r.tool === 'ecr-mirror').map((r) => r.reportedSeconds ?? 0);
  const ratio = ecr.medianWall / sko.medianWall;
  const mbps = (s: number): number => round(image.bytes / 1e6 / s, 1);
  log();
  log(
    `   median ecr-mirror ${fmt(ecr.medianWall, 3, 8)} ${fmt(median(ecrOwn), 3, 8)} ${fmt(ecr.medianCpu, 2, 8)}` +
      ` ${fmt(ecr.medianRegistryCpu, 2, 8)}   ${mbps(ecr.medianWall)} MB/s`,
  );
  log(
    `   median skopeo     ${fmt(sko.medianWall, 3, 8)} ${fmt(undefined, 3, 8)} ${fmt(sko.medianCpu, 2, 8)}` +
      ` ${fmt(sko.medianRegistryCpu, 2, 8)}   ${mbps(sko.medianWall)} MB/s`,
  );
  log(
    `   ratio ecr-mirror / skopeo: wall ${ratio.toFixed(3)}` +
      (ecr.medianCpu !== undefined && sko.medianCpu !== undefined
        ? `, CPU ${(ecr.medianCpu / sko.medianCpu).toFixed(3)}`
        : ''),
  );

  // --- peak RSS on one big layer
  log();
  log(`2. Peak RSS copying one ${BIG_MB} MiB layer (bench/big:v1), B emptied first`);
  t0 = performance.now();
  const big = await seedImage(a, 'bench/big', 'v1', [BIG_MB * MiB]);
  log(`   seeded bench/big:v1 in ${round((performance.now() - t0) / 1000, 1)} s`);
  const bigTarget: CopyTarget = { a, b, repository: 'bench/big', tag: 'v1' };
  await b.empty();
  const skopeoBig = await copyOnce('skopeo', bigTarget, { rss: true });
  await verifyCopied(bigTarget, big.manifest.digest);
  // The peak moves with garbage-collection timing: the target is checked against the highest of a few.
  const ecrBigRuns: CopyRun[] = [];
  for (let i = 0; i < RSS_RUNS; i++) {
    await b.empty();
    ecrBigRuns.push(await copyOnce('ecr-mirror', bigTarget, { rss: true }));
    await verifyCopied(bigTarget, big.manifest.digest);
  }
  const ecrBig = ecrBigRuns.reduce((x, y) => ((y.peakRssKiB ?? 0) > (x.peakRssKiB ?? 0) ? y : x));
  const kibToMiB = (k: number | undefined): number => round((k ?? 0) / 1024, 1);
  const rssMethod = ecrBig.peakRssKiB === undefined ? 'none' : GNU_TIME ? '/usr/bin/time' : '/proc VmHWM';
  log(
    `   (peak RSS of the copying process via ${rssMethod}; ecr-mirror ${RSS_RUNS} times, the highest counts)`,
  );
  for (const r of [...ecrBigRuns, skopeoBig]) {
    log(
      `   ${r.tool.padEnd(12)} peak RSS ${pad(kibToMiB(r.peakRssKiB).toFixed(1), 6)} MiB` +
        ` (${pad(round(((r.peakRssKiB ?? 0) * 1024) / 1e6, 1).toFixed(1), 5)} MB)   wall ${r.wallSeconds.toFixed(3)} s` +
        `   cpu ${fmt(r.cpuSeconds, 2, 5)} s   ${round((BIG_MB * MiB) / 1e6 / r.wallSeconds, 1)} MB/s`,
    );
  }

  // --- re-copy of an image the destination holds
  log();
  log('3. Re-copy of an image B already holds (bench/app:v1, copied there by ecr-mirror just before)');
  await b.empty();
  await copyOnce('ecr-mirror', app);
  const recopy = await copyOnce('ecr-mirror', app);
  const skopeoRecopy = await copyOnce('skopeo', app);
  const rs = recopy.summary!;
  log(
    `   ecr-mirror  upToDate=${rs.upToDate}, blobs copied ${rs.blobs.copied}, requests: source ${rs.requests.source},` +
      ` destination ${rs.requests.destination} (B logged ${recopy.loggedDestination}, ${recopy.loggedDestinationBlob} of them for blobs)` +
      `, wall ${recopy.wallSeconds.toFixed(3)} s, cpu ${fmt(recopy.cpuSeconds, 2, 0)} s`,
  );
  log(
    `   skopeo      B logged ${skopeoRecopy.loggedDestination} requests (${skopeoRecopy.loggedDestinationBlob} for blobs),` +
      ` A logged ${skopeoRecopy.loggedSource}, wall ${skopeoRecopy.wallSeconds.toFixed(3)} s, cpu ${fmt(skopeoRecopy.cpuSeconds, 2, 0)} s`,
  );

  // --- concurrency sweep
  let sweep:
    | { concurrency: number; wall: number[]; median: number; medianOwn: number; medianCpu?: number }[]
    | undefined;
  if (SWEEP) {
    log();
    log(
      `4. Concurrency sweep: ecr-mirror --concurrency N on bench/app:v1, B emptied each run, median of ${SWEEP_RUNS}`,
    );
    const results = new Map<number, CopyRun[]>(SWEEP_LEVELS.map((c) => [c, []]));
    // Rounds over all levels, so that drift in the machine spreads over every level alike.
    for (let i = 0; i < SWEEP_RUNS; i++) {
      for (const c of SWEEP_LEVELS) {
        await b.empty();
        const r = await copyOnce('ecr-mirror', app, { extra: ['--concurrency', String(c)] });
        await verifyCopied(app, image.manifest.digest);
        results.get(c)!.push(r);
      }
    }
    sweep = SWEEP_LEVELS.map((c) => {
      const rs = results.get(c)!;
      const cpu = rs.map((r) => r.cpuSeconds).filter((x): x is number => x !== undefined);
      return {
        concurrency: c,
        wall: rs.map((r) => round(r.wallSeconds)),
        median: round(median(rs.map((r) => r.wallSeconds))),
        medianOwn: round(median(rs.map((r) => r.reportedSeconds ?? 0))),
        ...(cpu.length > 0 && { medianCpu: round(median(cpu)) }),
      };
    });
    log('    N   median wall s   median own s   median cpu s   runs (wall s)');
    for (const s of sweep) {
      log(
        `   ${pad(s.concurrency, 2)}   ${fmt(s.median, 3, 13)}   ${fmt(s.medianOwn, 3, 12)}   ${fmt(s.medianCpu, 2, 12)}` +
          `   ${s.wall.map((x) => x.toFixed(3)).join(' ')}`,
      );
    }
  }

  // --- a fleet: ecr-mirror sync against skopeo sync, one repository at a time
  log();
  const fleetShape = {
    repositories: FLEET_REPOS,
    tags: FLEET_TAGS,
    osMiB: 16,
    runtimeMiB: 8,
    depsMiB: 4,
    appMiB: 1,
  };
  t0 = performance.now();
  const fleet: Fleet = await seedFleet(a, 'fleet', fleetShape);
  const isolation = skopeoIsolation();
  log(
    `5. A fleet: ${FLEET_REPOS} repositories × ${FLEET_TAGS} tags, each tag signed (a sha256-<hex>.sig tag): ${fleet.tags.length} tags;` +
      ` layers ${fleetShape.osMiB} MiB OS (all), ${fleetShape.runtimeMiB} MiB runtime (two, alternating), ${fleetShape.depsMiB} MiB per` +
      ` repository, ${fleetShape.appMiB} MiB per tag; ${round(fleet.distinctBytes / 1e6, 1)} MB distinct,` +
      ` ${round(fleet.perRepositoryBytes / 1e6, 1)} MB counted per repository (seeded in ${round((performance.now() - t0) / 1000, 1)} s)`,
  );
  log(
    `   ecr-mirror sync A/fleet B/fleet (one process) against skopeo sync --all --preserve-digests, one per repository;` +
      ` ${FLEET_RUNS} rounds, tools alternating; cold: B emptied first; warm: right after, nothing changed`,
  );
  log(
    `   skopeo's blob-info cache: ${isolation === 'shared' ? 'the machine’s own (could not isolate it)' : 'a fresh one each round, kept from its cold run to its warm run'}`,
  );
  log();
  log('   (own s: the "seconds" of ecr-mirror sync --json, without process start-up)');
  log(
    '   round tool        phase    wall s   own s   cpu s  req A  req B  blob req A/B  sent MB  uploads  mounts  max/repo',
  );
  const fleetCtx: FleetContext = {
    a,
    b,
    cli: CLI,
    skopeo: SKOPEO,
    creds: CREDS,
    env: TOOL_ENV,
    workDir: workDir!,
  };
  const fleetRuns: FleetRun[] = [];
  const printFleet = (label: string, r: FleetRun): void => {
    log(
      `   ${label.padEnd(5)} ${r.tool.padEnd(11)} ${r.phase.padEnd(5)} ${fmt(r.wallSeconds, 3, 8)} ${fmt(r.summary?.seconds, 3, 7)} ${fmt(r.cpuSeconds, 2, 7)}` +
        ` ${pad(r.requests.source, 6)} ${pad(r.requests.destination, 6)} ${pad(`${r.blobRequests.source}/${r.blobRequests.destination}`, 13)}` +
        ` ${pad(round(r.uploadedBytes / 1e6, 1).toFixed(1), 8)} ${pad(r.uploads, 8)} ${pad(r.mounts, 7)} ${pad(r.maxUploadsPerRepository, 9)}`,
    );
  };
  for (let i = 0; i < FLEET_RUNS; i++) {
    const order: Tool[] = i % 2 === 0 ? ['ecr-mirror', 'skopeo'] : ['skopeo', 'ecr-mirror'];
    for (const tool of order) {
      await b.empty();
      const cache = join(workDir!, `skopeo-cache-${i}`);
      const cold =
        tool === 'ecr-mirror'
          ? await syncWithEcrMirror(fleetCtx, fleet, 'cold')
          : await syncWithSkopeo(fleetCtx, fleet, 'cold', cache, isolation);
      await verifyFleet(b, fleet);
      const warm =
        tool === 'ecr-mirror'
          ? await syncWithEcrMirror(fleetCtx, fleet, 'warm')
          : await syncWithSkopeo(fleetCtx, fleet, 'warm', cache, isolation);
      fleetRuns.push(cold, warm);
      printFleet(String(i + 1), cold);
      printFleet(String(i + 1), warm);
    }
  }
  const fleetMedian = (tool: Tool, phase: 'cold' | 'warm') => {
    const rs = fleetRuns.filter((r) => r.tool === tool && r.phase === phase);
    const cpu = rs.map((r) => r.cpuSeconds).filter((x): x is number => x !== undefined);
    return {
      wall: rs.map((r) => round(r.wallSeconds)),
      medianWall: round(median(rs.map((r) => r.wallSeconds))),
      ...(cpu.length > 0 && { medianCpu: round(median(cpu)) }),
      requests: {
        source: median(rs.map((r) => r.requests.source)),
        destination: median(rs.map((r) => r.requests.destination)),
      },
      blobRequests: {
        source: Math.max(...rs.map((r) => r.blobRequests.source)),
        destination: Math.max(...rs.map((r) => r.blobRequests.destination)),
      },
      manifestHeads: {
        source: median(rs.map((r) => r.manifestHeads.source)),
        destination: median(rs.map((r) => r.manifestHeads.destination)),
      },
      sentMB: round(median(rs.map((r) => r.uploadedBytes)) / 1e6, 1),
      readMB: round(median(rs.map((r) => r.downloadedBytes)) / 1e6, 1),
      uploads: median(rs.map((r) => r.uploads)),
      mounts: median(rs.map((r) => r.mounts)),
      maxUploadsPerRepository: Math.max(...rs.map((r) => r.maxUploadsPerRepository)),
      maxUploadedBytes: Math.max(...rs.map((r) => r.uploadedBytes)),
    };
  };
  const fleetFigures = {
    ecrMirror: { cold: fleetMedian('ecr-mirror', 'cold'), warm: fleetMedian('ecr-mirror', 'warm') },
    skopeo: { cold: fleetMedian('skopeo', 'cold'), warm: fleetMedian('skopeo', 'warm') },
  };
  const coldRatio = fleetFigures.ecrMirror.cold.medianWall / fleetFigures.skopeo.cold.medianWall;
  const warmRatio = fleetFigures.ecrMirror.warm.medianWall / fleetFigures.skopeo.warm.medianWall;
  log();
  for (const [name, f] of [
    ['ecr-mirror', fleetFigures.ecrMirror],
    ['skopeo', fleetFigures.skopeo],
  ] as const) {
    for (const phase of ['cold', 'warm'] as const) {
      const m = f[phase];
      log(
        `   median ${name.padEnd(10)} ${phase}  wall ${fmt(m.medianWall, 3, 7)} s  cpu ${fmt(m.medianCpu, 2, 6)} s` +
          `  requests A ${pad(m.requests.source, 4)} B ${pad(m.requests.destination, 4)}` +
          `  manifest HEADs A ${pad(m.manifestHeads.source, 3)} B ${pad(m.manifestHeads.destination, 3)}` +
          `  read ${pad(m.readMB.toFixed(1), 6)} MB  sent ${pad(m.sentMB.toFixed(1), 6)} MB  mounts ${m.mounts}`,
      );
    }
  }
  log(
    `   ratio ecr-mirror / skopeo: cold ${coldRatio.toFixed(3)} (target <= ${FLEET_COLD_TARGET}), warm ${warmRatio.toFixed(3)} (target <= ${FLEET_WARM_TARGET})`,
  );

  let fleetSweep: { images: number; concurrency: number; median: number; wall: number[] }[] | undefined;
  if (FLEET_SWEEP) {
    log();
    log('   sweep: ecr-mirror sync cold, median of 3 (B emptied each run)');
    fleetSweep = [];
    const levels: [number, number][] = [
      ...FLEET_IMAGES.map((n): [number, number] => [n, 8]),
      ...FLEET_CONCURRENCY.filter((c) => c !== 8).map((c): [number, number] => [4, c]),
    ];
    const results = new Map<string, number[]>(levels.map(([n, c]) => [`${n}/${c}`, []]));
    for (let i = 0; i < 3; i++) {
      for (const [n, c] of levels) {
        await b.empty();
        const r = await syncWithEcrMirror(fleetCtx, fleet, 'cold', [
          '--images',
          String(n),
          '--concurrency',
          String(c),
        ]);
        results.get(`${n}/${c}`)!.push(r.wallSeconds);
      }
    }
    for (const [n, c] of levels) {
      const wall = results.get(`${n}/${c}`)!;
      fleetSweep.push({
        images: n,
        concurrency: c,
        median: round(median(wall)),
        wall: wall.map((w) => round(w)),
      });
      log(
        `   --images ${pad(n, 2)} --concurrency ${pad(c, 3)}   median ${fmt(median(wall), 3, 7)} s   ${wall.map((w) => w.toFixed(3)).join(' ')}`,
      );
    }
  }

  // --- a multi-arch push through the mirror handler: the index and its children in one batch
  log();
  log('6. A multi-arch push through the mirror Lambda handler: two children and the index in one SQS batch');
  const multi = await multiArchBatch(a, b);
  log(
    `   distinct blobs ${multi.distinctBlobs}; blob uploads at B: ${multi.shared.uploads} with the runtime's shared blob ledger` +
      ` (${multi.shared.seconds.toFixed(3)} s), ${multi.perRecord.uploads} with one per record (${multi.perRecord.seconds.toFixed(3)} s)`,
  );

  // --- verdicts
  const peakBytes = (ecrBig.peakRssKiB ?? Number.POSITIVE_INFINITY) * 1024;
  const checks: Check[] = [
    {
      name: 'wall time at or below skopeo',
      pass: ecr.medianWall <= sko.medianWall,
      detail: `median ${ecr.medianWall.toFixed(3)} s vs ${sko.medianWall.toFixed(3)} s (ratio ${ratio.toFixed(3)})`,
    },
    {
      name: 'peak RSS <= 150 MB',
      pass: peakBytes <= RSS_TARGET_BYTES,
      detail:
        `highest ${round(peakBytes / 1e6, 1)} MB (${kibToMiB(ecrBig.peakRssKiB)} MiB) of ${RSS_RUNS} copies` +
        ` of a ${BIG_MB} MiB layer`,
    },
    {
      name: `re-copy: 0 blobs, <= ${RECOPY_MAX_DEST_REQUESTS} destination requests`,
      pass:
        rs.blobs.copied === 0 &&
        recopy.loggedDestinationBlob === 0 &&
        rs.requests.destination <= RECOPY_MAX_DEST_REQUESTS,
      detail:
        `blobs copied ${rs.blobs.copied}, blob requests at B ${recopy.loggedDestinationBlob},` +
        ` destination requests ${rs.requests.destination}`,
    },
    {
      name: `fleet cold: sync <= ${FLEET_COLD_TARGET} x skopeo sync`,
      pass: coldRatio <= FLEET_COLD_TARGET,
      detail: `median ${fleetFigures.ecrMirror.cold.medianWall.toFixed(3)} s vs ${fleetFigures.skopeo.cold.medianWall.toFixed(3)} s (ratio ${coldRatio.toFixed(3)})`,
    },
    {
      name: `fleet warm: sync <= ${FLEET_WARM_TARGET} x skopeo sync, no blob request, one manifest HEAD per tag each side`,
      pass:
        warmRatio <= FLEET_WARM_TARGET &&
        fleetFigures.ecrMirror.warm.blobRequests.source === 0 &&
        fleetFigures.ecrMirror.warm.blobRequests.destination === 0 &&
        fleetFigures.ecrMirror.warm.manifestHeads.source === fleet.tags.length &&
        fleetFigures.ecrMirror.warm.manifestHeads.destination === fleet.tags.length,
      detail:
        `median ${fleetFigures.ecrMirror.warm.medianWall.toFixed(3)} s vs ${fleetFigures.skopeo.warm.medianWall.toFixed(3)} s (ratio ${warmRatio.toFixed(3)});` +
        ` blob requests A/B ${fleetFigures.ecrMirror.warm.blobRequests.source}/${fleetFigures.ecrMirror.warm.blobRequests.destination};` +
        ` manifest HEADs A/B ${fleetFigures.ecrMirror.warm.manifestHeads.source}/${fleetFigures.ecrMirror.warm.manifestHeads.destination} for ${fleet.tags.length} tags`,
    },
    {
      name: 'fleet: every blob uploaded at most once per destination repository, shared layers mounted',
      pass:
        fleetFigures.ecrMirror.cold.maxUploadsPerRepository <= 1 &&
        fleetFigures.ecrMirror.cold.maxUploadedBytes <= fleet.distinctBytes &&
        fleetFigures.ecrMirror.cold.mounts > 0,
      detail:
        `at most ${fleetFigures.ecrMirror.cold.maxUploadsPerRepository} upload of a blob into a repository; sent at most` +
        ` ${round(fleetFigures.ecrMirror.cold.maxUploadedBytes / 1e6, 1)} MB of ${round(fleet.distinctBytes / 1e6, 1)} MB distinct; ${fleetFigures.ecrMirror.cold.mounts} mounts`,
    },
    {
      name: 'multi-arch batch: blob uploads == distinct blobs',
      pass: multi.shared.uploads === multi.distinctBlobs,
      detail: `${multi.shared.uploads} uploads for ${multi.distinctBlobs} distinct blobs (${multi.perRecord.uploads} with a ledger per record)`,
    },
  ];
  const loadAfter = machineLoad();
  log();
  for (const c of checks) log(`${c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`);

  const figures = {
    bench: 'ecr-mirror copy',
    date: new Date().toISOString(),
    machine: {
      node: process.version,
      cores: cpus().length,
      skopeo: toolVersion(SKOPEO),
      loadBefore: loadBefore.load1,
      loadAfter: loadAfter.load1,
      ...startup,
      nodeExtraCaCerts: extraCa === undefined ? 'unset' : KEEP_ENV ? 'kept' : 'removed',
    },
    image: { layersMiB: LAYERS_MB, bytes: image.bytes },
    runs: RUNS,
    copy: {
      ecrMirror: { ...ecr, own: ecrOwn, medianOwn: round(median(ecrOwn)) },
      skopeo: sko,
      ratio: round(ratio),
    },
    bigLayer: {
      mib: BIG_MB,
      rssMethod,
      ecrMirror: {
        peakRssMiB: kibToMiB(ecrBig.peakRssKiB),
        runsPeakRssMiB: ecrBigRuns.map((r) => kibToMiB(r.peakRssKiB)),
        wall: ecrBigRuns.map((r) => round(r.wallSeconds)),
        cpu: ecrBigRuns.map((r) => r.cpuSeconds),
      },
      skopeo: {
        peakRssMiB: kibToMiB(skopeoBig.peakRssKiB),
        wall: round(skopeoBig.wallSeconds),
        cpu: skopeoBig.cpuSeconds,
      },
    },
    recopy: {
      upToDate: rs.upToDate,
      blobsCopied: rs.blobs.copied,
      requestsSource: rs.requests.source,
      requestsDestination: rs.requests.destination,
      destinationLogged: recopy.loggedDestination,
      destinationBlobRequests: recopy.loggedDestinationBlob,
      wall: round(recopy.wallSeconds),
      cpu: recopy.cpuSeconds,
      skopeoDestinationLogged: skopeoRecopy.loggedDestination,
      skopeoWall: round(skopeoRecopy.wallSeconds),
      skopeoCpu: skopeoRecopy.cpuSeconds,
    },
    ...(sweep && { sweep }),
    fleet: {
      shape: fleetShape,
      tags: fleet.tags.length,
      distinctBytes: fleet.distinctBytes,
      perRepositoryBytes: fleet.perRepositoryBytes,
      rounds: FLEET_RUNS,
      skopeoCache: isolation,
      ...fleetFigures,
      ratio: { cold: round(coldRatio), warm: round(warmRatio) },
      ...(fleetSweep && { sweep: fleetSweep }),
    },
    multiArch: multi,
    pass: Object.fromEntries(checks.map((c) => [c.name, c.pass])),
    benchSeconds: round((performance.now() - started) / 1000, 1),
  };
  log();
  log(
    `(whole bench ${figures.benchSeconds} s; 1-min load average before ${loadBefore.load1}, after ${loadAfter.load1})`,
  );
  log(JSON.stringify(figures));
  if (STRICT && checks.some((c) => !c.pass)) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(cleanUp);
