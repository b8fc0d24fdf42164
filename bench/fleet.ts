import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MediaType } from '../src/core/media-types';
import type { SyncSummary } from '../src/sync/sync';
import type { Fleet } from './fleet-seed';
import { check, type RunResult, runCommand } from './process';
import type { BenchRegistry } from './registry';

/** One request as a registry's access log has it (gorilla's combined format). */
export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  /** Response body bytes. */
  bytes: number;
}

const LINE = /"(\w+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

export function parseLog(lines: readonly string[]): LoggedRequest[] {
  const out: LoggedRequest[] = [];
  for (const line of lines) {
    const m = LINE.exec(line);
    if (m)
      out.push({ method: m[1]!, path: m[2]!, status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]) });
  }
  return out;
}

export type FleetTool = 'ecr-mirror' | 'skopeo';

export interface FleetRun {
  tool: FleetTool;
  phase: 'cold' | 'warm';
  wallSeconds: number;
  cpuSeconds: number | undefined;
  requests: { source: number; destination: number };
  blobRequests: { source: number; destination: number };
  manifestHeads: { source: number; destination: number };
  /** Completed uploads at B, their bytes, and the most times one blob went into one repository. */
  uploads: number;
  uploadedBytes: number;
  maxUploadsPerRepository: number;
  /** Mounts B answered 201. */
  mounts: number;
  /** Blob bytes A served. */
  downloadedBytes: number;
  summary?: SyncSummary;
}

export interface FleetContext {
  a: BenchRegistry;
  b: BenchRegistry;
  cli: string;
  skopeo: string;
  creds: string;
  env: NodeJS.ProcessEnv;
  workDir: string;
}

/**
 * How skopeo gets a blob-info cache of its own for each round (as on a fresh machine), so that a cold
 * run never inherits what an earlier round taught it about B (c/image keeps it in
 * /var/lib/containers/cache for root, under XDG_DATA_HOME otherwise), while its warm run keeps what
 * its cold run learnt, as a user re-running it would.
 */
export function skopeoIsolation(): 'xdg' | 'unshare' | 'shared' {
  if (process.getuid?.() !== 0) return 'xdg';
  const probe = spawnSync('unshare', ['-m', 'sh', '-c', 'mount --bind /tmp /tmp'], { stdio: 'ignore' });
  return probe.status === 0 ? 'unshare' : 'shared';
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150));

