// Throwaway PostgreSQL and Redis for a spec that runs Confab as a cluster (and nginx, for
// the spec that proves deploy/nginx.conf: see `Nginx` at the end), each on a free
// port of 127.0.0.1 in a temporary folder, stopped and removed when the spec ends (and on
// process exit, like the servers of server.ts):
//
//   const pg = await Postgres.start();     // initdb + postgres; pg.url: postgres://postgres@127.0.0.1:PORT/postgres
//   const redis = await Redis.start();     // redis-server, nothing persisted; redis.url
//   await pg.stop(); await redis.stop();   // in afterAll
//
// The TypeScript twin of server/tests/common/services.rs, with the same commands (that
// file says why each is as it is): PostgreSQL runs in the foreground as a child, as the
// `postgres` user when we are root (initdb refuses root), trusting local connections,
// fast rather than crash-safe; Redis keeps nothing on disk. Binaries come from PATH (and
// Debian's /usr/lib/postgresql/*/bin, off PATH); scripts/test.sh installs them
// (ensure_postgres, ensure_redis in scripts/lib.sh) before the browser tests.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { throwawayCertificate } from './certificate';
import { freePort } from './server';

/** How long a server gets to answer after it is started, and to exit when stopped: two
 * shared cores, other tests running. */
const DEADLINE_MS = 30_000;
/** How many free ports a new server tries when the one it picked was taken meanwhile. */
const PORT_ATTEMPTS = 5;
/** What both servers log when their port is taken. */
const PORT_TAKEN = 'Address already in use';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a server on ports `pickPorts` chooses (it names them), choosing again when the
 * server's log says they were taken meanwhile: only that failure is worth another try,
 * anything else would fail again. */
async function startOnFreePorts(
  name: string,
  tries: string,
  logPath: () => string,
  pickPorts: () => Promise<string>,
  start: () => Promise<void>,
): Promise<void> {
  const failures: string[] = [];
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const ports = await pickPorts();
    const before = readOr(logPath()).length;
    try {
      await start();
      return;
    } catch (e) {
      if (!readOr(logPath()).slice(before).includes(PORT_TAKEN)) throw e;
      failures.push(`${ports}: ${e}`);
    }
  }
  throw new Error(`${name} did not start on any of ${PORT_ATTEMPTS} ${tries}:\n${failures.join('\n')}`);
}

/** Everything started here, so nothing outlives this process even if a spec forgets. */
const live = new Set<{ killNow(): void }>();
process.on('exit', () => {
  for (const service of live) service.killNow();
});

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The first `name` on PATH, then in the folders where Debian and this machine image put it. */
function findBinary(name: string, extra: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/local/bin', '/usr/bin', ...extra];
  return dirs.map((d) => path.join(d, name)).find(isFile);
}

/** Whether `pid` is a live process (not a zombie). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already.
  }
}

/** Blocks (no event loop: usable in an exit handler) until `pid` is gone or `ms` passed. */
function waitGoneSync(pid: number, ms: number): void {
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) spawnSync('sleep', ['0.05']);
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() >= until) return false;
    await sleep(20);
  }
  return true;
}

/** A service's process as it runs: `exited` settles when it ends, `ended` says how it
 * did (null while it runs). `onExit` runs first, so the owner can forget the child. */
function watch(
  child: ChildProcess,
  name: string,
  onExit: () => void,
): { exited: Promise<void>; ended: () => string | null } {
  let ended: string | null = null;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, sig) => {
      ended = `${name} exited with ${sig ?? `code ${code}`}`;
      onExit();
      resolve();
    });
  });
  child.on('error', (err) => {
    ended = `could not run ${name}: ${err.message}`;
  });
  return { exited, ended: () => ended };
}

/** Waits until `ready()` says the watched service serves. Rejects with the tail of its
 * log if it ends first (`didNotStart`), or if it is not ready within DEADLINE_MS
 * (`notReady`; it is stopped then). */
