// Confab as a cluster, in real browsers: two `confab-server` nodes sharing one throwaway
// PostgreSQL and one Redis (services.ts), each with its own working folder (its own file
// cache). People are on different nodes, and one person's tabs too, as a load balancer
// without sticky sessions would place them: what each sees must be what one server would
// show, within the same couple of seconds. The server-side tests (server/tests/cluster*.rs)
// check the protocol; this checks the client on top of it: presence, typing, a session
// made on one node opening the chat on the other, a node restarting under an open tab
// (reconnect, resume, the outbox), files, search and signing out everywhere.
//
// Each browser context is one person (cookies are per host, not per port, so a context's
// session reaches both nodes on 127.0.0.1).
import { test, expect, type Browser, type Locator, type Page } from '@playwright/test';
import { Person, PASSWORD, tag } from '../person';
import { ConfabServer } from '../server';
import { Postgres, Redis } from '../services';
import { Crowd } from '../crowd';

/** How soon a message, a presence change or typing must reach a person on the other node. */
const DELIVERY_MS = 3_000;
/** How long a tab may take to notice its node went away, and to reconnect when it is back
 * (backoff, at most 15 s between attempts). */
const RECONNECT_MS = 25_000;
/** How soon a node stopped cleanly has its people leave the other nodes' lists: it says
 * so as it stops, well before their presence would expire (15 s; docs/CLUSTER.md). */
const PRESENCE_GONE_MS = 5_000;
/** How soon a sign-out made through one node closes the person's sockets on the other. */
const SIGN_OUT_MS = 3_000;
const PHONE = { width: 390, height: 760 };

let pg: Postgres | undefined;
let redis: Redis | undefined;
let nodeA: ConfabServer | undefined;
let nodeB: ConfabServer | undefined;

test.beforeAll(async () => {
  [pg, redis] = await Promise.all([Postgres.start(), Redis.start()]);
  // Every browser here comes from 127.0.0.1, and the sign-in throttle counts for the
  // whole cluster (in Redis): a higher allowance keeps repeated runs from tripping it.
  const flags = ['--database-url', pg.url, '--redis-url', redis.url, '--sign-in-per-ip-per-min', '200'];
  // One after the other: the first creates the schema (the second would wait for its lock).
  nodeA = await ConfabServer.start(flags);
  nodeB = await ConfabServer.start(flags);
});

test.afterAll(async () => {
  // Nodes first, while the database and Redis they hold connections to are still up.
  await Promise.allSettled([nodeA?.stop(), nodeB?.stop()]);
  await Promise.allSettled([pg?.destroy(), redis?.destroy()]);
});

/** Both nodes, for tests (they are set by beforeAll, which fails the spec otherwise). */
function nodes(): { a: ConfabServer; b: ConfabServer } {
  if (!nodeA || !nodeB) throw new Error('the cluster did not start');
  return { a: nodeA, b: nodeB };
}

/** Every page here names its node; node A's is only the default. */
const crowd = new Crowd(Person, { url: () => nodes().a.url, label: 'page' });

test.afterEach(async () => {
  await crowd.closeAll();
});

async function signedUp(
  browser: Browser,
  node: ConfabServer,
  username: string,
  displayName: string,
  viewport?: typeof PHONE,
): Promise<Person> {
  const person = await crowd.arrive(browser, { url: node.url, viewport });
  await person.signUp(username, displayName);
  return person;
}

/** The entry of `name` in `p`'s list of who is online in the room on screen. */
function onlineEntry(p: Person, name: string): Locator {
  return p.online.getByRole('listitem').filter({ hasText: name });
}

/** "N members" under the list of who is online (in a drawer at phone width). */
async function memberCount(p: Person): Promise<string> {
  return ((await p.page.locator('.online .member-count').textContent()) ?? '').trim();
}

function typing(p: Person): Locator {
  return p.page.getByTestId('typing');
}

function pending(p: Person): Locator {
  return p.log.getByTestId('pending');
}

/** Every message on `p`'s screen, as "seq from: text", in order: two views of one room's
 * history compare equal when they hold the same messages. */
async function history(p: Person): Promise<string[]> {
  return p.log
    .getByTestId('message')
    .evaluateAll((items) =>
      items.map(
        (li) => `${li.getAttribute('data-seq')} ${li.getAttribute('data-from')}: ${li.querySelector('.body')?.textContent ?? ''}`,
      ),
    );
}

