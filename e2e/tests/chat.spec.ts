// Confab in real browsers: several browser contexts are several people (or tabs) chatting
// through one production-mode server (the built binary serving the release client).
// Locators follow the client's DOM contract (accessible names and roles first).
// Everyone here is a guest (the server runs with --allow-guests): accounts, private
// rooms and direct messages are in accounts.spec.ts.
import { test, expect, type Browser, type Locator, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';
import { WatchedPage } from '../watched';

/** How soon a message must reach the other tabs after it is sent. */
const DELIVERY_MS = 2_000;
/** How long tabs may take to notice a restarted server and reconnect (backoff included). */
const RECONNECT_MS = 20_000;

let server: ConfabServer;

test.beforeAll(async () => {
  server = await ConfabServer.start(['--allow-guests']);
});

test.afterAll(async () => {
  await server?.stop();
});

/** A guest's username, as messages' `data-from` carries it: `~` and the lower-cased name. */
function guestHandle(name: string): string {
  return `~${name.toLowerCase()}`;
}

/** One person in one browser context, with what the page did that it should not have. */
class Tab extends WatchedPage {
  /** The sign-in screen's "Continue as guest" form. */
  get prompt(): Locator {
    return this.page.getByRole('form', { name: 'Continue as guest' });
  }
  get nameInput(): Locator {
    return this.page.getByLabel('Display name', { exact: true });
  }
  /** The name prompt's error. */
  get nameError(): Locator {
    return this.prompt.getByRole('alert');
  }
  get connection(): Locator {
    return this.page.getByTestId('connection');
  }
  get rooms(): Locator {
    return this.page.getByRole('navigation', { name: 'Rooms' });
  }
  /** The room's button; its name may carry more after the room, such as an unread hint. */
  roomButton(room: string): Locator {
    return this.rooms.getByRole('button', { name: new RegExp(`^#${room}(?![\\w-])`) });
  }
  get online(): Locator {
    return this.page.getByRole('list', { name: 'Online users' });
  }
  get log(): Locator {
    return this.page.getByRole('log', { name: 'Messages' });
  }
  get messages(): Locator {
    return this.log.getByTestId('message');
  }
  /** The message items sent by the guest called `name` that contain `text`. */
  message(name: string, text: string): Locator {
    return this.log
      .locator(`[data-testid="message"][data-from="${guestHandle(name)}"]`)
      .filter({ hasText: text });
  }
  get typing(): Locator {
    return this.page.getByTestId('typing');
  }
  get composerForm(): Locator {
    return this.page.getByRole('form', { name: 'Send a message' });
  }
  composer(room = 'general'): Locator {
    return this.page.getByLabel(`Message #${room}`);
  }

  async join(name: string): Promise<void> {
    await expect(this.prompt).toBeVisible();
    await this.nameInput.fill(name);
    await this.prompt.getByRole('button', { name: 'Join chat' }).click();
    await expect(this.prompt).toBeHidden();
    await expect(this.connection).toHaveAttribute('data-state', 'open');
    await expect(this.composer()).toBeVisible();
  }

  /** Types `text` into the composer of `room` and presses Enter; returns when Enter was pressed. */
  async send(text: string, room = 'general'): Promise<void> {
    const composer = this.composer(room);
    await composer.fill(text);
    await composer.press('Enter');
  }

  async isFocused(locator: Locator): Promise<boolean> {
    return locator.evaluate((el) => el === document.activeElement).catch(() => false);
  }

  /** Presses Tab until `locator` has the focus (unless it has it already). */
  async tabTo(locator: Locator, maxPresses = 40): Promise<void> {
    for (let i = 0; i <= maxPresses; i++) {
      if (await this.isFocused(locator)) return;
      await this.page.keyboard.press('Tab');
    }
    throw new Error(`${maxPresses} presses of Tab never reached ${locator}`);
  }
}

const crowd = new Crowd(Tab, { url: () => server.url, label: 'tab' });

async function joinAs(browser: Browser, name: string): Promise<Tab> {
  const tab = await crowd.arrive(browser);
  await tab.join(name);
  return tab;
}

/** Expects `text` from `from` to show in every tab's log within `timeout` of now. */
async function expectDelivered(receivers: Tab[], from: string, text: string, timeout = DELIVERY_MS): Promise<void> {
  await Promise.all(
    receivers.map(async (tab) => {
      await expect(tab.log).toContainText(text, { timeout });
      await expect(tab.message(from, text)).toHaveCount(1);
    }),
  );
}

test.afterEach(async () => {
  await crowd.closeAll();
});

test('three people see each other online', async ({ browser }) => {
  const names = ['grace', 'linus', 'margaret'];
  const people: Tab[] = [];
  for (const name of names) people.push(await joinAs(browser, name));

  for (const tab of people) {
    await expect(tab.page.getByRole('heading', { name: 'Online in #general' })).toBeVisible();
    for (const name of names) {
      await expect(tab.online.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
    }
  }
});

test('a message reaches the other two tabs within 2 s', async ({ browser }) => {
  const [alan, barbara, edsger] = [
    await joinAs(browser, 'alan'),
    await joinAs(browser, 'barbara'),
    await joinAs(browser, 'edsger'),
  ];
  // All three must be in the room before the message is sent.
  await expect(alan.online.getByRole('listitem')).toHaveCount(3);

  const text = `hello from alan ${Date.now()}`;
  await alan.send(text);
  await expectDelivered([barbara, edsger], 'alan', text);
  await expect(alan.message('alan', text)).toHaveCount(1);

  // A second message from the same sender is its own item, still marked as alan's.
  const again = `and again ${Date.now()}`;
  await alan.send(again);
  await expectDelivered([barbara, edsger, alan], 'alan', again);
});

test('the typing indicator shows in another tab while someone types', async ({ browser }) => {
  const ada = await joinAs(browser, 'ada');
  const ken = await joinAs(browser, 'ken');
  await expect(ada.online.getByRole('listitem')).toHaveCount(2);
  await expect(ken.typing).toHaveText('');

  await ada.composer().pressSequentially('Hello th', { delay: 50 });
  // A guest is marked as one wherever the name shows: anyone may call themselves Ada.
  await expect(ken.typing).toHaveText('ada (guest) is typing…');

  // The indicator ends when the message arrives (well before its 5 s expiry).
  await ada.composer().press('Enter');
  await expect(ken.message('ada', 'Hello th')).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(ken.message('ada', 'Hello th').locator('.from')).toHaveText('ada (guest)');
  await expect(ken.typing).toHaveText('', { timeout: 3_000 });
});

test('a message in a new room does not show in #general', async ({ browser }) => {
  const donald = await joinAs(browser, 'donald');
  const frances = await joinAs(browser, 'frances');
  await expect(donald.online.getByRole('listitem')).toHaveCount(2);

  const createForm = donald.page.getByRole('form', { name: 'Create a room' });
  await createForm.getByLabel('New room').fill('compilers');
  await createForm.getByRole('button', { name: 'Create' }).click();
  await expect(donald.roomButton('compilers')).toHaveAttribute('aria-current', 'page');
  await expect(donald.page.getByRole('heading', { name: 'Online in #compilers' })).toBeVisible();

  const secret = `only for #compilers ${Date.now()}`;
  await donald.send(secret, 'compilers');
  await expect(donald.message('donald', secret)).toHaveCount(1, { timeout: DELIVERY_MS });

  // Back in #general, a sentinel message proves frances's log is up to date; the
  // #compilers message must not be in it (nor in donald's view of #general).
  await donald.roomButton('general').click();
  await expect(donald.roomButton('general')).toHaveAttribute('aria-current', 'page');
  const sentinel = `back in general ${Date.now()}`;
  await donald.send(sentinel);
  await expectDelivered([frances], 'donald', sentinel);
  await expect(frances.log).not.toContainText(secret);
  await expect(donald.log).toContainText(sentinel);
  await expect(donald.log).not.toContainText(secret);
});

test('a room with unseen messages is marked unread until opened', async ({ browser }) => {
  const hedy = await joinAs(browser, 'hedy');
  const john = await joinAs(browser, 'john');
  await expect(hedy.online.getByRole('listitem')).toHaveCount(2);

  const createForm = hedy.page.getByRole('form', { name: 'Create a room' });
  await createForm.getByLabel('New room').fill('radio');
  await createForm.getByLabel('New room').press('Enter');
  await expect(hedy.roomButton('radio')).toHaveAttribute('aria-current', 'page');

  const text = `while hedy is away ${Date.now()}`;
  await john.send(text);
  await expect(hedy.roomButton('general')).toHaveAttribute('data-unread', 'true');

  await hedy.roomButton('general').click();
  await expect(hedy.message('john', text)).toHaveCount(1);
  await expect(hedy.roomButton('general')).not.toHaveAttribute('data-unread', 'true');
});

test('tabs reconnect by themselves after a server restart and chat again', async ({ browser }) => {
  const names = ['niklaus', 'radia', 'tim'];
  const people: Tab[] = [];
  for (const name of names) people.push(await joinAs(browser, name));
  const [niklaus, radia, tim] = people;
  await expect(niklaus.online.getByRole('listitem')).toHaveCount(3);
  const before = `before the restart ${Date.now()}`;
  await niklaus.send(before);
  await expectDelivered(people, 'niklaus', before);

  await server.stop();
  for (const tab of people) {
    await expect(tab.connection).not.toHaveAttribute('data-state', 'open');
  }

  await server.start();
  for (const tab of people) {
    await expect(tab.connection).toHaveAttribute('data-state', 'open', { timeout: RECONNECT_MS });
  }
  for (const tab of people) {
    for (const name of names) {
      await expect(tab.online.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
    }
  }

  const text = `after the restart ${Date.now()}`;
  await niklaus.send(text);
  await expectDelivered([radia, tim, niklaus], 'niklaus', text);
});

test('HTML in a message is shown as text, never run', async ({ browser }) => {
  const mallory = await joinAs(browser, 'mallory');
  const bob = await joinAs(browser, 'bob');
  await expect(mallory.online.getByRole('listitem')).toHaveCount(2);

  const payload = '<img src=x onerror=alert(1)>';
  await mallory.send(payload);
  await expectDelivered([bob, mallory], 'mallory', payload);
  for (const tab of [mallory, bob]) {
    await expect(tab.message('mallory', payload)).toContainText(payload);
    await expect(tab.log.locator('img')).toHaveCount(0);
  }
  // An injected image would fail to load and fire onerror a moment later.
  await bob.page.waitForTimeout(500);
  expect(bob.dialogs).toEqual([]);
  expect(mallory.dialogs).toEqual([]);
});

test('a name already taken (in another case) is refused and the prompt stays', async ({ browser }) => {
  const dennis = await joinAs(browser, 'Dennis');
  const other = await crowd.arrive(browser);

  await other.nameInput.fill('dennis');
  await other.prompt.getByRole('button', { name: 'Join chat' }).click();
  await expect(other.nameError).toBeVisible();
  await expect(other.nameError).toHaveText(/\S/);
  await expect(other.prompt).toBeVisible();
  await expect(other.nameInput).toBeVisible();
  await expect(other.composerForm).toHaveCount(0);
  // The refusal is the only problem shown: nothing else was asked before the name.
  await expect(other.page.getByRole('alert')).toHaveCount(1);

  // Only one of them is online; the refused tab can pick another name.
  await expect(dennis.online.getByRole('listitem')).toHaveCount(1);
  await other.join('Dennis R');
  await expect(dennis.online.getByRole('listitem').filter({ hasText: 'Dennis R' })).toHaveCount(1);
});

test('keyboard only: choose a name and send a message', async ({ browser }) => {
  const watcher = await joinAs(browser, 'watcher');
  const tab = await crowd.arrive(browser);
  const keyboard = tab.page.keyboard;

  await tab.tabTo(tab.nameInput);
  await keyboard.type('kbd');
  await keyboard.press('Enter');
  await expect(tab.prompt).toBeHidden();
  await expect(tab.connection).toHaveAttribute('data-state', 'open');

  await tab.tabTo(tab.composer());
  const text = `typed without a mouse ${Date.now()}`;
  await keyboard.type(text);
  await keyboard.press('Enter');
  await expectDelivered([watcher, tab], 'kbd', text);
});
