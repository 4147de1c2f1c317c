// What people do to messages once written, in real browsers: edit, delete, reply (and
// jump to what a reply answers, loading older history when it is not on screen), react,
// and links to one message. Two people with accounts, each in a browser context of
// their own, and a second tab of one of them; the server is the production binary.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Browser, type Locator, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Person, tag } from '../person';
import { Crowd } from '../crowd';

/** How soon a change must reach the other tabs. */
const DELIVERY_MS = 2_000;

let server: ConfabServer;

test.beforeAll(async () => {
  // Every browser here comes from 127.0.0.1: the per-address sign-in throttle would count
  // every sign-up of the spec together. The deep-history test fills a room at once.
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

/** Another tab of the same person (same cookies), in the chat. */
async function secondTab(of: Person, hash = ''): Promise<Person> {
  const tab = await crowd.openTab(of.context, server.url + hash);
  tab.username = of.username;
  await expect(tab.connection).toHaveAttribute('data-state', 'open');
  return tab;
}

/** The message with this `seq`, whatever it shows now (edited, deleted). */
function messageAt(p: Person, seq: string): Locator {
  return p.log.locator(`[data-testid="message"][data-seq="${seq}"]`);
}

async function seqOf(message: Locator): Promise<string> {
  const seq = await message.getAttribute('data-seq');
  expect(seq).toMatch(/^\d+$/);
  return seq ?? '';
}

/** The button `name` of a message's actions (they show on hover and on focus). */
async function action(message: Locator, name: string): Promise<Locator> {
  await message.hover();
  const button = message.getByRole('group', { name: 'Message actions' }).getByRole('button', { name, exact: true });
  await expect(button).toBeVisible();
  return button;
}

function chip(message: Locator, emoji: string): Locator {
  return message.getByRole('group', { name: 'Reactions' }).getByRole('button', { name: new RegExp(`^${emoji} \\d+:`) });
}

/** Fills a room through the protocol, as `p` (its session cookie), faster than typing:
 * `count` messages, then optionally a reply to the first. Returns the first's seq. */
async function fill(p: Page, room: string, count: number, reply?: string): Promise<number> {
  return p.evaluate(
    async ({ url, room, count, reply }) => {
      const ws = new WebSocket(url);
      const seqs = new Map<string, number>();
      const total = count + (reply ? 1 : 0);
      const first = await new Promise<number>((resolve, reject) => {
        ws.onerror = () => reject(new Error('socket error'));
        ws.onopen = () => {
          ws.send(JSON.stringify({ type: 'hello', protocol: 8 }));
          ws.send(JSON.stringify({ type: 'join', room }));
          for (let i = 0; i < count; i++) {
            const body = i === 0 ? 'the very first message' : `filler ${i}`;
            ws.send(JSON.stringify({ type: 'send', room, body, client_id: `fill-${i}` }));
          }
        };
        ws.onmessage = (e) => {
          const msg = JSON.parse(e.data);
          if (msg.type === 'error') reject(new Error(JSON.stringify(msg)));
          if (msg.type !== 'ack') return;
          seqs.set(msg.client_id, msg.seq);
          if (seqs.size === count && reply) {
            const reply_to = seqs.get('fill-0');
            ws.send(JSON.stringify({ type: 'send', room, body: reply, client_id: 'fill-reply', reply_to }));
          }
          if (seqs.size === total) resolve(seqs.get('fill-0') ?? 0);
        };
      });
      ws.close();
      return first;
    },
    { url: server.url.replace(/^http/, 'ws').replace(/\/?$/, '/ws'), room, count, reply },
  );
}

test('an edit and a deletion reach everyone, and only the author may make them', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  const ada2 = await secondTab(ada);

  await ada.send('#general', `first draft ${t}`);
  await expect(ada.message(ada.username, `first draft ${t}`)).toHaveCount(1);
  const seq = await seqOf(ada.message(ada.username, `first draft ${t}`));
  const mine = messageAt(ada, seq);
  await expect(ada.page.getByRole('separator', { name: 'Today' })).toBeVisible();

  // Bob may reply and react, not edit or delete what Ada wrote.
  const hers = messageAt(bob, seq);
  await expect(hers).toContainText(`first draft ${t}`);
  await action(hers, 'Reply');
  await expect(hers.getByRole('button', { name: 'Edit', exact: true })).toHaveCount(0);
  await expect(hers.getByRole('button', { name: 'Delete', exact: true })).toHaveCount(0);

  // Ada edits in place: the field holds the text; Escape cancels, Enter saves.
  await (await action(mine, 'Edit')).click();
  const field = mine.getByLabel('Edit message', { exact: true });
  await expect(field).toBeFocused();
  await expect(field).toHaveValue(`first draft ${t}`);
  await field.press('Escape');
  await expect(field).toHaveCount(0);
  await expect(mine.getByRole('button', { name: 'Edit', exact: true })).toBeFocused();
  await mine.getByRole('button', { name: 'Edit', exact: true }).click();
  await mine.getByLabel('Edit message', { exact: true }).fill(`final text ${t}`);
  await mine.getByLabel('Edit message', { exact: true }).press('Enter');
  for (const p of [ada, ada2, bob]) {
    const m = messageAt(p, seq);
    await expect(m.locator('.body')).toHaveText(`final text ${t}`, { timeout: DELIVERY_MS });
    await expect(m.getByText('(edited)', { exact: true })).toHaveAttribute('title', /^Edited /);
  }

  // Ada deletes it, after saying yes: a tombstone everywhere, the text gone.
  await (await action(mine, 'Delete')).click();
  const confirm = mine.getByRole('group', { name: 'Delete this message for everyone?' });
  await expect(confirm.getByRole('button', { name: 'Cancel' })).toBeFocused();
  await confirm.getByRole('button', { name: 'Yes, delete' }).click();
  for (const p of [ada, ada2, bob]) {
    const m = messageAt(p, seq);
    await expect(m.getByText('message deleted', { exact: true })).toBeVisible({ timeout: DELIVERY_MS });
    await expect(m).not.toContainText(`final text ${t}`);
    await expect(m.getByRole('group', { name: 'Message actions' })).toHaveCount(0);
  }
});

test('a reply quotes what it answers, and the quote brings the original back', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);

  await bob.send('#general', `a question ${t}?`);
  const question = ada.message(bob.username, `a question ${t}?`);
  await expect(question).toHaveCount(1);
  const questionSeq = await seqOf(question);

  await (await action(question, 'Reply')).click();
  const composer = ada.composer('#general');
  await expect(composer).toBeFocused();
  const form = ada.page.getByRole('form', { name: 'Send a message' });
  await expect(form.getByText(`Replying to Bob ${t}`)).toBeVisible();
  // Escape forgets whom it answers; Reply again, and this time it is sent.
  await composer.press('Escape');
  await expect(form.getByText(`Replying to Bob ${t}`)).toHaveCount(0);
  await (await action(question, 'Reply')).click();
  await ada.send('#general', `the answer ${t}`);
  await expect(form.getByText(/^Replying to/)).toHaveCount(0);

  for (const p of [ada, bob]) {
    const reply = p.message(ada.username, `the answer ${t}`);
    const quote = reply.getByRole('button', { name: `In reply to Bob ${t}: a question ${t}?` });
    await expect(quote).toBeVisible({ timeout: DELIVERY_MS });
  }
  // Bob scrolls away, then follows the quote: the question is focused and flashes.
  await bob.log.evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  await bob.message(ada.username, `the answer ${t}`).getByRole('button', { name: /^In reply to/ }).click();
  const original = messageAt(bob, questionSeq);
  await expect(original).toBeFocused();
  await expect(original).toHaveClass(/highlight/);
  await expect(original).toBeInViewport();

  // The question is deleted: the quote says so, from Bob's own copy at once.
  await (await action(original, 'Delete')).click();
  await original.getByRole('button', { name: 'Yes, delete' }).click();
  for (const p of [ada, bob]) {
    await expect(
      p.message(ada.username, `the answer ${t}`).getByRole('button', { name: `In reply to Bob ${t}: message deleted` }),
    ).toBeVisible({ timeout: DELIVERY_MS });
  }
});

