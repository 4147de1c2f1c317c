// Starts Confab's production-mode server (the built binary serving the trunk-built client)
// as a child process for a test file:
//
//   const server = await ConfabServer.start();   // free port, waits for /healthz
//   await page.goto(server.url);
//   await server.restart();                      // SIGTERM, wait for exit, start again on the same port
//   await server.admin(['create', 'root'], 'password\n'); // `confab-server admin …` on its data
//   await server.stop();                          // in afterAll
//   await ConfabServer.start(flags, { alone: true }); // the binary as deployed (below)
//   await ConfabServer.start(flags, { tls: true });   // HTTPS and wss:// by itself (below)
//
// Binary: $CONFAB_SERVER_BIN (default ../target/debug/confab-server); client:
// $CONFAB_STATIC_DIR (default ../dist). Relative paths are taken from this folder.
// `alone` runs the binary as it is deployed instead: copied by itself into the server's
// empty working folder, its data there, no --static-dir and no CONFAB_* variable, so the
// page can only come from the client built into it (scripts/test.sh builds it so).
// `tls` gives the server a throwaway certificate (`--tls-cert`, `--tls-key`): its `url` is
// then `https://`, and browsers must be told to ignore HTTPS errors.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { throwawayCertificate } from './certificate';

const HERE = __dirname;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

/** Every server started by this process, so none outlives it even if a test forgets. */
const running = new Set<ChildProcess>();
/** Working folders of the servers (anything a server writes lands there). */
const workDirs = new Set<string>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
});

export function serverBinary(): string {
  return path.resolve(HERE, process.env.CONFAB_SERVER_BIN ?? '../target/debug/confab-server');
}

export function staticDir(): string {
  return path.resolve(HERE, process.env.CONFAB_STATIC_DIR ?? '../dist');
}

/** A port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface StartOptions {
  /** The binary copied alone into an empty folder and run there with the client inside
   * it, as on a fresh machine (see the top of this file). */
  alone?: boolean;
  /** HTTPS with a throwaway certificate for 127.0.0.1, made in the working folder. */
  tls?: boolean;
}

export class ConfabServer {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** The server's recent output, shown when it fails to start. */
  private output = '';

  /** The server's working folder: kept across restarts, removed when the tests end. */
  readonly workDir: string;
  /** The binary that runs: the built one, or its copy in `workDir` when alone. */
  readonly bin: string;
  /** The certificate served, when started with `tls`. */
  readonly certificate: { cert: string; key: string } | null;

  private constructor(
    readonly port: number,
    built: string,
    readonly staticDir: string,
    readonly flags: string[],
    readonly alone: boolean,
    tls: boolean,
  ) {
    this.workDir = mkdtempSync(path.join(os.tmpdir(), 'confab-e2e-'));
    workDirs.add(this.workDir);
    this.certificate = tls ? throwawayCertificate(this.workDir) : null;
    this.bin = built;
    if (alone) {
      this.bin = path.join(this.workDir, 'confab-server');
      copyFileSync(built, this.bin);
      chmodSync(this.bin, 0o755);
    }
  }

  /** Starts a server on a free port and waits until it answers /healthz. `flags` go to
   * the server as they are (and again on every restart). */
  static async start(flags: string[] = [], options: StartOptions = {}): Promise<ConfabServer> {
    const bin = serverBinary();
    const dir = staticDir();
    if (!existsSync(bin)) {
      throw new Error(`no server binary at ${bin}: run \`cargo build -p confab-server\` (or set CONFAB_SERVER_BIN)`);
    }
    if (!options.alone && !existsSync(path.join(dir, 'index.html'))) {
      throw new Error(`no built client in ${dir}: run \`trunk build --release\` (or set CONFAB_STATIC_DIR)`);
    }
    const server = new ConfabServer(await freePort(), bin, dir, flags, options.alone ?? false, options.tls ?? false);
    await server.launch();
    if (options.alone && !(await server.servesAPage())) {
      await server.stop();
      throw new Error(
        `${bin} has no client inside: build it with \`cargo build -p confab-server --features embed-client\` ` +
          'after `trunk build --release --dist dist` (scripts/test.sh does)',
      );
    }
    return server;
  }

