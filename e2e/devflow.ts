// The README's dev flow, for real: the server with its defaults (127.0.0.1:9000) and a
// temporary data folder, and `trunk serve` from the repository root (a debug build of the
// client on 127.0.0.1:8080, proxying /ws and /api to the server, as Trunk.toml says).
//
//   const flow = await DevFlow.start();   // fails at once if 8080 or 9000 is taken
//   await page.goto(DEV_URL);
//   await flow.stop();                    // in afterAll; also cleans up after a failed start
//
// The ports are fixed by Trunk.toml, so only one such flow can run at a time, and it
// cannot share them with anything else on the machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serverBinary } from './server';

export const DEV_URL = 'http://127.0.0.1:8080/';
const SERVER_URL = 'http://127.0.0.1:9000/';
const REPO_ROOT = path.resolve(__dirname, '..');
/** The first debug build of the client takes a minute or two from cold. */
export const START_TIMEOUT_MS = 8 * 60_000;
const STOP_TIMEOUT_MS = 10_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Process groups still running, killed if the test process exits without stopping them. */
const groups = new Set<number>();
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/** Rejects with a message that says what to do when `port` on 127.0.0.1 is taken. */
function expectPortFree(port: number, owner: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `127.0.0.1:${port} is already in use (${owner}, fixed by Trunk.toml): stop whatever listens ` +
                `there (\`ss -ltnp 'sport = :${port}'\` shows it) and run the test again`
            : `cannot check 127.0.0.1:${port}: ${err.message}`,
        ),
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

/** One child process in a process group of its own, with the tail of its output. */
class Child {
  private output = '';
  private exitInfo: string | null = null;
  private readonly exited: Promise<void>;
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: { cwd: string; env: NodeJS.ProcessEnv },
  ) {
    // Its own group, so stopping it also stops what it started (trunk runs cargo,
    // rustc and wasm-bindgen).
    this.child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pgid = this.child.pid;
    if (pgid !== undefined) groups.add(pgid);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitInfo = `exited with ${signal ?? `code ${code}`}`;
        resolve();
      });
      this.child.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' ? ' (not on PATH? scripts/test.sh puts ~/.cargo/bin there)' : '';
        this.exitInfo = `could not be started: ${err.message}${hint}`;
        resolve();
      });
    });
    const record = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-12_000);
      if (process.env.CONFAB_E2E_SERVER_LOG) process.stderr.write(`[${name}] ${chunk}`);
    };
    this.child.stdout?.on('data', record);
    this.child.stderr?.on('data', record);
  }

  /** Why it is no longer running, or null while it runs. */
  get ended(): string | null {
    return this.exitInfo;
  }

  tail(lines = 40): string {
    const text = this.output.split('\n').slice(-lines).join('\n');
    return `--- last output of ${this.name} (${this.exitInfo ?? 'still running'}):\n${text}`;
  }

  /** SIGTERM to the whole group; SIGKILL to whatever of it is left after the timeout. */
  async stop(): Promise<void> {
    const pgid = this.child.pid;
    if (pgid === undefined) return;
    if (this.exitInfo === null) {
      killGroup(pgid, 'SIGTERM');
      await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS)]);
    }
    // The leader may be gone while its children (a cargo build) still run.
    killGroup(pgid, 'SIGKILL');
    await this.exited;
    groups.delete(pgid);
  }
}

/** Resolves when `check` does, failing early if a process ends or the deadline passes. */
async function waitFor(what: string, check: () => Promise<boolean>, children: Child[], deadline: number) {
  while (Date.now() < deadline) {
    const dead = children.find((c) => c.ended !== null);
    if (dead) throw new Error(`${dead.name} ${dead.ended} while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`gave up after ${Math.round(START_TIMEOUT_MS / 1000)} s waiting for ${what}`);
}

async function get(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(5_000) });
}

async function serverUp(): Promise<boolean> {
  return (await get(`${SERVER_URL}healthz`)).ok;
}

/** Not signed in yet: the server's own answer, through trunk's proxy. */
async function proxyUp(): Promise<boolean> {
  return (await get(`${DEV_URL}api/me`)).status === 401;
}

/** The page trunk serves, once it links a built wasm module that trunk also serves. */
async function clientBuilt(): Promise<boolean> {
  const page = await get(DEV_URL);
  if (!page.ok) return false;
  const wasm = /["']([^"']+\.wasm)["']/.exec(await page.text())?.[1];
  if (!wasm) return false;
  const module = await get(new URL(wasm, DEV_URL).href);
  return module.ok && (module.headers.get('content-type') ?? '').includes('application/wasm');
}

export class DevFlow {
  private constructor(
    private readonly children: Child[],
    private readonly workDir: string,
  ) {}

  static async start(): Promise<DevFlow> {
    const bin = serverBinary();
    if (!existsSync(bin)) {
      throw new Error(`no server binary at ${bin}: run \`cargo build -p confab-server\` (or set CONFAB_SERVER_BIN)`);
    }
    await expectPortFree(8080, "trunk serve's port");
    await expectPortFree(9000, "the server's default port, trunk's proxy backend");

    const workDir = mkdtempSync(path.join(os.tmpdir(), 'confab-devflow-'));
    tempDirs.add(workDir);
    const children: Child[] = [];
    const flow = new DevFlow(children, workDir);
    try {
      // The server's defaults, as `cargo run -p confab-server` has them: none of the
      // CONFAB_* variables the other specs' harness reads may reach it.
      const serverEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONFAB_')));
      const dataDir = path.join(workDir, 'data');
      children.push(new Child('confab-server', bin, ['--data-dir', dataDir], { cwd: workDir, env: serverEnv }));
      children.push(new Child('trunk serve', 'trunk', ['serve'], { cwd: REPO_ROOT, env: process.env }));
      const deadline = Date.now() + START_TIMEOUT_MS;
      await waitFor('the server to answer /healthz', serverUp, children, deadline);
      await waitFor(`trunk to build and serve the client on ${DEV_URL}`, clientBuilt, children, deadline);
      await waitFor("trunk's proxy to reach the server", proxyUp, children, deadline);
      return flow;
    } catch (err) {
      const logs = flow.logs();
      await flow.stop();
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
  }

  /** The tail of both processes' output. */
  logs(): string {
    return this.children.map((c) => c.tail()).join('\n');
  }

  /** Stops both processes (and trunk's builds) and removes the temporary folder. */
  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
    rmSync(this.workDir, { recursive: true, force: true });
    tempDirs.delete(this.workDir);
  }
}
