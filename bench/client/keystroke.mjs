// The web client's own performance, measured in Chromium: a room with thousands of loaded
// messages and people typing in it, as a busy team channel looks after a morning of
// scrolling back. The messages are what such a channel holds: links, inline code, fenced
// code blocks, emphasis and mentions in half of them, reactions on half of them (a few
// people, a few emoji each). Two figures:
//
// - keystroke to frame: from a key press in the composer (the event's timestamp) to the
//   moment after the next frame the browser produced, for each key of a typed sentence;
//   p50, p95 and max. Chromium runs without vsync (`--disable-gpu-vsync
//   --disable-frame-rate-limit`), so the figure is the client's work, not the wait for a
//   60 Hz display. The same keys typed into a bare textarea in the same browser give the
//   floor: what the machine and the browser cost without any client.
// - the idle tick: the client wakes once a second to expire typing indicators. With nobody
//   typing, a tick has nothing to change: we report the script time per tick (Chrome's
//   `ScriptDuration`) and whether it touched the page at all (layouts, style recalcs and
//   DOM mutations in the window); the same with three people typing.
//
// Usage: node keystroke.mjs --server-bin PATH --static-dir DIR [--messages 5000] [--keys 200]
//          [--idle-secs 10] [--json FILE] [--smoke]
// Starts its own server (guests allowed, rate limits lifted for seeding) on a free port with
// a throwaway data directory, and stops it at the end, also on failure.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const args = parseArgs(process.argv.slice(2));
const smoke = args.smoke === true;
const MESSAGES = Number(args.messages ?? (smoke ? 300 : 5000));
const KEYS = Number(args.keys ?? (smoke ? 20 : 200));
const IDLE_SECS = Number(args['idle-secs'] ?? (smoke ? 3 : 10));
const TYPISTS = 3;
const PROTOCOL = 8;
/** People who react to the seeded messages besides the seeder. */
const REACTORS = 2;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key] = argv[++i];
    else out[key] = true;
  }
  if (!out['server-bin'] || !out['static-dir']) {
    console.error('usage: node keystroke.mjs --server-bin PATH --static-dir DIR [--messages N] [--keys N] [--idle-secs N] [--json FILE] [--smoke]');
    process.exit(2);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'confab-client-bench-'));
  const child = spawn(
    path.resolve(args['server-bin']),
    [
      '--listen', `127.0.0.1:${port}`,
      '--static-dir', path.resolve(args['static-dir']),
      '--data-dir', path.join(dir, 'data'),
      '--allow-guests',
      // Seeding thousands of messages from one socket is not what the limits are for.
      '--rate-limit-per-sec', '1000000',
      '--rate-limit-burst', '1000000',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr.on('data', (c) => (log = (log + c).slice(-4000)));
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${url}healthz`);
      if (res.ok) return { url, stop: () => stop(child, dir) };
    } catch {}
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  stop(child, dir);
  throw new Error(`the server did not start:\n${log}`);
}

function stop(child, dir) {
  if (child.exitCode === null) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

/** Guests talking the wire protocol from a page of the server's origin (the Origin check
 * wants one): the seeder and the typists. Runs in the page. */
async function openGuests(page, names) {
  await page.evaluate(
    async ({ names, protocol }) => {
      window.guests = await Promise.all(
        names.map(
          (name) =>
            new Promise((resolve, reject) => {
              const ws = new WebSocket(`ws://${location.host}/ws`);
              ws.onerror = () => reject(new Error(`socket of ${name} failed`));
              ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', protocol, name }));
              ws.onmessage = (e) => {
                const msg = JSON.parse(e.data);
                if (msg.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room: 'general' }));
                if (msg.type === 'joined') resolve(ws);
                if (msg.type === 'error') reject(new Error(`${name}: ${msg.message}`));
              };
            }),
        ),
      );
    },
    { names, protocol: PROTOCOL },
  );
}