test('reactions toggle, count, say who, and the picker works from the keyboard alone', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  const ada2 = await secondTab(ada);

  await ada.send('#general', `react to this ${t}`);
  const atAda = ada.message(ada.username, `react to this ${t}`);
  await expect(atAda).toHaveCount(1);
  const seq = await seqOf(atAda);
  const atBob = messageAt(bob, seq);

  // Bob adds a thumbs up with the mouse.
  await (await action(atBob, 'Add reaction')).click();
  const picker = atBob.getByRole('dialog', { name: 'Add a reaction' });
  await picker.getByRole('button', { name: '\u{1F44D}', exact: true }).click();
  await expect(picker).toHaveCount(0);
  await expect(chip(atBob, '\u{1F44D}')).toHaveAttribute('aria-pressed', 'true', { timeout: DELIVERY_MS });
  await expect(chip(atAda, '\u{1F44D}')).toHaveAttribute('aria-pressed', 'false', { timeout: DELIVERY_MS });
  await expect(chip(atAda, '\u{1F44D}')).toHaveAccessibleName(`\u{1F44D} 1: Bob ${t}`);

  // Ada presses the chip: two, hers pressed in both her tabs; the names in order.
  await chip(atAda, '\u{1F44D}').click();
  for (const m of [atAda, messageAt(ada2, seq)]) {
    await expect(chip(m, '\u{1F44D}')).toHaveAccessibleName(`\u{1F44D} 2: Bob ${t}, Ada ${t}`, {
      timeout: DELIVERY_MS,
    });
    await expect(chip(m, '\u{1F44D}')).toHaveAttribute('aria-pressed', 'true');
  }
  await expect(chip(atBob, '\u{1F44D}')).toHaveAttribute('data-who', `Bob ${t}, Ada ${t}`);
  // Bob takes his back.
  await chip(atBob, '\u{1F44D}').click();
  await expect(chip(atAda, '\u{1F44D}')).toHaveAccessibleName(`\u{1F44D} 1: Ada ${t}`, { timeout: DELIVERY_MS });
  await expect(chip(atBob, '\u{1F44D}')).toHaveAttribute('aria-pressed', 'false');

  // Ada, keyboard only: Tab reaches the message, then its actions; the button opens the
  // picker on its first emoji; arrows move in it.
  await ada.page.mouse.move(0, 0);
  await ada.composer('#general').focus();
  const add = atAda.getByRole('button', { name: 'Add reaction', exact: true });
  await expect(add).toBeHidden();
  await atAda.focus();
  await tabTo(ada.page, add);
  await ada.page.keyboard.press('Enter');
  const adaPicker = atAda.getByRole('dialog', { name: 'Add a reaction' });
  await expect(adaPicker.getByRole('button', { name: '\u{1F44D}', exact: true })).toBeFocused();
  await ada.page.keyboard.press('ArrowRight');
  await ada.page.keyboard.press('ArrowDown');
  // Second row, second column: the ninth of the grid.
  await expect(adaPicker.getByRole('button', { name: '\u{1F621}', exact: true })).toBeFocused();
  await ada.page.keyboard.press('Escape');
  await expect(adaPicker).toHaveCount(0);
  await expect(add).toBeFocused();
  await ada.page.keyboard.press('Enter');
  await ada.page.keyboard.press('ArrowRight');
  await ada.page.keyboard.press('Enter');
  await expect(chip(atBob, '\u{1F44E}')).toHaveAccessibleName(`\u{1F44E} 1: Ada ${t}`, { timeout: DELIVERY_MS });
  await expect(add).toBeFocused();

  // Any one emoji can be typed; anything else is refused with why.
  await ada.page.keyboard.press('Enter');
  await ada.page.keyboard.press('Tab');
  for (let i = 0; i < 15; i++) await ada.page.keyboard.press('Tab');
  const other = adaPicker.getByLabel('Any emoji', { exact: true });
  await expect(other).toBeFocused();
  await ada.page.keyboard.type('ok');
  await ada.page.keyboard.press('Enter');
  await expect(adaPicker.getByRole('alert')).toHaveText('a reaction is one emoji');
  await expect(other).toHaveAttribute('aria-invalid', 'true');
  await other.fill('\u{1F980}');
  await ada.page.keyboard.press('Enter');
  await expect(chip(atBob, '\u{1F980}')).toHaveAccessibleName(`\u{1F980} 1: Ada ${t}`, { timeout: DELIVERY_MS });

  // Chips, a reply's quote, an open picker and an edit in progress, all at once: nothing
  // serious for axe.
  await bob.send('#general', `and a reply ${t}`);
  await (await action(atBob, 'Reply')).click();
  await bob.send('#general', `replying ${t}`);
  await expect(bob.message(bob.username, `replying ${t}`).getByRole('button', { name: /^In reply to/ })).toBeVisible();
  await (await action(atBob, 'Add reaction')).click();
  const own = bob.message(bob.username, `and a reply ${t}`);
  await (await action(messageAt(bob, await seqOf(own)), 'Edit')).click();
  await expect(bob.page.getByLabel('Edit message', { exact: true })).toBeVisible();
  await expect(await axeProblems(bob.page)).toEqual([]);
});