function measure(
  tool: FleetTool,
  phase: 'cold' | 'warm',
  ctx: FleetContext,
  marks: { a: number; b: number },
  fleet: Fleet,
  wallSeconds: number,
  cpuSeconds: number | undefined,
): FleetRun {
  const fromA = parseLog(ctx.a.requestsSince(marks.a).lines);
  const fromB = parseLog(ctx.b.requestsSince(marks.b).lines);
  const isBlob = (r: LoggedRequest): boolean => r.path.includes('/blobs/');
  const completed = fromB.filter(
    (r) => r.method === 'PUT' && r.status === 201 && /\/blobs\/uploads\/.*[?&]digest=/.test(r.path),
  );
  const perRepository = new Map<string, number>();
  let uploadedBytes = 0;
  for (const r of completed) {
    const digest = decodeURIComponent(/[?&]digest=([^&]+)/.exec(r.path)?.[1] ?? '');
    const repo = r.path.replace(/^\/v2\//, '').split('/blobs/')[0];
    const key = `${repo}@${digest}`;
    perRepository.set(key, (perRepository.get(key) ?? 0) + 1);
    uploadedBytes += fleet.sizes.get(digest) ?? 0;
  }
  return {
    tool,
    phase,
    wallSeconds,
    cpuSeconds,
    requests: { source: fromA.length, destination: fromB.length },
    blobRequests: { source: fromA.filter(isBlob).length, destination: fromB.filter(isBlob).length },
    manifestHeads: {
      source: fromA.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/')).length,
      destination: fromB.filter((r) => r.method === 'HEAD' && r.path.includes('/manifests/')).length,
    },
    uploads: completed.length,
    uploadedBytes,
    maxUploadsPerRepository: Math.max(0, ...perRepository.values()),
    mounts: fromB.filter((r) => r.method === 'POST' && r.status === 201 && /[?&]mount=/.test(r.path)).length,
    downloadedBytes: fromA
      .filter((r) => r.method === 'GET' && isBlob(r) && r.status === 200)
      .reduce((n, r) => n + r.bytes, 0),
  };
}

/** `ecr-mirror sync A/<prefix> B/<prefix>`, one process. */
export async function syncWithEcrMirror(
  ctx: FleetContext,
  fleet: Fleet,
  phase: 'cold' | 'warm',
  extra: string[] = [],
): Promise<FleetRun> {
  const marks = { a: ctx.a.mark(), b: ctx.b.mark() };
  const result = check(
    'ecr-mirror sync',
    await runCommand(
      process.execPath,
      [
        ctx.cli,
        'sync',
        '--insecure',
        '--json',
        '--src-creds',
        ctx.creds,
        '--dest-creds',
        ctx.creds,
        ...extra,
        `${ctx.a.host}/${fleet.prefix}`,
        `${ctx.b.host}/${fleet.prefix}`,
      ],
      { timeFile: join(ctx.workDir, 'time.out'), env: ctx.env },
    ),
  );
  await settle();
  const run = measure('ecr-mirror', phase, ctx, marks, fleet, result.wallSeconds, result.cpuSeconds);
  run.summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as SyncSummary;
  if (run.summary.failures.length > 0)
    throw new Error(`ecr-mirror sync failed: ${JSON.stringify(run.summary.failures)}`);
  return run;
}

/**
 * `skopeo sync --all --preserve-digests` once per repository, one after the other, as users run it
 * (`skopeo sync` takes one repository, or a YAML list): wall and CPU time are the sums.
 */
export async function syncWithSkopeo(
  ctx: FleetContext,
  fleet: Fleet,
  phase: 'cold' | 'warm',
  cacheDir: string,
  isolation: 'xdg' | 'unshare' | 'shared',
): Promise<FleetRun> {
  const marks = { a: ctx.a.mark(), b: ctx.b.mark() };
  await mkdir(cacheDir, { recursive: true });
  let wall = 0;
  let cpu: number | undefined = 0;
  for (const repository of fleet.repositories) {
    const args = [
      'sync',
      '--all',
      '--preserve-digests',
      '--src',
      'docker',
      '--dest',
      'docker',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--src-creds',
      ctx.creds,
      '--dest-creds',
      ctx.creds,
      `${ctx.a.host}/${repository}`,
      // Without --scoped, skopeo appends the source's last path component: B/<prefix>/svc-N.
      `${ctx.b.host}/${fleet.prefix}`,
    ];
    let result: RunResult;
    const timeFile = join(ctx.workDir, 'time.out');
    if (isolation === 'unshare') {
      const script =
        'mkdir -p /var/lib/containers/cache && mount --bind "$0" /var/lib/containers/cache && exec "$@"';
      result = await runCommand('unshare', ['-m', 'sh', '-c', script, cacheDir, ctx.skopeo, ...args], {
        timeFile,
        env: ctx.env,
      });
    } else {
      const env = isolation === 'xdg' ? { ...ctx.env, XDG_DATA_HOME: cacheDir } : ctx.env;
      result = await runCommand(ctx.skopeo, args, { timeFile, env });
    }
    check(`skopeo sync ${repository}`, result);
    wall += result.wallSeconds;
    cpu = cpu === undefined || result.cpuSeconds === undefined ? undefined : cpu + result.cpuSeconds;
  }
  await settle();
  return measure('skopeo', phase, ctx, marks, fleet, wall, cpu);
}

/** B must answer every tag of the fleet with the source's digest. */
export async function verifyFleet(b: BenchRegistry, fleet: Fleet): Promise<void> {
  const accept = Object.values(MediaType).join(', ');
  await Promise.all(
    fleet.tags.map(async ({ repository, tag, digest }) => {
      const res = await fetch(`${b.url}/v2/${repository}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { authorization: b.authorization, accept },
      });
      const got = res.headers.get('docker-content-digest');
      if (res.status !== 200 || got !== digest) {
        throw new Error(`B ${repository}:${tag}: HTTP ${res.status}, digest ${got}, expected ${digest}`);
      }
    }),
  );
}
