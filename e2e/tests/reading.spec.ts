// Where people left off (issue 16): unread and mention counts in the room list, read
// markers shared by every tab and device of a person, the "New messages" divider, the
// title's total, muting a room, mention autocomplete, and browser notifications while
// the tab is hidden. Each browser context is one person; a second page in it is a
// second tab of theirs.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { Person, tag } from '../person';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';

/** How soon a message, a marker or a room change must reach the other tabs and people. */
const DELIVERY_MS = 3_000;

let server: ConfabServer;

test.beforeAll(async () => {
  // Every browser here comes from 127.0.0.1: raise the per-address sign-up throttle.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '500']);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

test.afterEach(async () => {
  await crowd.closeAll();
});

/** Records every notification the page makes, and every permission request, around
 * the browser's own `Notification` (which still does the work). */
function recordNotifications(): void {
  const Real = window.Notification;
  const w = window as unknown as {
    shownNotifications: { title: string; body?: string; tag?: string }[];
    notificationObjects: Notification[];
    permissionRequests: number;
  };
  w.shownNotifications = [];
  w.notificationObjects = [];
  w.permissionRequests = 0;
  class Recorded extends Real {
    constructor(title: string, options?: NotificationOptions) {
      super(title, options);
      w.shownNotifications.push({ title, body: options?.body, tag: options?.tag });
      w.notificationObjects.push(this);
    }
    static get permission(): NotificationPermission {
      return Real.permission;
    }
    static requestPermission(): Promise<NotificationPermission> {
      w.permissionRequests += 1;
      return Real.requestPermission();
    }
  }
  window.Notification = Recorded as unknown as typeof Notification;
}

async function newContext(browser: Browser, notifications = false): Promise<BrowserContext> {
  const context = await browser.newContext();
  if (notifications) await context.grantPermissions(['notifications']);
  await context.addInitScript(recordNotifications);
  return context;
}

async function signedUp(browser: Browser, username: string, name: string, notifications = false): Promise<Person> {
  const person = await crowd.openTab(await newContext(browser, notifications));
  await person.signUp(username, name);
  return person;
}

/** A second tab of `person`: a page in the same context, so the same session. */
async function secondTab(person: Person): Promise<Person> {
  const tab = await crowd.openTab(person.context);
  tab.username = person.username;
  await tab.expectInChat();
  return tab;
}

/** Makes the page believe its tab is hidden (or shown again), as switching tabs does. */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    if (hidden) {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    } else {
      delete (document as { visibilityState?: unknown }).visibilityState;
      delete (document as { hidden?: unknown }).hidden;
    }
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

function shown(page: Page): Promise<{ title: string; body?: string; tag?: string }[]> {
  return page.evaluate(() => (window as unknown as { shownNotifications: [] }).shownNotifications);
}

async function axeProblems(person: Person): Promise<string[]> {
  const results = await new AxeBuilder({ page: person.page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('unread and mention counts show where a person is not looking, and reading in one tab clears every tab', async ({
  browser,
}) => {
  const t = tag();
  const ana = await signedUp(browser, `ana-${t}`, `Ana ${t}`);
  const ben = await signedUp(browser, `ben-${t}`, `Ben ${t}`);
  const ops = `ops-${t}`;
  await ana.createRoom(ops);
  // Ben joins #ops, then goes back to #general; a second tab of his opens there too.
  await ben.roomButton(ops).click();
  await expect(ben.composer(`#${ops}`)).toBeVisible();
  await ana.send(`#${ops}`, `before ${t}`);
  await expect(ben.message(ana.username, `before ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  // Seen for a moment, it is read.
  await expect(ben.roomButton(ops)).not.toHaveAttribute('data-unread', 'true');
  await ben.roomButton('general').click();
  const bensTab = await secondTab(ben);
  await expect(ben.page).toHaveTitle('Confab');

  await ana.send(`#${ops}`, `first news ${t}`);
  await ana.send(`#${ops}`, `@${ben.username} can you look? ${t}`);
  for (const tab of [ben, bensTab]) {
    const button = tab.roomButton(ops);
    await expect(button).toHaveAccessibleName(`#${ops} (2 unread, 1 mention)`, { timeout: DELIVERY_MS });
    await expect(button).toHaveAttribute('data-unread', 'true');
    await expect(button.locator('.unread .mentions')).toHaveText('@1');
    await expect(button.locator('.unread .count')).toHaveText('2');
    await expect(tab.page).toHaveTitle('(2) Confab');
  }
  await expect(ana.roomButton(ops)).not.toHaveAttribute('data-unread', 'true');
  await expect(await axeProblems(ben)).toEqual([]);

  // Ben reads #ops in his second tab: the divider is above the first new message, and
  // both tabs clear.
  await bensTab.roomButton(ops).click();
  const divider = bensTab.log.getByRole('separator', { name: 'New messages' });
  await expect(divider).toBeVisible();
  // The New messages divider's item, not a day's.
  const after = bensTab.log.locator('li:has([role="separator"][aria-label="New messages"]) + li');
  await expect(after).toHaveAttribute('data-testid', 'message');
  await expect(after).toContainText(`first news ${t}`);
  for (const tab of [ben, bensTab]) {
    await expect(tab.roomButton(ops)).toHaveAccessibleName(`#${ops}`, { timeout: DELIVERY_MS });
    await expect(tab.page).toHaveTitle('Confab');
  }
  await expect(await axeProblems(bensTab)).toEqual([]);
  // The divider stays while he reads on, and is gone when he comes back later.
  await ana.send(`#${ops}`, `more ${t}`);
  await expect(bensTab.message(ana.username, `more ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(divider).toBeVisible();
  await expect(bensTab.roomButton(ops)).toHaveAccessibleName(`#${ops}`);
  await bensTab.roomButton('general').click();
  await bensTab.roomButton(ops).click();
  await expect(bensTab.message(ana.username, `more ${t}`)).toHaveCount(1);
  await expect(divider).toHaveCount(0);

  // Read in the first tab too: a new message there, seen, clears the other tab.
  await bensTab.roomButton('general').click();
  await ana.send(`#${ops}`, `again ${t}`);
  await expect(bensTab.roomButton(ops)).toHaveAccessibleName(`#${ops} (1 unread)`, { timeout: DELIVERY_MS });
  await ben.roomButton(ops).click();
  await expect(bensTab.roomButton(ops)).toHaveAccessibleName(`#${ops}`, { timeout: DELIVERY_MS });
  await expect(bensTab.page).toHaveTitle('Confab');

  // Muted on one tab, muted on both: its count shows quietly and leaves the title.
  const mute = ben.page.getByRole('button', { name: 'Mute room' });
  await expect(mute).toHaveAttribute('aria-pressed', 'false');
  await mute.click();
  await expect(mute).toHaveAttribute('aria-pressed', 'true');
  await expect(bensTab.roomButton(ops)).toHaveAttribute('data-muted', 'true', { timeout: DELIVERY_MS });
  await ben.roomButton('general').click();
  await ana.send(`#${ops}`, `@${ben.username} quietly ${t}`);
  for (const tab of [ben, bensTab]) {
    const button = tab.roomButton(ops);
    await expect(button).toHaveAccessibleName(`#${ops} (1 unread, 1 mention, muted)`, { timeout: DELIVERY_MS });
    await expect(button.getByTestId('unread')).toHaveClass(/muted/);
    await expect(button).toHaveCSS('font-weight', '400');
    await expect(tab.page).toHaveTitle('Confab');
  }
  // And unmuted, it counts again.
  await ben.roomButton(ops).click();
  await expect(mute).toHaveAttribute('aria-pressed', 'true');
  await mute.click();
  await expect(bensTab.roomButton(ops)).not.toHaveAttribute('data-muted', 'true', { timeout: DELIVERY_MS });
});

test('a mention is typed with the keyboard alone, and notifies its reader while the tab is hidden', async ({ browser }) => {
  const t = tag();
  const ana = await signedUp(browser, `ana-${t}`, `Ana ${t}`);
  const ben = await signedUp(browser, `ben-${t}`, `Ben ${t}`, true);
  const bensTab = await secondTab(ben);
  // Nobody is asked for permission on load; Ana's browser has not given it, so she is
  // offered the button (in her account menu), which asks when clicked.
  await ana.openAccountMenu();
  const enable = ana.page.getByRole('button', { name: 'Enable notifications' });
  await expect(enable).toBeVisible();
  expect(await ana.page.evaluate(() => (window as unknown as { permissionRequests: number }).permissionRequests)).toBe(0);
  await enable.click();
  await expect
    .poll(() => ana.page.evaluate(() => (window as unknown as { permissionRequests: number }).permissionRequests))
    .toBe(1);
  await ana.page.keyboard.press('Escape');
  await expect(ana.accountMenu).toHaveAttribute('aria-expanded', 'false');
  // Ben's has given it: no button.
  await ben.openAccountMenu();
  await expect(ben.page.getByRole('button', { name: 'Enable notifications' })).toHaveCount(0);
  await ben.page.keyboard.press('Escape');

  const plans = `plans-${t}`;
  await ben.createRoom(plans);
  await ben.roomButton('general').click();

  // Ben's first tab goes to the background.
  await setHidden(ben.page, true);
  const composer = ana.composer('#general');
  await composer.click();
  await composer.pressSequentially(`hi @${ben.username.slice(0, 2)}`);
  const list = ana.page.getByRole('listbox', { name: 'People to mention' });
  await expect(list).toBeVisible();
  await expect(composer).toHaveAttribute('aria-expanded', 'true');
  const option = list.getByRole('option', { name: new RegExp(`@${ben.username}$`) });
  await expect(option).toBeVisible();
  // Move to Ben's option by keyboard, whatever else matches.
  for (let i = 0; i < 8 && (await option.getAttribute('aria-selected')) !== 'true'; i++) {
    await composer.press('ArrowDown');
  }
  await expect(option).toHaveAttribute('aria-selected', 'true');
  await expect(composer).toHaveAttribute('aria-activedescendant', (await option.getAttribute('id')) ?? '');
  await composer.press('Enter');
  await expect(list).toHaveCount(0);
  await expect(composer).toHaveAttribute('aria-expanded', 'false');
  await expect(composer).toHaveValue(`hi @${ben.username} `);
  // Escape closes a list opened again, and the text stays as typed.
  await composer.pressSequentially('and @b');
  await expect(list).toBeVisible();
  await composer.press('Escape');
  await expect(list).toHaveCount(0);
  await expect(composer).toHaveValue(`hi @${ben.username} and @b`);
  // With the list closed, Enter sends as always.
  await composer.fill(`hi @${ben.username} lunch?`);
  await composer.press('Shift+Enter');
  await composer.pressSequentially('second line');
  await composer.press('Enter');
  await expect(ana.message(ana.username, 'lunch?')).toHaveCount(1, { timeout: DELIVERY_MS });

  // The hidden tab shows a notification; the visible one does not.
  await expect.poll(() => shown(ben.page), { timeout: DELIVERY_MS }).toEqual([
    { title: `Ana ${t} in #general`, body: `hi @${ben.username} lunch?`, tag: 'confab-general' },
  ]);
  expect(await shown(bensTab.page)).toEqual([]);
  // Not for a message without a mention.
  await ana.send('#general', `no mention ${t}`);
  await expect(ben.message(ana.username, `no mention ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  expect(await shown(ben.page)).toHaveLength(1);

  // Clicking it brings Ben to the room it is about.
  await ben.roomButton(plans).click();
  await expect(ben.composer(`#${plans}`)).toBeVisible();
  await ben.page.evaluate(() =>
    (window as unknown as { notificationObjects: Notification[] }).notificationObjects[0].dispatchEvent(new Event('click')),
  );
  await expect(ben.composer('#general')).toBeVisible();
  await setHidden(ben.page, false);

  // A name typed out in full needs no completing: Enter sends.
  await ana.send('#general', `see you @${ben.username}`);
  await expect(ben.message(ana.username, `see you @${ben.username}`)).toHaveCount(1, { timeout: DELIVERY_MS });

  // A hidden tab does not read what arrives in the room it shows; shown again, it does.
  await expect(bensTab.page).toHaveTitle('Confab');
  await bensTab.roomButton(plans).click();
  await setHidden(ben.page, true);
  await ana.send('#general', `while away ${t}`);
  await expect(bensTab.roomButton('general')).toHaveAccessibleName('#general (1 unread)', { timeout: DELIVERY_MS });
  await ben.page.waitForTimeout(1_500);
  await expect(bensTab.roomButton('general')).toHaveAccessibleName('#general (1 unread)');
  await setHidden(ben.page, false);
  await expect(bensTab.roomButton('general')).toHaveAccessibleName('#general', { timeout: DELIVERY_MS });
});
