// Searching messages and opening a result far back, in real browsers: the search box in
// the top bar, results with the matching words marked, a result opening its room at the
// message with the messages around it loaded (a window far from the newest, with "Jump to
// latest"), what a person may not see never found, edits and deletions reflected at
// once, filters, a refused query, and the layout at phone width. Two people with
// accounts, each in a browser context of their own; the server is the production binary.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Browser, type Locator, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Person, tag } from '../person';
import { Crowd } from '../crowd';

let server: ConfabServer;

test.beforeAll(async () => {
  // Every browser here comes from 127.0.0.1 (one sign-in throttle for all), and a room is
  // filled with a few hundred messages at once.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200', '--rate-limit-burst', '1000']);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(Person, { url: () => server.url, label: 'page' });

test.afterEach(async () => {
  await crowd.closeAll();
});

async function signedUp(browser: Browser, username: string, name: string): Promise<Person> {
  const person = await crowd.arrive(browser);
  await person.signUp(username, name);
  return person;
}

/** Frames sent through the protocol as `p` (its session cookie), faster than typing:
 * after joining `room`, one `send` per body, then `edit`/`delete` frames built from the
 * seqs the sends were given. Resolves to those seqs, in the order of `bodies`. */
async function through(
  p: Page,
  room: string,
  bodies: string[],
  changes: { kind: 'edit' | 'delete'; index: number; body?: string }[] = [],
): Promise<number[]> {
  return p.evaluate(
    async ({ url, room, bodies, changes }) => {
      const ws = new WebSocket(url);
      const seqs = new Map<string, number>();
      const total = bodies.length + changes.length;
      let acked = 0;
      await new Promise<void>((resolve, reject) => {
        ws.onerror = () => reject(new Error('socket error'));
        ws.onopen = () => {
          ws.send(JSON.stringify({ type: 'hello', protocol: 8 }));
          ws.send(JSON.stringify({ type: 'join', room }));
          bodies.forEach((body, i) => ws.send(JSON.stringify({ type: 'send', room, body, client_id: `s-${i}` })));
        };
        ws.onmessage = (e) => {
          const msg = JSON.parse(e.data);
          if (msg.type === 'error') reject(new Error(JSON.stringify(msg)));
          if (msg.type !== 'ack') return;
          acked += 1;
          if (msg.client_id.startsWith('s-')) seqs.set(msg.client_id, msg.seq);
          if (acked === bodies.length) {
            changes.forEach((c, i) => {
              const seq = seqs.get(`s-${c.index}`);
              const client_id = `c-${i}`;
              const frame =
                c.kind === 'edit'
                  ? { type: 'edit', room, seq, body: c.body, client_id }
                  : { type: 'delete', room, seq, client_id };
              ws.send(JSON.stringify(frame));
            });
          }
          if (acked === total) resolve();
        };
      });
      ws.close();
      return bodies.map((_, i) => seqs.get(`s-${i}`) ?? 0);
    },
    { url: server.url.replace(/^http/, 'ws').replace(/\/?$/, '/ws'), room, bodies, changes },
  );
}

function searchField(p: Person): Locator {
  return p.page.getByRole('search', { name: 'Search messages' }).getByRole('searchbox', { name: 'Search messages' });
}

function results(p: Person): Locator {
  return p.page.getByRole('region', { name: 'Search results' });
}

function hits(p: Person): Locator {
  return results(p).getByRole('list').getByRole('button');
}

async function search(p: Person, query: string): Promise<void> {
  await searchField(p).fill(query);
  await searchField(p).press('Enter');
  await expect(results(p).getByRole('status')).not.toHaveText(/Searching/);
}

function messageAt(p: Person, seq: number): Locator {
  return p.log.locator(`[data-testid="message"][data-seq="${seq}"]`);
}

async function seriousViolations(page: Page, selector: string): Promise<string[]> {
  const found = await new AxeBuilder({ page }).include(selector).analyze();
  return found.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('a search finds a message far back, opening it shows it among its neighbours, and Jump to latest comes back', async ({
  browser,
}) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  const room = `far-${t}`;
  await ada.createRoom(room);
  const bodies = [`the ancient zephyr${t} sighs`, ...Array.from({ length: 299 }, (_, i) => `filler ${i + 1}`)];
  const seqs = await through(ada.page, room, bodies);
  const [first, last] = [seqs[0], seqs[seqs.length - 1]];

  // Bob opens the room: its newest messages, far from the first.
  await bob.roomButton(room).click();
  await expect(bob.composer(`#${room}`)).toBeVisible();
  await expect(messageAt(bob, last)).toHaveCount(1);
  await expect(messageAt(bob, first)).toHaveCount(0);

  // `/` goes to the search field from anywhere but a text field.
  await bob.roomButton(room).focus();
  await bob.page.keyboard.press('/');
  await expect(searchField(bob)).toBeFocused();
  await bob.page.keyboard.type(`ZEPHYR${t}`);
  await bob.page.keyboard.press('Enter');
  const hit = hits(bob);
  await expect(hit).toHaveCount(1);
  await expect(results(bob).getByRole('status')).toHaveText(`1 result for \u201cZEPHYR${t}\u201d`);
  await expect(hit).toContainText(`#${room}`);
  await expect(hit).toContainText(`Ada ${t}`);
  await expect(hit).toContainText(`the ancient zephyr${t} sighs`);
  // The word is marked, as text: the rest of the body is outside the mark.
  await expect(hit.locator('mark')).toHaveText(`zephyr${t}`);
  expect(await seriousViolations(bob.page, '.search')).toEqual([]);

  // The keyboard reaches the result and opens it.
  await bob.page.keyboard.press('ArrowDown');
  await expect(hit).toBeFocused();
  await bob.page.keyboard.press('Enter');
  await expect(results(bob)).toHaveCount(0);
  const original = messageAt(bob, first);
  await expect(original).toBeFocused({ timeout: 10_000 });
  await expect(original).toBeInViewport();
  await expect(original).toHaveClass(/highlight/);
  await expect(original).toContainText(`the ancient zephyr${t} sighs`);
  // Its neighbours are loaded, the newest are not on screen: the view is detached.
  await expect(messageAt(bob, seqs[20])).toHaveCount(1);
  await expect(messageAt(bob, last)).toHaveCount(0);
  const latest = bob.page.getByRole('button', { name: /^Jump to latest/ });
  await expect(latest).toBeVisible();

  // Scrolling to the window's end brings the messages after it.
  await expect(messageAt(bob, seqs[80])).toHaveCount(0);
  await bob.log.evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  await expect(messageAt(bob, seqs[80])).toHaveCount(1);
  await expect(messageAt(bob, last)).toHaveCount(0);

  // What Ada writes now does not land in the window; the button counts it.
  await ada.send(`#${room}`, `live news ${t}`);
  await expect(ada.message(ada.username, `live news ${t}`)).toHaveCount(1);
  await expect(latest).toHaveText('Jump to latest (1 new message)');
  await expect(bob.message(ada.username, `live news ${t}`)).toHaveCount(0);

  await latest.click();
  await expect(latest).toHaveCount(0);
  const news = bob.message(ada.username, `live news ${t}`);
  await expect(news).toBeInViewport();
  await expect(messageAt(bob, last)).toHaveCount(1);
  // And what Bob writes shows at the end, as ever.
  await bob.send(`#${room}`, `back at the end ${t}`);
  await expect(bob.message(bob.username, `back at the end ${t}`)).toBeInViewport();

  // Results come 20 at a time, newest first; More results adds the next page.
  await search(bob, `in:${room} filler`);
  await expect(hits(bob)).toHaveCount(20);
  await expect(results(bob).getByRole('status')).toHaveText(`20 results for \u201cin:${room} filler\u201d, more below`);
  await expect(hits(bob).first()).toContainText('filler 299');
  await results(bob).getByRole('button', { name: 'More results' }).click();
  await expect(hits(bob)).toHaveCount(40);
  await expect(hits(bob).nth(20)).toContainText('filler 279');
});

test('a private room is searched by its members only; from: narrows to one person', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  await ada.createRoom(`hush-${t}`, { private: true });
  await ada.send(`#hush-${t}`, `confidential${t} plans`);
  await expect(ada.message(ada.username, `confidential${t} plans`)).toHaveCount(1);

  await search(bob, `confidential${t}`);
  await expect(hits(bob)).toHaveCount(0);
  await expect(results(bob).getByRole('status')).toHaveText(`No messages match \u201cconfidential${t}\u201d.`);

  await search(ada, `confidential${t}`);
  await expect(hits(ada)).toHaveCount(1);
  await expect(hits(ada)).toContainText(`#hush-${t}`);

  // Both write the same word in #general; from: keeps one person's. (The results
  // cover the room list until closed.)
  await searchField(ada).press('Escape');
  await expect(results(ada)).toHaveCount(0);
  await ada.roomButton('general').click();
  await ada.send('#general', `shared${t} by ada`);
  await bob.send('#general', `shared${t} by bob`);
  await expect(ada.message(bob.username, `shared${t} by bob`)).toHaveCount(1);
  await search(ada, `shared${t}`);
  await expect(hits(ada)).toHaveCount(2);
  // Newest first.
  await expect(hits(ada).first()).toContainText(`shared${t} by bob`);
  await search(ada, `from:${bob.username} shared${t}`);
  await expect(hits(ada)).toHaveCount(1);
  await expect(hits(ada)).toContainText(`Bob ${t}`);
  await expect(hits(ada).locator('mark')).toHaveText(`shared${t}`);
});

test('an edited message is found by its new text only, a deleted one not at all', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  await through(ada.page, 'general', [`original${t} wording`, `doomed${t} remark`, `kept${t} remark`], [
    { kind: 'edit', index: 0, body: `revised${t} wording` },
    { kind: 'delete', index: 1 },
  ]);

  await search(bob, `original${t}`);
  await expect(hits(bob)).toHaveCount(0);
  await search(bob, `revised${t}`);
  await expect(hits(bob)).toHaveCount(1);
  await expect(hits(bob).locator('mark')).toHaveText(`revised${t}`);
  await search(bob, `doomed${t}`);
  await expect(hits(bob)).toHaveCount(0);
  await search(bob, `remark kept${t}`);
  await expect(hits(bob)).toHaveCount(1);

  // Opening a result of the room on screen, among the messages loaded: straight to it.
  await hits(bob).click();
  const kept = bob.message(ada.username, `kept${t} remark`);
  await expect(kept).toBeFocused();
  await expect(bob.page.getByRole('button', { name: /^Jump to latest/ })).toHaveCount(0);
});

