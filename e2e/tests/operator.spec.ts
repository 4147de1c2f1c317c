// An operator's server, the deployment parts together on one process: HTTPS and wss://
// served by the server itself (a throwaway certificate), metrics on their own listener,
// the administrator's tools from the page and from the command line. Two people chat over
// TLS; the administrator disables one from the admin page and the other with
// `confab-server admin disable` (reaching the running server through its control socket);
// both pages leave the chat saying why, and the scrape counts exactly what happened,
// including the two sockets closed with 4003. The reset link the command prints is an
// https:// link that works in the browser.
import { test, expect } from '@playwright/test';
import { PASSWORD, Person, tag } from '../person';
import { ConfabServer, freePort } from '../server';
import { Crowd } from '../crowd';

let server: ConfabServer;
let metricsPort: number;
// Over TLS with a throwaway certificate.
const crowd = new Crowd(Person, { url: () => server.url, context: { ignoreHTTPSErrors: true }, label: 'person' });

test.beforeAll(async () => {
  metricsPort = await freePort();
  server = await ConfabServer.start(['--metrics-listen', `127.0.0.1:${metricsPort}`], { tls: true });
  await server.admin(['create', 'root', '--display-name', 'Root'], `${PASSWORD}\n`);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

/** Every sample of the scrape, by series (name and labels as written). */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(res.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

test('two people chat over TLS; disabled from the page and from the command line, the scrape counts it all', async ({
  browser,
}) => {
  const t = tag();
  const before = await scrape();
  const moved = (after: Map<string, number>, series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);

  const bob = await crowd.arrive(browser);
  await bob.signUp(`bob-${t}`, `Bob ${t}`);
  const carol = await crowd.arrive(browser);
  await carol.signUp(`carol-${t}`, `Carol ${t}`);
  expect(new URL(bob.page.url()).protocol).toBe('https:');
  const cookies = await bob.context.cookies();
  expect(cookies.find((c) => c.name.startsWith('__Host-'))?.secure, 'the session cookie is Secure over TLS').toBe(true);
  const text = `over wss ${t}`;
  await bob.send('#general', text);
  await expect(carol.message(bob.username, text)).toBeVisible();

  // From the admin page.
  const admin = await crowd.arrive(browser);
  await admin.submitSignIn('root', PASSWORD);
  await admin.expectInChat();
  await admin.page.getByRole('button', { name: 'Administration', exact: true }).click();
  const panel = admin.page.getByRole('region', { name: 'Administration', exact: true });
  await panel.getByLabel('Search people').fill(`bob-${t}`);
  const row = panel.getByRole('table', { name: 'People' }).getByRole('row').filter({ hasText: `bob-${t}` });
  await row.getByRole('button', { name: `Disable: bob-${t}` }).click();
  await expect(bob.signInForm.getByText('An administrator disabled your account')).toBeVisible();

  // From the command line, while the server runs.
  await expect(carol.connection).toHaveAttribute('data-state', 'open');
  await server.admin(['disable', `carol-${t}`]);
  await expect(carol.signInForm.getByText('An administrator disabled your account')).toBeVisible();

  const after = await scrape();
  expect(moved(after, 'confab_sign_ups_total')).toBe(2);
  expect(moved(after, 'confab_sign_ins_total')).toBe(1);
  expect(moved(after, 'confab_messages_stored_total')).toBe(1);
  // Bob's message went to the two pages in #general then: his own and Carol's.
  expect(moved(after, 'confab_messages_delivered_total')).toBe(2);
  expect(moved(after, 'confab_connections_closed_total{by="server",code="4003"}')).toBe(2);
  expect(moved(after, 'confab_connections_closed_total{by="server",code="other"}')).toBe(0);

  // A reset link from the command line is an https:// link to this server, and works.
  await server.admin(['enable', `carol-${t}`]);
  const out = await server.admin(['reset-password', `carol-${t}`]);
  const link = out.split('\n').find((l) => l.includes('?reset='));
  expect(link).toBeTruthy();
  const resetPath = link!.slice(link!.indexOf('/?reset='));
  await carol.page.goto(`${server.url}${resetPath.slice(1)}`);
  const form = carol.page.getByRole('form', { name: 'Set a new password' });
  await form.getByLabel('New password').fill('a brand new horse');
  await form.getByRole('button', { name: 'Set password' }).click();
  await expect(carol.page.getByText('Your new password is set. Sign in with it.')).toBeVisible();
  await carol.submitSignIn(carol.username, 'a brand new horse');
  await carol.expectInChat();
});
