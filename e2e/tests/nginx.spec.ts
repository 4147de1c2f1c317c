// Confab as it is deployed, in real browsers: the server binary copied alone into an empty
// folder (no dist/, no data; its client is the one built into it) and run there, behind
// nginx configured by deploy/nginx.conf itself (rendered with free ports and a throwaway
// certificate: e2e/services.ts). Everything goes through nginx over HTTPS: the page and
// its files (compressed and cached as the binary serves them), two people chatting over
// wss://, a file larger than nginx's default body limit, and a reload that resumes. The
// server trusts nginx (--trusted-proxy), so the session cookie is Secure.
import { test, expect, request as playwrightRequest } from '@playwright/test';
import { Person, tag } from '../person';
import { ConfabServer } from '../server';
import { Nginx } from '../services';
import { Crowd } from '../crowd';

/** How soon a message must reach the other person. */
const DELIVERY_MS = 3_000;

let server: ConfabServer | undefined;
let nginx: Nginx | undefined;

test.beforeAll(async () => {
  server = await ConfabServer.start(['--trusted-proxy', '127.0.0.1'], { alone: true });
  nginx = await Nginx.start(server.port);
});

test.afterAll(async () => {
  // Both, whatever happened: nginx first, so no browser reaches a stopping server.
  await Promise.allSettled([nginx?.destroy()]);
  await Promise.allSettled([server?.stop()]);
});

function proxy(): Nginx {
  if (!nginx) throw new Error('nginx did not start');
  return nginx;
}

/** The people, on the page through nginx (its throwaway certificate). */
const crowd = new Crowd(Person, { url: () => proxy().url, context: { ignoreHTTPSErrors: true }, label: 'person' });

test.afterEach(async () => {
  await crowd.closeAll();
});

test('the page and its files come from the binary through nginx: compressed, cached, revalidated', async () => {
  const api = await playwrightRequest.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await api.get(proxy().url, { headers: { 'Accept-Encoding': 'br, gzip' } });
    expect(page.status()).toBe(200);
    const headers = page.headers();
    expect(headers['content-type']).toBe('text/html; charset=utf-8');
    expect(headers['cache-control'], 'the page is revalidated on every load').toBe('no-cache');
    expect(headers['content-encoding']).toBe('br');
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    const etag = headers['etag'];
    expect(etag).toMatch(/^"[^"]+"$/);
    const again = await api.get(proxy().url, { headers: { 'Accept-Encoding': 'br, gzip', 'If-None-Match': etag } });
    expect(again.status(), 'unchanged: 304 through nginx').toBe(304);

    // The WebAssembly the page loads: trunk hashed its name, so it is kept for a year.
    const wasm = (await page.text()).match(/\/(confab-web-[0-9a-f]+_bg\.wasm)/)?.[1];
    expect(wasm, 'index.html names the client').toBeTruthy();
    for (const [accept, coding] of [
      ['br, gzip', 'br'],
      ['gzip', 'gzip'],
    ]) {
      const res = await api.get(`${proxy().url}${wasm}`, { headers: { 'Accept-Encoding': accept } });
      expect(res.status()).toBe(200);
      expect(res.headers()['content-encoding']).toBe(coding);
      expect(res.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers()['vary']).toMatch(/accept-encoding/i);
      // Decompressed by the client: a WebAssembly module.
      expect((await res.body()).subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
    }

    // Plain HTTP is sent to HTTPS.
    const plain = await api.get(proxy().httpUrl, { maxRedirects: 0 });
    expect(plain.status()).toBe(301);
    expect(plain.headers()['location']).toBe('https://127.0.0.1/');
  } finally {
    await api.dispose();
  }
});

test('two people chat through nginx, share a file over the default body limit, and a reload resumes', async ({ browser }) => {
  const t = tag();
  const ada = await crowd.arrive(browser);
  await ada.signUp(`ada-${t}`, 'Ada');
  const bob = await crowd.arrive(browser);
  await bob.signUp(`bob-${t}`, 'Bob');

  // The server believed nginx's X-Forwarded-Proto: the session cookie is for HTTPS only.
  const cookies = await ada.context.cookies(proxy().url);
  const session = cookies.find((c) => c.name.endsWith('confab_session'));
  expect(session?.secure, `a Secure session cookie in ${JSON.stringify(cookies)}`).toBe(true);

  const hello = `hello through nginx ${t}`;
  await ada.send('#general', hello);
  await expect(bob.message(ada.username, hello)).toHaveCount(1, { timeout: DELIVERY_MS });
  const reply = `and back over wss ${t}`;
  await bob.send('#general', reply);
  await expect(ada.message(bob.username, reply)).toHaveCount(1, { timeout: DELIVERY_MS });

  // 3 MiB: more than nginx lets through by default (1 MiB), less than the example allows.
  const big = Buffer.alloc(3 * 1024 * 1024, 'confab ');
  await ada.page.getByLabel('Attach files', { exact: true }).setInputFiles({
    name: `notes-${t}.txt`,
    mimeType: 'text/plain',
    buffer: big,
  });
  const caption = `the notes ${t}`;
  await ada.send('#general', caption);
  const shared = bob.message(ada.username, caption);
  await expect(shared.getByRole('link', { name: `notes-${t}.txt` })).toBeVisible({ timeout: 15_000 });
  await expect(ada.log.getByTestId('pending')).toHaveCount(0);

  // A reload: the same session, the history, and new messages as they come.
  await bob.page.reload();
  await bob.expectInChat();
  await expect(bob.message(ada.username, hello)).toHaveCount(1);
  await expect(bob.message(bob.username, reply)).toHaveCount(1);
  const after = `after the reload ${t}`;
  await ada.send('#general', after);
  await expect(bob.message(ada.username, after)).toHaveCount(1, { timeout: DELIVERY_MS });
});