test('a refused query is said by the box; Ctrl+K and Escape; it fits a phone', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  await ada.composer('#general').focus();
  await ada.page.keyboard.press('Control+k');
  await expect(searchField(ada)).toBeFocused();
  await ada.page.keyboard.type('in:general');
  await ada.page.keyboard.press('Enter');
  const error = ada.page.locator('#search-error');
  await expect(error).toHaveAttribute('role', 'alert');
  await expect(error).not.toBeEmpty();
  await expect(searchField(ada)).toHaveAttribute('aria-invalid', 'true');
  await expect(searchField(ada)).toHaveAttribute('aria-describedby', 'search-error');
  // The tips say what a query is made of.
  await expect(results(ada).getByText('Search tips')).toBeVisible();
  await ada.page.keyboard.press('Escape');
  await expect(results(ada)).toHaveCount(0);
  await expect(searchField(ada)).toBeFocused();
  await expect(searchField(ada)).toHaveValue('in:general');

  // A person can still write `/` in the composer.
  await ada.composer('#general').fill('');
  await ada.composer('#general').press('/');
  await expect(ada.composer('#general')).toHaveValue('/');
  await ada.composer('#general').fill('');

  await ada.send('#general', `pocket${t} sized`);
  await expect(ada.message(ada.username, `pocket${t} sized`)).toHaveCount(1);
  await ada.page.setViewportSize({ width: 390, height: 844 });
  await search(ada, `pocket${t}`);
  await expect(hits(ada)).toHaveCount(1);
  for (const part of [searchField(ada), results(ada), hits(ada)]) {
    const box = await part.boundingBox();
    expect(box, 'on screen').not.toBeNull();
    if (box) {
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
  }
  const width = await ada.page.evaluate(() => document.documentElement.scrollWidth);
  expect(width, 'nothing sticks out sideways').toBeLessThanOrEqual(390);
  await hits(ada).click();
  await expect(ada.message(ada.username, `pocket${t} sized`)).toBeFocused();
});