async function untilReady(
  service: { exited: Promise<void>; ended: () => string | null },
  ready: () => Promise<boolean>,
  stop: () => Promise<void>,
  logPath: string,
  didNotStart: string,
  notReady: string,
): Promise<void> {
  const until = Date.now() + DEADLINE_MS;
  for (;;) {
    const ended = service.ended();
    if (ended !== null) {
      await service.exited;
      throw new Error(`${didNotStart}: ${ended}\n${tail(logPath)}`);
    }
    if (await ready()) return;
    if (Date.now() >= until) {
      await stop().catch(() => {});
      throw new Error(`${notReady} after ${DEADLINE_MS} ms\n${tail(logPath)}`);
    }
    await sleep(20);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function tail(file: string, lines = 30): string {
  try {
    return `--- ${file} ---\n${readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')}`;
  } catch (e) {
    return `(no log at ${file}: ${e})`;
  }
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Where `initdb` and `postgres` are: beside the `initdb` found on PATH (on this machine
 * image /usr/local/bin/initdb links into Debian's folder), else the newest Debian version. */
function postgresBinDir(): string {
  const hasAll = (dir: string) => ['initdb', 'postgres'].every((b) => isFile(path.join(dir, b)));
  const initdb = findBinary('initdb');
  if (initdb) {
    const dir = path.dirname(realpathSync(initdb));
    if (hasAll(dir)) return dir;
  }
  const debian = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => `/usr/lib/postgresql/${v}/bin`)
    : [];
  const found = debian.find(hasAll);
  if (found) return found;
  throw new Error(
    'no PostgreSQL server binaries (initdb, postgres) on PATH nor in /usr/lib/postgresql/*/bin: ' +
      'scripts/test.sh installs them (ensure_postgres), or `apt-get install postgresql`',
  );
}

/** How PostgreSQL's binaries run when we are root: as `postgres`, through runuser. */
interface RunAs {
  runuser: string;
  uid: number;
  gid: number;
}

function runAsPostgres(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const runuser = findBinary('runuser', ['/usr/sbin', '/sbin']);
  if (!runuser) throw new Error('no runuser (util-linux) to run PostgreSQL as the postgres user (initdb refuses root)');
  const id = (flag: string) => {
    try {
      return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    } catch {
      throw new Error(
        "running as root, PostgreSQL needs a 'postgres' user to run as (initdb refuses root; Debian's postgresql package creates it)",
      );
    }
  };
  return { runuser, uid: id('-u'), gid: id('-g') };
}

/** A throwaway PostgreSQL cluster; the superuser `postgres` needs no password (trust). */
export class Postgres {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  port = 0;

  private constructor(
    readonly dir: string,
    private readonly bin: string,
    private readonly runAs: RunAs | null,
  ) {}

  static async start(): Promise<Postgres> {
    const bin = postgresBinDir();
    const runAs = runAsPostgres();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'confab-e2e-pg-'));
    if (runAs) chownSync(dir, runAs.uid, runAs.gid);
    const pg = new Postgres(dir, bin, runAs);
    live.add(pg);
    try {
      pg.init();
      await startOnFreePorts(
        'PostgreSQL',
        'ports',
        () => pg.logPath,
        async () => `port ${(pg.port = await freePort())}`,
        () => pg.startAgain(),
      );
      return pg;
    } catch (e) {
      await pg.destroy().catch(() => {});
      throw e;
    }
  }

  /** The same across restarts. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  private get logPath(): string {
    return path.join(this.dir, 'postgres.log');
  }

  /** Everything the server logged so far. */
  log(): string {
    return readOr(this.logPath);
  }

  /** One of PostgreSQL's binaries with its arguments, as `postgres` when we are root. */
  private command(binary: string, args: string[]): [string, string[]] {
    const full = path.join(this.bin, binary);
    return this.runAs ? [this.runAs.runuser, ['-u', 'postgres', '--', full, ...args]] : [full, args];
  }

  private init(): void {
    // --no-sync: nothing here has to survive a power cut. Locale C: tests must not depend
    // on the machine's locales.
    const [cmd, args] = this.command('initdb', [
      '-D',
      this.dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    // The caller's folder may be closed to the postgres user.
    const out = spawnSync(cmd, args, { cwd: this.dir, encoding: 'utf8' });
    if (out.status !== 0) {
      throw new Error(`initdb failed (${out.error ?? `status ${out.status}`}):\n${out.stdout}\n${out.stderr}`);
    }
    // Appended as root, the file keeps its owner (postgres).
    appendFileSync(
      path.join(this.dataDir, 'postgresql.conf'),
      '\n# confab e2e harness: a throwaway cluster, fast rather than crash-safe\n' +
        "listen_addresses = '127.0.0.1'\n" +
        `unix_socket_directories = '${this.dir}'\n` +
        'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' +
        'shared_buffers = 16MB\nmax_connections = 50\n',
    );
  }

  /** Line `n` (from 1) of postmaster.pid: 1 is the postmaster's pid, 8 its status. */
  private pidLine(n: number): string | undefined {
    return readOr(path.join(this.dataDir, 'postmaster.pid')).split('\n')[n - 1]?.trim();
  }

  private postmasterPid(): number | undefined {
    const pid = Number(this.pidLine(1));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** Starts the stopped server on the same port and data. */
  async startAgain(): Promise<void> {
    if (this.child) return;
    const log = openSync(this.logPath, 'a');
    const [cmd, args] = this.command('postgres', ['-D', this.dataDir, '-p', String(this.port)]);
    const child = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    const service = watch(child, 'postgres', () => {
      if (this.child === child) this.child = null;
    });
    this.exited = service.exited;
    await untilReady(
      service,
      async () => {
        const pid = this.postmasterPid();
        return this.pidLine(8) === 'ready' && !!pid && alive(pid) && (await accepts(this.port));
      },
      () => this.stop(),
      this.logPath,
      `PostgreSQL did not start on port ${this.port}`,
      `PostgreSQL not ready on port ${this.port}`,
    );
  }

  /** A fast shutdown (SIGINT: connections cut, committed data kept), SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child) {
      // As root the child is runuser: signal the postmaster itself (if it has said who it is).
      const postmaster = this.postmasterPid();
      const target = postmaster && alive(postmaster) ? postmaster : child.pid;
      if (target) signal(target, 'SIGINT');
      const inTime = await Promise.race([this.exited.then(() => true), sleep(DEADLINE_MS).then(() => false)]);
      if (!inTime) {
        if (target) signal(target, 'SIGKILL');
        child.kill('SIGKILL');
        await this.exited;
      }
      if (postmaster && !(await waitGone(postmaster, DEADLINE_MS))) {
        throw new Error(`PostgreSQL (pid ${postmaster}) still runs after it was stopped`);
      }
    }
  }

  /** Stops it for good and removes its folder. */
  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** For the exit handler: an immediate shutdown (SIGQUIT), waited for without the event loop. */
  killNow(): void {
    const postmaster = this.postmasterPid();
    if (this.child && postmaster && alive(postmaster)) {
      signal(postmaster, 'SIGQUIT');
      waitGoneSync(postmaster, 5_000);
    }
    this.child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One PING over a fresh connection: answered once Redis is ready. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** A throwaway Redis: nothing persisted (no RDB, no AOF). */
export class Redis {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  port = 0;

  private constructor(readonly dir: string) {}

  static async start(): Promise<Redis> {
    if (!findBinary('redis-server')) {
      throw new Error(
        'no redis-server on PATH: scripts/test.sh installs it (ensure_redis), or `apt-get install redis-server`',
      );
    }
    const redis = new Redis(mkdtempSync(path.join(os.tmpdir(), 'confab-e2e-redis-')));
    live.add(redis);
    try {
      await startOnFreePorts(
        'Redis',
        'ports',
        () => redis.logPath,
        async () => `port ${(redis.port = await freePort())}`,
        () => redis.startAgain(),
      );
      return redis;
    } catch (e) {
      await redis.destroy().catch(() => {});
      throw e;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private get logPath(): string {
    return path.join(this.dir, 'redis.log');
  }

  log(): string {
    return readOr(this.logPath);
  }

  async startAgain(): Promise<void> {
    if (this.child) return;
    const binary = findBinary('redis-server') ?? 'redis-server';
    const child = spawn(
      binary,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--logfile', this.logPath],
      { stdio: 'ignore' },
    );
    this.child = child;
    const service = watch(child, 'redis-server', () => {
      if (this.child === child) this.child = null;
    });
    this.exited = service.exited;
    await untilReady(
      service,
      () => ping(this.port),
      () => this.stop(),
      this.logPath,
      `Redis did not start on port ${this.port}`,
      `no PONG from Redis on port ${this.port}`,
    );
  }

  /** SIGTERM, SIGKILL if it lingers. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const inTime = await Promise.race([this.exited.then(() => true), sleep(DEADLINE_MS).then(() => false)]);
    if (!inTime) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  killNow(): void {
    this.child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The example reverse-proxy configuration that ships with Confab. */
export const NGINX_EXAMPLE = path.resolve(__dirname, '../deploy/nginx.conf');

/**
 * nginx in front of a Confab server, configured by deploy/nginx.conf itself: the shipped
 * file, rendered with free ports, the server's port and a throwaway certificate for
 * 127.0.0.1, and put inside a main configuration that keeps everything (pid, logs,
 * temporary files) in a temporary folder and runs in the foreground. As root the workers
 * run as `nobody`, as Debian's own configuration would not have them run as root.
 *
 *   const nginx = await Nginx.start(server.port);  // nginx.url: https://127.0.0.1:PORT/
 *   await nginx.destroy();                         // in afterAll
 */
export class Nginx {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  httpPort = 0;
  httpsPort = 0;

  private constructor(
    readonly dir: string,
    private readonly upstreamPort: number,
  ) {}

  static async start(upstreamPort: number): Promise<Nginx> {
    if (!findBinary('nginx', ['/usr/sbin', '/sbin'])) {
      throw new Error('no nginx on PATH nor in /usr/sbin: scripts/test.sh installs it (ensure_nginx), or `apt-get install nginx`');
    }
    const nginx = new Nginx(mkdtempSync(path.join(os.tmpdir(), 'confab-e2e-nginx-')), upstreamPort);
    live.add(nginx);
    try {
      // Workers (not root, see above) must reach the temporary files under it.
      chmodSync(nginx.dir, 0o755);
      throwawayCertificate(nginx.dir);
      await startOnFreePorts(
        'nginx',
        'port pairs',
        () => nginx.logPath,
        async () => {
          nginx.httpPort = await freePort();
          nginx.httpsPort = await freePort();
          return `ports ${nginx.httpPort}, ${nginx.httpsPort}`;
        },
        () => nginx.run(),
      );
      return nginx;
    } catch (e) {
      await nginx.destroy().catch(() => {});
      throw e;
    }
  }

  /** The HTTPS address people open. */
  get url(): string {
    return `https://127.0.0.1:${this.httpsPort}/`;
  }

  /** The plain HTTP address, which only redirects. */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/`;
  }

  private get logPath(): string {
    return path.join(this.dir, 'error.log');
  }

  /** nginx's error log so far. */
  log(): string {
    return readOr(this.logPath);
  }

  /** deploy/nginx.conf with this instance's ports and files: each line replaced must be
   * in the file exactly once, so the test fails if the example changes under it. */
  render(): string {
    let text = readFileSync(NGINX_EXAMPLE, 'utf8');
    const replacements: [string, string][] = [
      ['server 127.0.0.1:9000;', `server 127.0.0.1:${this.upstreamPort};`],
      ['listen 80;', `listen 127.0.0.1:${this.httpPort};`],
      ['listen 443 ssl http2;', `listen 127.0.0.1:${this.httpsPort} ssl http2;`],
      ['/etc/letsencrypt/live/chat.example.com/fullchain.pem', path.join(this.dir, 'cert.pem')],
      ['/etc/letsencrypt/live/chat.example.com/privkey.pem', path.join(this.dir, 'key.pem')],
    ];
    for (const [from, to] of replacements) {
      const count = text.split(from).length - 1;
      if (count !== 1) throw new Error(`${NGINX_EXAMPLE} has "${from}" ${count} times, expected once`);
      text = text.replace(from, to);
    }
    return text;
  }

  private mainConfig(): string {
    const d = this.dir;
    const asRoot = process.getuid?.() === 0;
    return [
      '# confab e2e harness: deploy/nginx.conf inside a throwaway main configuration',
      asRoot ? 'user nobody nogroup;' : '',
      'daemon off;',
      'worker_processes 1;',
      `pid ${d}/nginx.pid;`,
      `error_log ${d}/error.log notice;`,
      'events { worker_connections 512; }',
      'http {',
      `    access_log ${d}/access.log;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${d}/${t}_temp;`),
      this.render(),
      '}',
      '',
    ].join('\n');
  }

  private async run(): Promise<void> {
    const config = path.join(this.dir, 'nginx.conf');
    writeFileSync(config, this.mainConfig());
    const binary = findBinary('nginx', ['/usr/sbin', '/sbin']) ?? 'nginx';
    const child = spawn(binary, ['-p', this.dir, '-c', config, '-e', this.logPath], { stdio: 'ignore' });
    this.child = child;
    const service = watch(child, 'nginx', () => {
      if (this.child === child) this.child = null;
    });
    this.exited = service.exited;
    await untilReady(
      service,
      async () => (await accepts(this.httpsPort)) && (await accepts(this.httpPort)),
      () => this.stop(),
      this.logPath,
      'nginx did not start',
      'nginx not listening',
    );
  }

  /** The worker processes of the master `pid` (they hold the sockets too). */
  private static workers(pid: number): number[] {
    return readOr(`/proc/${pid}/task/${pid}/children`)
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  }

  /** SIGQUIT (graceful: open connections finish), SIGKILL for master and workers if it lingers. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    const workers = Nginx.workers(child.pid);
    child.kill('SIGQUIT');
    const inTime = await Promise.race([this.exited.then(() => true), sleep(DEADLINE_MS).then(() => false)]);
    if (!inTime) {
      for (const w of workers) signal(w, 'SIGKILL');
      child.kill('SIGKILL');
      await this.exited;
    }
    for (const w of workers) {
      if (!(await waitGone(w, DEADLINE_MS))) signal(w, 'SIGKILL');
    }
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  killNow(): void {
    const pid = this.child?.pid;
    if (pid) {
      const workers = Nginx.workers(pid);
      signal(pid, 'SIGKILL');
      for (const w of workers) signal(w, 'SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