async function seed(page, count) {
  await openGuests(page, ['seeder']);
  await page.evaluate(async (count) => {
    const ws = window.guests[0];
    const batch = 500;
    for (let from = 0; from < count; from += batch) {
      const n = Math.min(batch, count - from);
      await new Promise((resolve) => {
        let acked = 0;
        ws.onmessage = (e) => {
          if (JSON.parse(e.data).type === 'ack' && ++acked === n) resolve();
        };
        for (let i = 0; i < n; i++) {
          const k = from + i + 1;
          const plain = `message ${k}: the quick brown fox jumps over the lazy dog, again and again`;
          const body = [
            `message ${k}: see https://example.org/docs/${k}?q=fox and run \`cargo build --release\``,
            `message ${k}: **important** and *urgent*, @reader and @typist1, please look`,
            `message ${k}:\n\`\`\`rust\nfn main() {\n    println!("{}", ${k});\n}\n\`\`\``,
            plain,
            plain,
            plain,
          ][k % 6];
          ws.send(JSON.stringify({ type: 'send', room: 'general', body, client_id: `seed-${k}` }));
        }
      });
    }
  }, count);
  // Reactions on half the messages: the seeder and REACTORS others, one to three emoji.
  await page.evaluate(() => (window.seederWs = window.guests[0]));
  await openGuests(page, Array.from({ length: REACTORS }, (_, i) => `reactor${i + 1}`));
  await page.evaluate(async (count) => {
    window.guests = [window.seederWs, ...window.guests];
    const [seeder, ...reactors] = window.guests;
    const wanted = [];
    for (let seq = 2; seq <= count; seq += 2) {
      wanted.push([seeder, seq, '👍']);
      if (seq % 6 === 0) wanted.push([seeder, seq, '🎉']);
      reactors.forEach((ws, i) => {
        if ((seq + i) % 4 === 0) wanted.push([ws, seq, i === 0 ? '👍' : '🚀']);
      });
    }
    for (let from = 0; from < wanted.length; from += 500) {
      const batch = wanted.slice(from, from + 500);
      const acked = Promise.all(
        window.guests.map(
          (ws) =>
            new Promise((resolve, reject) => {
              let expected = batch.filter(([w]) => w === ws).length;
              if (expected === 0) return resolve();
              ws.onmessage = (e) => {
                const msg = JSON.parse(e.data);
                if (msg.type === 'error') reject(new Error(msg.message));
                if (msg.type === 'ack' && --expected === 0) resolve();
              };
            }),
        ),
      );
      batch.forEach(([ws, seq, emoji], i) =>
        ws.send(JSON.stringify({ type: 'react', room: 'general', seq, emoji, client_id: `r-${from + i}` })),
      );
      await acked;
    }
    for (const ws of window.guests) ws.close();
  }, count);
}

async function startTyping(page) {
  await openGuests(page, Array.from({ length: TYPISTS }, (_, i) => `typist${i + 1}`));
  await page.evaluate(() => {
    window.typing = setInterval(() => {
      for (const ws of window.guests) ws.send(JSON.stringify({ type: 'typing', room: 'general' }));
    }, 1_000);
  });
}

async function stopTyping(page) {
  await page.evaluate(() => clearInterval(window.typing));
}

/** The reader: a guest in the web client, with `count` messages loaded by scrolling back. */
async function openReader(browser, url, count) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => {
    // The 401 of `/api/me` before joining is the client asking who it is, as designed.
    const expected = /status of 401/.test(m.text()) && m.location().url.endsWith('/api/me');
    if (m.type() === 'error' && !expected) problems.push(m.text());
  });
  await page.goto(url);
  await page.getByLabel('Display name', { exact: true }).fill('reader');
  await page.getByRole('button', { name: 'Join chat' }).click();
  const composer = page.getByLabel('Message #general', { exact: true });
  await composer.waitFor();
  const messages = page.getByTestId('message');
  const log = page.getByRole('log', { name: 'Messages' });
  for (let loaded = await messages.count(); loaded < count; ) {
    await log.evaluate((el) => el.scrollTo({ top: 0 }));
    const deadline = Date.now() + 10_000;
    let now = loaded;
    while (now === loaded && Date.now() < deadline) {
      await sleep(20);
      now = await messages.count();
    }
    if (now === loaded) throw new Error(`scrolling back stopped at ${loaded} of ${count} messages`);
    loaded = now;
  }
  return { page, composer, problems };
}

/** The same keystrokes into a bare textarea in the same browser: what the browser and the
 * machine cost by themselves, to read the client's figure against. */
async function floor(browser, keys) {
  const page = await (await browser.newContext()).newPage();
  await page.setContent('<textarea aria-label="floor"></textarea>');
  const latencies = await keystrokes(page, page.getByLabel('floor'), keys);
  await page.context().close();
  return latencies;
}