/** Presses Tab until `target` has the focus (a few times at most). */
async function tabTo(page: Page, target: Locator): Promise<void> {
  for (let i = 0; i < 8; i++) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press('Tab');
  }
  await expect(target).toBeFocused();
}

/** axe's serious and critical findings on the page as it is now, one line each. */
async function axeProblems(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('a link to a message opens at it, loading older history; so does a quote of an old one', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  const room = `deep-${t}`;
  await ada.createRoom(room);
  // More than a page of history (100) after the first message, then a reply to it.
  const first = await fill(ada.page, room, 130, `back to the start ${t}`);

  // Bob joins: the reply is on screen, the message it answers is not loaded.
  await bob.roomButton(room).click();
  await expect(bob.composer(`#${room}`)).toBeVisible();
  const reply = bob.message(ada.username, `back to the start ${t}`);
  await expect(reply).toHaveCount(1);
  await expect(messageAt(bob, String(first))).toHaveCount(0);
  await reply.getByRole('button', { name: `In reply to Ada ${t}: the very first message` }).click();
  const original = messageAt(bob, String(first));
  await expect(original).toBeFocused({ timeout: 10_000 });
  await expect(original).toBeInViewport();
  await expect(original).toContainText('the very first message');

  // Copy link puts the message's address on the clipboard.
  await bob.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  await (await action(original, 'Copy link')).click();
  await expect(original.getByRole('status')).toHaveText('Link copied');
  const link = await bob.page.evaluate(() => navigator.clipboard.readText());
  expect(link).toBe(`${server.url.replace(/\/$/, '')}/#${room}/${first}`);

  // The link opened in a new tab (the room not on screen there) lands on the message.
  const bob2 = await secondTab(bob, `#${room}/${first}`);
  await expect(bob2.composer(`#${room}`)).toBeVisible();
  const linked = messageAt(bob2, String(first));
  await expect(linked).toBeFocused({ timeout: 10_000 });
  await expect(linked).toBeInViewport();

  // Following a link in the page (its time) works too, and one to nothing says so.
  await bob2.page.evaluate(() => {
    location.hash = '#general/999999';
  });
  await expect(bob2.page.getByRole('alert').filter({ hasText: 'That message is not in #general' })).toBeVisible();
});
