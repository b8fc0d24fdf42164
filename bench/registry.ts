import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  htpasswdAuth,
  REGISTRY_BINARY,
  registryConfig,
  waitUntilServing,
} from '../src/local/registry-server';
import { freePort, TEST_TOKEN } from '../test/support/registry';

const BINARY = REGISTRY_BINARY;

/**
 * A Debian `docker-registry` on loopback with htpasswd Basic auth, like test/support/registry.ts,
 * but one that can be emptied and restarted on the same port (so that both tools copy to the very
 * same address every run), and that keeps its access log so the benchmark can count the requests
 * that really reached it.
 */
export class BenchRegistry {
  readonly host: string;
  readonly url: string;
  readonly authorization = `Basic ${TEST_TOKEN}`;
  /** One line per request the registry served (combined log format), since the bench started. */
  readonly accessLog: string[] = [];
  private child: ChildProcess | undefined;
  private partial = '';

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    private readonly htpasswd: string,
  ) {
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
  }

  static async start(name: string, dir: string, htpasswd: string): Promise<BenchRegistry> {
    await mkdir(dir, { recursive: true });
    const registry = new BenchRegistry(name, dir, await freePort(), htpasswd);
    await registry.writeConfig();
    await registry.launch();
    return registry;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** The pid of the running server, for cleanup on the way out. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** CPU time the running server has used so far (user and system), in seconds; 0 when unknown. */
  cpuSeconds(): number {
    const pid = this.pid;
    if (pid === undefined) return 0;
    try {
      // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name; USER_HZ is 100 on Linux.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      return 0;
    }
  }

  /** Stops the server, deletes everything it stored and starts it again on the same port. */
  async empty(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
    await this.launch();
  }

  /** Marks the current end of the access log; `requestsSince` counts what came after. */
  mark(): number {
    return this.accessLog.length;
  }

  requestsSince(mark: number): { total: number; blob: number; lines: string[] } {
    const lines = this.accessLog.slice(mark);
    return { total: lines.length, blob: lines.filter((l) => /\/blobs\//.test(l)).length, lines };
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  private async writeConfig(): Promise<void> {
    const config = registryConfig({
      dataDir: this.dataDir,
      port: this.port,
      authYaml: htpasswdAuth(this.htpasswd),
      accessLog: true,
    });
    await writeFile(join(this.dir, 'config.yml'), config);
  }

  private async launch(): Promise<void> {
    const child = spawn(BINARY, ['serve', join(this.dir, 'config.yml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    // distribution writes its access log (gorilla's combined format) to stdout.
    child.stdout?.on('data', (d: Buffer) => {
      const text = this.partial + d.toString();
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.accessLog.push(line);
    });
    try {
      await waitUntilServing(this.url, child, () => stderr);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${this.name}: ${(err as Error).message}`);
    }
    // The readiness probe above is in the access log too; it is not a request of either tool.
  }
}