async function keystrokes(page, composer, keys) {
  await composer.click();
  await page.evaluate(() => {
    window.latencies = [];
    document.addEventListener(
      'keydown',
      (e) => {
        const start = e.timeStamp;
        // After the next frame: the first task once its animation-frame callbacks ran.
        requestAnimationFrame(() => {
          const channel = new MessageChannel();
          channel.port1.onmessage = () => window.latencies.push(performance.now() - start);
          channel.port2.postMessage(null);
        });
      },
      true,
    );
  });
  const sentence = 'typing a long reply while three people are typing too ';
  for (let i = 0; i < keys; i++) {
    await page.keyboard.press(sentence[i % sentence.length] === ' ' ? 'Space' : sentence[i % sentence.length]);
    await sleep(25);
  }
  await sleep(200);
  const latencies = await page.evaluate(() => window.latencies);
  await composer.fill('');
  return latencies;
}

/** Script time and page work over `secs` seconds of the client's own ticks. */
async function idleWindow(page, cdp, secs) {
  await page.evaluate(() => {
    window.mutations = 0;
    window.observer?.disconnect();
    window.observer = new MutationObserver((records) => (window.mutations += records.length));
    window.observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const before = await metrics(cdp);
  await sleep(secs * 1000);
  const after = await metrics(cdp);
  const mutations = await page.evaluate(() => window.mutations);
  return {
    script_ms_per_tick: ((after.ScriptDuration - before.ScriptDuration) * 1000) / secs,
    layouts: after.LayoutCount - before.LayoutCount,
    style_recalcs: after.RecalcStyleCount - before.RecalcStyleCount,
    dom_mutations: mutations,
  };
}

async function metrics(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const server = await startServer();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-gpu-vsync', '--disable-frame-rate-limit',
  ],
});
try {
  const helpers = await (await browser.newContext()).newPage();
  await helpers.goto(`${server.url}healthz`);
  await seed(helpers, MESSAGES);
  const reader = await openReader(browser, server.url, MESSAGES);
  const cdp = await reader.page.context().newCDPSession(reader.page);
  await cdp.send('Performance.enable');

  // Nobody typing: every tick should find nothing to do.
  const idle = await idleWindow(reader.page, cdp, IDLE_SECS);
  // Three people typing (indicators refreshed every second, expiring after 5 s).
  await startTyping(helpers);
  await reader.page.getByTestId('typing').filter({ hasText: /typing/ }).waitFor();
  const typing = await idleWindow(reader.page, cdp, IDLE_SECS);
  const latencies = (await keystrokes(reader.page, reader.composer, KEYS)).sort((a, b) => a - b);
  const bare = (await floor(browser, KEYS)).sort((a, b) => a - b);
  await stopTyping(helpers);
  if (latencies.length < KEYS * 0.9) throw new Error(`only ${latencies.length} of ${KEYS} key presses were timed`);
  if (reader.problems.length > 0) throw new Error(`the client logged errors:\n${reader.problems.join('\n')}`);

  const result = {
    messages_loaded: MESSAGES,
    typists: TYPISTS,
    keys: latencies.length,
    keystroke_to_frame_ms: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      max: latencies[latencies.length - 1],
    },
    bare_textarea_keystroke_to_frame_ms: {
      p50: percentile(bare, 50),
      p95: percentile(bare, 95),
      max: bare[bare.length - 1],
    },
    tick_nobody_typing: idle,
    tick_three_typing: typing,
  };
  const f = (x) => x.toFixed(2);
  console.log(`client: ${MESSAGES} messages loaded, ${TYPISTS} people typing, ${latencies.length} keys`);
  console.log(
    `  keystroke to frame: p50 ${f(result.keystroke_to_frame_ms.p50)} ms, p95 ${f(result.keystroke_to_frame_ms.p95)} ms, max ${f(result.keystroke_to_frame_ms.max)} ms`,
  );
  console.log(
    `  the same keys in a bare textarea (the floor): p50 ${f(result.bare_textarea_keystroke_to_frame_ms.p50)} ms, p95 ${f(result.bare_textarea_keystroke_to_frame_ms.p95)} ms`,
  );
  for (const [name, w] of [['nobody typing', idle], ['three typing', typing]]) {
    console.log(
      `  tick, ${name}: ${f(w.script_ms_per_tick)} ms of script per second, ${w.layouts} layouts, ${w.style_recalcs} style recalcs, ${w.dom_mutations} DOM mutations in ${IDLE_SECS} s`,
    );
  }
  if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  server.stop();
}
