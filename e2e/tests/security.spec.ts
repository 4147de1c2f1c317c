// The app under its own Content-Security-Policy: the server sends a strict policy on every
// response (server/src/http/headers.rs), and this spec proves the client works within it
// (every other spec runs under it too, and fails on the console error a violation logs),
// that the policy is really enforced, and that the other security headers are there.
import { test, expect } from '@playwright/test';
import { Person, tag } from '../person';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';

let server: ConfabServer;
const crowd = new Crowd(Person, {
  url: () => server.url,
  label: 'person',
  // Every violation of the policy, as the page reports it.
  beforeLoad: (page) =>
    page.addInitScript(() => {
      (window as unknown as { violations: string[] }).violations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        (window as unknown as { violations: string[] }).violations.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    }),
});

test.beforeAll(async () => {
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

const violations = (p: Person) => p.page.evaluate(() => (window as unknown as { violations: string[] }).violations);

test('every page and asset carries the security headers', async ({ request }) => {
  const page = await request.get(server.url);
  const html = await page.text();
  const script = html.match(/src="(\/[^"]+\.js)"|from '(\/[^']+\.js)'/);
  const asset = await request.get(new URL(script?.[1] ?? script?.[2] ?? '/', server.url).toString());
  for (const response of [page, asset]) {
    const h = response.headers();
    expect(h['content-security-policy']).toContain("default-src 'none'");
    expect(h['content-security-policy']).toContain("script-src 'self' 'wasm-unsafe-eval' 'sha256-");
    expect(h['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(h['content-security-policy']).not.toContain('unsafe-inline');
    expect(h['x-content-type-options']).toBe('nosniff');
    expect(h['referrer-policy']).toBe('no-referrer');
  }
});

test('the app works under the policy, and the policy is enforced', async ({ browser }) => {
  const t = tag();
  const ada = await crowd.arrive(browser);
  await ada.signUp(`ada-${t}`, `Ada ${t}`);
  await ada.send('#general', `under the policy ${t}`);
  await expect(ada.message(ada.username, `under the policy ${t}`)).toHaveCount(1);
  expect(await violations(ada), 'the client needs nothing the policy refuses').toEqual([]);

  // What an injection would try: an inline script. The browser refuses to run it.
  const ran = await ada.page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.injected = true';
    document.body.append(s);
    return (window as unknown as { injected?: boolean }).injected === true;
  });
  expect(ran).toBe(false);
  await expect.poll(() => violations(ada)).toEqual([expect.stringMatching(/^script-src(-elem)? inline$/)]);
  // The browser logs the refusal as a console error: expected here, and only here.
  expect(ada.consoleErrors.every((e) => /Content Security Policy/.test(e))).toBe(true);
  ada.consoleErrors.length = 0;
});