  /** Whether `/` is the app's page (and not the note a binary without a client shows). */
  private async servesAPage(): Promise<boolean> {
    const res = await fetch(this.url, { signal: AbortSignal.timeout(5_000) });
    return res.ok && (res.headers.get('content-type') ?? '').startsWith('text/html');
  }

  get url(): string {
    return `${this.certificate ? 'https' : 'http'}://127.0.0.1:${this.port}/`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process again after `stop()`, on the same port. */
  async start(): Promise<void> {
    if (this.child) throw new Error('server is already running');
    await this.launch();
  }

  /** Runs `confab-server admin ARGS` on this server's data (its working folder's `data`,
   * the server's default), with `input` on standard input (the password of `admin
   * create`); resolves to what it printed, rejects if it failed. */
  admin(args: string[], input = ''): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, ['admin', ...args], { cwd: this.workDir, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve(out) : reject(new Error(`admin ${args.join(' ')} exited with ${code}: ${err}`)),
      );
      child.stdin.end(input);
    });
  }

  /** SIGTERM (graceful shutdown: clients get close 1001), then waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = this.exited;
    child.kill('SIGTERM');
    const inTime = await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
    if (!inTime) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`server did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM (killed)\n${this.output}`);
    }
  }

  /** Stops the server and starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    // The port was just released by a probe or by the previous process: retry briefly
    // if something else grabbed it or the old socket is still closing.
    for (;;) {
      const started = await this.spawnOnce(deadline);
      if (started === 'ready') return;
      if (started === 'in-use' && Date.now() < deadline) {
        await sleep(200);
        continue;
      }
      throw new Error(`server did not start on port ${this.port} (${started})\n${this.output}`);
    }
  }

  private async spawnOnce(deadline: number): Promise<'ready' | 'in-use' | string> {
    this.output = '';
    const listen = ['--listen', `127.0.0.1:${this.port}`];
    if (this.certificate) listen.push('--tls-cert', this.certificate.cert, '--tls-key', this.certificate.key);
    const args = this.alone
      ? [...listen, '--data-dir', path.join(this.workDir, 'data'), ...this.flags]
      : [...listen, '--static-dir', this.staticDir, ...this.flags];
    // Alone, nothing of this machine's configuration (scripts/test.sh sets CONFAB_STATIC_DIR).
    const env = this.alone
      ? Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONFAB_')))
      : { ...process.env };
    const child = spawn(this.bin, args, { cwd: this.workDir, stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    running.add(child);
    let exitInfo = null as string | null;
    this.exited = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        exitInfo = `exited with ${signal ?? `code ${code}`}`;
        running.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
    });
    const record = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-8_000);
      if (process.env.CONFAB_E2E_SERVER_LOG) process.stderr.write(`[server:${this.port}] ${chunk}`);
    };
    child.stdout?.on('data', record);
    child.stderr?.on('data', record);
    child.on('error', (err) => {
      exitInfo = `failed to spawn: ${err.message}`;
    });

    while (Date.now() < deadline) {
      if (exitInfo !== null) {
        await this.exited;
        return /in use|AddrInUse/i.test(this.output) ? 'in-use' : exitInfo;
      }
      if (await this.healthy()) return 'ready';
      await sleep(50);
    }
    child.kill('SIGKILL');
    await this.exited;
    return `no answer on /healthz within ${START_TIMEOUT_MS} ms`;
  }

  private async healthy(): Promise<boolean> {
    if (this.certificate) return this.healthyOverTls(this.certificate.cert);
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/healthz`, { signal: AbortSignal.timeout(1_000) });
      return res.ok && (await res.text()).trim() === 'ok';
    } catch {
      return false;
    }
  }

  /** `/healthz` over HTTPS, trusting this server's own certificate (Node's `fetch` takes
   * no certificate authority of its own). */
  private healthyOverTls(cert: string): Promise<boolean> {
    return new Promise((resolve) => {
      const req = httpsGet(
        `https://127.0.0.1:${this.port}/healthz`,
        { ca: readFileSync(cert), timeout: 1_000 },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'ok'));
          res.on('error', () => resolve(false));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  }
}
