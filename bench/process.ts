import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** GNU time reports a child's peak RSS exactly (wait4's ru_maxrss); /proc polling is the fallback. */
export const GNU_TIME =
  process.env.BENCH_NO_GNU_TIME !== '1' && existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

export interface RunOptions {
  /** Measure the peak resident set size even without /usr/bin/time (polling /proc). */
  rss?: boolean;
  /** Where /usr/bin/time writes its figures; without it the command runs bare. */
  timeFile?: string;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit, in seconds: start-up, the copy, and shutdown. */
  wallSeconds: number;
  /** CPU time of the command, user and system, in seconds (from /usr/bin/time). */
  cpuSeconds?: number;
  /** Peak RSS in KiB (from /usr/bin/time, or polled when asked for). */
  peakRssKiB?: number;
  rssMethod?: 'time' | 'vmhwm';
}

/** Pids of the children still running, for the exit handlers. */
export const running = new Set<number>();

export async function runCommand(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const useTime = GNU_TIME !== undefined && options.timeFile !== undefined;
  const [file, argv] =
    GNU_TIME && options.timeFile
      ? [GNU_TIME, ['-f', '%e %U %S %M', '-o', options.timeFile, command, ...args]]
      : [command, args];
  const started = performance.now();
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  if (child.pid !== undefined) running.add(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
  });

  // Without GNU time: VmHWM (the kernel's own high-water mark) polled every 20 ms; the last value
  // read before exit is the peak, give or take what grew in the final 20 ms.
  let hwm = 0;
  let poll: NodeJS.Timeout | undefined;
  if (options.rss === true && !useTime && child.pid !== undefined) {
    const status = `/proc/${child.pid}/status`;
    const read = async (): Promise<void> => {
      try {
        const m = /^VmHWM:\s+(\d+) kB/m.exec(await readFile(status, 'utf8'));
        if (m?.[1]) hwm = Math.max(hwm, Number(m[1]));
      } catch {
        // gone already
      }
    };
    void read();
    poll = setInterval(() => void read(), 20);
  }

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve({ code: c, signal: s }));
    },
  );
  const wallSeconds = (performance.now() - started) / 1000;
  if (child.pid !== undefined) running.delete(child.pid);
  if (poll) clearInterval(poll);

  const result: RunResult = { code, signal, stdout, stderr, wallSeconds };
  if (useTime && options.timeFile) {
    // GNU time writes "Command exited with non-zero status N" before the figures when the command fails.
    const lines = (await readFile(options.timeFile, 'utf8')).trim().split('\n');
    const [, user, sys, kib] = (lines[lines.length - 1] ?? '').split(' ').map(Number);
    if (user !== undefined && sys !== undefined && Number.isFinite(user + sys))
      result.cpuSeconds = user + sys;
    if (kib !== undefined && Number.isFinite(kib)) {
      result.peakRssKiB = kib;
      result.rssMethod = 'time';
    }
  } else if (options.rss === true && hwm > 0) {
    result.peakRssKiB = hwm;
    result.rssMethod = 'vmhwm';
  }
  return result;
}

/** Throws with the command's own words when it failed. */
export function check(what: string, result: RunResult): RunResult {
  if (result.code !== 0) {
    const why = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`;
    throw new Error(`${what} failed (${why}):\n${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result;
}