/** A real PNG (so the server makes it a preview) of `width` × `height`, drawn in `page`. */
async function png(page: Page, width: number, height: number): Promise<Buffer> {
  const base64 = await page.evaluate(
    ([w, h]) => {
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      const g = canvas.getContext('2d');
      if (!g) throw new Error('no 2d canvas');
      g.fillStyle = '#2f5bd3';
      g.fillRect(0, 0, w, h);
      g.fillStyle = '#ffbf47';
      g.fillRect(w / 4, h / 4, w / 2, h / 2);
      return canvas.toDataURL('image/png').split(',')[1];
    },
    [width, height],
  );
  return Buffer.from(base64, 'base64');
}

/** An image's natural size once it has loaded (0 × 0 while loading or when broken). */
function naturalSize(img: Locator): Promise<{ width: number; height: number }> {
  return img.evaluate((el) =>
    el instanceof HTMLImageElement && el.complete
      ? { width: el.naturalWidth, height: el.naturalHeight }
      : { width: 0, height: 0 },
  );
}

test('people on two nodes see each other online, their messages and their typing', async ({ browser }, testInfo) => {
  const { a, b } = nodes();
  const t = tag();
  const ada = await signedUp(browser, a, `ada-${t}`, `Ada ${t}`);
  // Bob on a phone: the people are in a drawer there.
  const bob = await signedUp(browser, b, `bob-${t}`, `Bob ${t}`, PHONE);

  await expect(onlineEntry(ada, `Bob ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  const peopleToggle = bob.page.getByRole('button', { name: /^People \(\d+ online\)$/ });
  await peopleToggle.click();
  await expect(bob.online).toBeVisible();
  await expect(onlineEntry(bob, `Ada ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await bob.page.keyboard.press('Escape');
  await expect(bob.online).toBeHidden();

  const hello = `hello from node A ${t}`;
  await ada.send('#general', hello);
  await expect(bob.message(ada.username, hello)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(bob.message(ada.username, hello).locator('.from')).toHaveText(`Ada ${t}`);
  await expect(ada.message(ada.username, hello)).toHaveCount(1);

  // Bob's typing crosses to node A, and ends with the message it became.
  await expect(typing(ada)).toHaveText('');
  await bob.composer('#general').pressSequentially('and hello from', { delay: 50 });
  await expect(typing(ada)).toHaveText(`Bob ${t} is typing…`, { timeout: DELIVERY_MS });
  const reply = `and hello from node B ${t}`;
  await bob.composer('#general').fill(reply);
  await bob.composer('#general').press('Enter');
  await expect(ada.message(bob.username, reply)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(bob.message(bob.username, reply)).toHaveCount(1);
  await expect(typing(ada)).toHaveText('', { timeout: DELIVERY_MS });
  // Each line once on both screens, in the same order.
  await expect.poll(() => history(bob)).toEqual(await history(ada));
  // The room's size reads the same on both nodes (Bob's joining is stored by node B;
  // node A counts him from his arrival).
  const bobCount = await memberCount(bob);
  expect(bobCount).toMatch(/^\d+ members$/);
  await expect.poll(() => memberCount(ada)).toBe(bobCount);
  await expect(pending(ada)).toHaveCount(0);
  await expect(pending(bob)).toHaveCount(0);

  await ada.page.screenshot({ path: testInfo.outputPath('ada-node-a-desktop.png') });
  await bob.page.screenshot({ path: testInfo.outputPath('bob-node-b-phone.png') });
});

test("a second tab on the other node is signed in by the first's session, with the same history", async ({
  browser,
}) => {
  const { a, b } = nodes();
  const t = tag();
  const ada = await signedUp(browser, a, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, b, `bob-${t}`, `Bob ${t}`);
  const first = `before the second tab ${t}`;
  await ada.send('#general', first);
  await expect(bob.message(ada.username, first)).toHaveCount(1, { timeout: DELIVERY_MS });
  const answer = `seen on node B ${t}`;
  await bob.send('#general', answer);
  await expect(ada.message(bob.username, answer)).toHaveCount(1, { timeout: DELIVERY_MS });

  // The same browser opens node B: no sign-in form, straight into the chat as Ada.
  const adaOnB = await crowd.openTab(ada.context, b.url);
  adaOnB.username = ada.username;
  await adaOnB.expectInChat();
  await expect(adaOnB.page.getByRole('banner')).toContainText(`Ada ${t}`);
  await expect(adaOnB.message(ada.username, first)).toHaveCount(1);
  await expect(adaOnB.message(bob.username, answer)).toHaveCount(1);
  await expect.poll(() => history(adaOnB)).toEqual(await history(ada));

  // What she writes there shows in her first tab (node A) and for Bob, once each.
  const fromB = `written in the tab on node B ${t}`;
  await adaOnB.send('#general', fromB);
  await expect(ada.message(ada.username, fromB)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(bob.message(ada.username, fromB)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(adaOnB.message(ada.username, fromB)).toHaveCount(1);
  // Ada is one person in the list, whichever node her tabs are on.
  await expect(onlineEntry(bob, `Ada ${t}`)).toHaveCount(1);
  await expect.poll(() => history(bob)).toEqual(await history(ada));
  await expect.poll(() => history(adaOnB)).toEqual(await history(ada));
});

test('a tab whose node restarts reconnects by itself: what was said meanwhile shows once, its outbox goes out once', async ({
  browser,
}, testInfo) => {
  const { a, b } = nodes();
  const t = tag();
  const ada = await signedUp(browser, a, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, b, `bob-${t}`, `Bob ${t}`);
  await expect(onlineEntry(ada, `Bob ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  const before = `before node B stops ${t}`;
  await ada.send('#general', before);
  await expect(bob.message(ada.username, before)).toHaveCount(1, { timeout: DELIVERY_MS });

  await b.stop();
  const stoppedAt = Date.now();
  await expect(bob.connection).toHaveAttribute('data-state', 'offline', { timeout: RECONNECT_MS });
  await expect(ada.connection).toHaveAttribute('data-state', 'open');
  // Ada, still on node A, writes; Bob, offline, writes too: his message waits in his outbox.
  const whileDown = `said while node B was down ${t}`;
  await ada.send('#general', whileDown);
  await expect(ada.message(ada.username, whileDown)).toHaveCount(1, { timeout: DELIVERY_MS });
  const offline = `written by bob while offline ${t}`;
  await bob.send('#general', offline);
  await expect(pending(bob)).toContainText(offline);
  await expect(pending(bob)).toContainText('sending…');
  await expect(bob.log).not.toContainText(whileDown);
  // Bob's only connection was on node B: he leaves Ada's list.
  await expect(onlineEntry(ada, `Bob ${t}`)).toHaveCount(0, { timeout: PRESENCE_GONE_MS });
  testInfo.annotations.push({ type: 'presence', description: `Bob left Ada's list ${Date.now() - stoppedAt} ms after node B stopped` });
  await bob.page.screenshot({ path: testInfo.outputPath('bob-while-node-b-down.png') });

  await b.start();
  // Nobody reloads: the tab finds its node again, resumes, and sends its outbox.
  await expect(bob.connection).toHaveAttribute('data-state', 'open', { timeout: RECONNECT_MS });
  await expect(bob.message(ada.username, whileDown)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(ada.message(bob.username, offline)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(pending(bob)).toHaveCount(0, { timeout: DELIVERY_MS });
  await expect(bob.message(bob.username, offline)).toHaveCount(1);
  await expect(onlineEntry(ada, `Bob ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });

  // A later line from each side proves both screens are up to date; then every line is
  // still there once (a repeat would come before these), in the same order on both.
  const afterA = `after the restart, from A ${t}`;
  const afterB = `after the restart, from B ${t}`;
  await ada.send('#general', afterA);
  await bob.send('#general', afterB);
  for (const p of [ada, bob]) {
    await expect(p.message(ada.username, afterA)).toHaveCount(1, { timeout: DELIVERY_MS });
    await expect(p.message(bob.username, afterB)).toHaveCount(1, { timeout: DELIVERY_MS });
    for (const [from, text] of [
      [ada.username, before],
      [ada.username, whileDown],
      [bob.username, offline],
    ]) {
      await expect(p.message(from, text)).toHaveCount(1);
      await expect(p.log.getByTestId('message').filter({ hasText: text })).toHaveCount(1);
    }
  }
  await expect.poll(() => history(bob)).toEqual(await history(ada));
  await ada.page.screenshot({ path: testInfo.outputPath('ada-after-node-b-restart.png') });
  await bob.page.screenshot({ path: testInfo.outputPath('bob-after-node-b-restart.png') });
});

test('an image shared on node A previews and downloads for a person on node B', async ({ browser }, testInfo) => {
  const { a, b } = nodes();
  const t = tag();
  const ada = await signedUp(browser, a, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, b, `bob-${t}`, `Bob ${t}`);
  const picture = await png(ada.page, 600, 400);

  await ada.page.getByLabel('Attach files', { exact: true }).setInputFiles({
    name: `harbour-${t}.png`,
    mimeType: 'image/png',
    buffer: picture,
  });
  const caption = `the harbour, from node A ${t}`;
  await ada.send('#general', caption);

  const seen = bob.message(ada.username, caption);
  await expect(seen).toHaveCount(1, { timeout: DELIVERY_MS });
  // The preview, made on node A, comes from node B (its own cache of the shared store).
  const preview = seen.getByRole('img', { name: `harbour-${t}.png` });
  await expect(preview).toBeVisible();
  expect(await preview.getAttribute('src')).toMatch(/^\/api\/files\/[^/]+\/thumb$/);
  await expect.poll(() => naturalSize(preview).then((s) => s.width > 0 && s.height > 0)).toBe(true);
  // Fitted keeping its shape (3:2).
  const { width, height } = await naturalSize(preview);
  expect(Math.abs(width / height - 1.5)).toBeLessThan(0.02);
  // The full file, as Bob's browser gets it from node B, is the very bytes Ada shared.
  const link = seen.getByRole('link', { name: new RegExp(`harbour-${t}\\.png`) });
  const href = await link.getAttribute('href');
  expect(href).toMatch(/^\/api\/files\/[^/]+$/);
  const full = await bob.context.request.get(new URL(href!, b.url).toString());
  expect(full.status()).toBe(200);
  expect(full.headers()['content-type']).toBe('image/png');
  expect(Buffer.from(await full.body()).equals(picture)).toBe(true);

  await bob.page.screenshot({ path: testInfo.outputPath('bob-node-b-image-from-a.png') });
});

test('a search on node B finds a word written on node A', async ({ browser }) => {
  const { a, b } = nodes();
  const t = tag();
  const ada = await signedUp(browser, a, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, b, `bob-${t}`, `Bob ${t}`);
  const word = `quokka${t}`;
  const text = `a ${word} was seen near the harbour`;
  await ada.send('#general', text);
  await expect(bob.message(ada.username, text)).toHaveCount(1, { timeout: DELIVERY_MS });

  const field = bob.page
    .getByRole('search', { name: 'Search messages' })
    .getByRole('searchbox', { name: 'Search messages' });
  await field.fill(word.toUpperCase());
  await field.press('Enter');
  const results = bob.page.getByRole('region', { name: 'Search results' });
  await expect(results.getByRole('status')).toHaveText(`1 result for \u201c${word.toUpperCase()}\u201d`);
  const hit = results.getByRole('list').getByRole('button');
  await expect(hit).toHaveCount(1);
  await expect(hit).toContainText(`Ada ${t}`);
  await expect(hit.locator('mark')).toHaveText(word);
});

test('signing out everywhere through node B closes the session on node A', async ({ browser }) => {
  const { a, b } = nodes();
  const t = tag();
  const username = `bob-${t}`;
  const laptop = await signedUp(browser, a, username, `Bob ${t}`);
  // Another browser of his (its own cookie jar), signed in through node B.
  const phone = await crowd.arrive(browser, { url: b.url, viewport: PHONE });
  phone.username = username;
  await phone.submitSignIn(username, PASSWORD);
  await phone.expectInChat();
  // A second tab of the laptop's browser, on node B too.
  const laptopOnB = await crowd.openTab(laptop.context, b.url);
  laptopOnB.username = username;
  await laptopOnB.expectInChat();

  await phone.signOut(true);
  await expect(phone.signInForm).toBeVisible();
  // Node A hears of it from node B and closes the laptop's socket: the sign-in form.
  await expect(laptop.signInForm).toBeVisible({ timeout: SIGN_OUT_MS });
  await expect(laptop.connection).toHaveAttribute('data-state', 'idle');
  await expect(laptopOnB.signInForm).toBeVisible({ timeout: SIGN_OUT_MS });
  // And the session is over, not merely its sockets: a reload on node A stays signed out.
  await laptop.page.reload();
  await expect(laptop.signInForm).toBeVisible();
  await expect(laptop.accountMenu).toHaveCount(0);
});
