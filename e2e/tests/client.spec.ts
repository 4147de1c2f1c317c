// The client as people meet it (issue 13): every tab and every reload follows all of a
// person's rooms, unsent messages go out whatever room is open, the phone layout keeps
// the conversation on screen, the connection badge tells the truth, and the small
// things: closing a conversation, leaving a room one owns, drafts, focus, Escape, errors
// at their field, right-to-left text, the name a room will get. Accounts only (no
// guests); each browser context is one person, a second page in it is a second tab.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Browser, type BrowserContext, type Locator, type WebSocketRoute } from '@playwright/test';
import { Person, tag } from '../person';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';

/** How soon a message or a room change must reach the other people. */
const DELIVERY_MS = 2_000;
/** How long a tab may take to reconnect once the way to the server is open again
 * (the backoff is at most 15 s). */
const RECONNECT_MS = 20_000;
const PHONE = { width: 390, height: 760 };

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

async function signedUp(browser: Browser, name: string, viewport?: typeof PHONE): Promise<Person> {
  const person = await crowd.arrive(browser, { viewport });
  await person.signUp(name, name);
  return person;
}

/** A second tab of `person`: a page in the same context, so the same session cookie. */
async function secondTab(person: Person): Promise<Person> {
  const tab = await crowd.openTab(person.context);
  tab.username = person.username;
  await tab.expectInChat();
  return tab;
}

/** Reloads the page and waits until the chat is back. */
async function reload(person: Person): Promise<void> {
  await person.page.reload();
  await person.expectInChat();
}

/** Whether the room's button says new messages arrived there. */
async function expectUnread(button: Locator): Promise<void> {
  await expect(button).toHaveAttribute('data-unread', 'true', { timeout: DELIVERY_MS });
}

/** Puts a switch between the person's tabs and the server's socket (HTTP is untouched):
 * `cut()` closes the open sockets and refuses new ones, `restore()` lets them through. */
async function socketSwitch(context: BrowserContext) {
  let blocked = false;
  const open = new Set<WebSocketRoute>();
  await context.routeWebSocket(/\/ws$/, (ws) => {
    if (blocked) {
      ws.close({ code: 1011, reason: 'test: no way to the server' });
      return;
    }
    open.add(ws);
    ws.connectToServer();
    ws.onClose(() => open.delete(ws));
  });
  return {
    cut: async () => {
      blocked = true;
      await Promise.all([...open].map((ws) => ws.close({ code: 1011, reason: 'test: cut' })));
      open.clear();
    },
    restore: () => {
      blocked = false;
    },
  };
}

test('a reload, a second tab and an invitation follow every room the person belongs to', async ({ browser }) => {
  const t = tag();
  const dan = await signedUp(browser, `dan-${t}`);
  const eve = await signedUp(browser, `eve-${t}`);
  const ops = `ops-${t}`;
  await dan.createRoom(ops);
  await expect(eve.roomButton(ops)).toBeVisible({ timeout: DELIVERY_MS });
  await eve.roomButton(ops).click();
  await expect(eve.composer(`#${ops}`)).toBeVisible();

  // Dan goes back to #general and reloads; a second tab of his opens too.
  await dan.roomButton('general').click();
  await reload(dan);
  const dansTab = await secondTab(dan);
  const first = `are you there ${t}`;
  await eve.send(`#${ops}`, first);
  for (const tab of [dan, dansTab]) {
    await expect(tab.roomButton(ops)).not.toHaveClass(/not-joined/, { timeout: DELIVERY_MS });
    await expectUnread(tab.roomButton(ops));
  }
  // Read on one tab is read on both.
  await dan.roomButton(ops).click();
  await expect(dan.message(eve.username, first)).toHaveCount(1);
  await expect(dansTab.roomButton(ops)).not.toHaveAttribute('data-unread', 'true', { timeout: DELIVERY_MS });
  await dansTab.roomButton(ops).click();
  await expect(dansTab.message(eve.username, first)).toHaveCount(1);

  // A private room Eve is invited to is hers on every tab at once, without a click.
  await dan.createRoom(`plans-${t}`, { private: true });
  const invite = dan.page.getByRole('form', { name: `Invite to #plans-${t}` });
  await invite.getByLabel('Username to invite').fill(eve.username);
  await invite.getByRole('button', { name: 'Invite', exact: true }).click();
  const evesTab = await secondTab(eve);
  await expect(eve.roomButton(`plans-${t}`)).toBeVisible({ timeout: DELIVERY_MS });
  await expect(eve.roomButton(`plans-${t}`)).not.toHaveClass(/not-joined/, { timeout: DELIVERY_MS });
  await reload(eve);
  const secret = `friday it is ${t}`;
  await dan.send(`#plans-${t}`, secret);
  for (const tab of [eve, evesTab]) await expectUnread(tab.roomButton(`plans-${t}`));

  // Leaving on one tab is leaving on all of them, and a reload does not undo it.
  await dansTab.roomButton(ops).click();
  await dansTab.page.getByRole('button', { name: `Leave #${ops}` }).click();
  await expect(dan.roomButton(ops)).toHaveClass(/not-joined/, { timeout: DELIVERY_MS });
  await reload(dan);
  await eve.roomButton(ops).click();
  await eve.send(`#${ops}`, `gone? ${t}`);
  await expect(eve.message(eve.username, `gone? ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(dan.roomButton(ops)).toHaveClass(/not-joined/);
  await expect(dan.roomButton(ops)).not.toHaveAttribute('data-unread', 'true');
});

test('unsent messages go out on reconnect whatever room is open, and their room says so', async ({ browser }) => {
  const t = tag();
  const eve = await signedUp(browser, `eve-${t}`);
  const context = await browser.newContext();
  const link = await socketSwitch(context);
  const dan = await crowd.openTab(context);
  await dan.signUp(`dan-${t}`, `dan-${t}`);
  const design = `design-${t}`;
  await dan.createRoom(design);
  await eve.roomButton(design).click();

  await link.cut();
  await expect(dan.connection).not.toHaveAttribute('data-state', 'open', { timeout: DELIVERY_MS });
  const waiting = `mockups attached ${t}`;
  await dan.send(`#${design}`, waiting);
  await expect(dan.log.getByTestId('pending')).toContainText('sending…');
  await dan.roomButton('general').click();
  await expect(dan.roomButton(design)).toHaveAccessibleName(/1 unsent/);

  // A reload while the server is out of reach: the message waits, and #general says where.
  await dan.page.reload();
  await expect(dan.composer('#general')).toBeVisible();
  await expect(dan.roomButton(design)).toHaveAccessibleName(/1 unsent/);

  link.restore();
  await expect(dan.connection).toHaveAttribute('data-state', 'open', { timeout: RECONNECT_MS });
  await expect(eve.message(dan.username, waiting)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(dan.roomButton(design)).not.toHaveAccessibleName(/unsent/, { timeout: DELIVERY_MS });
  await expect(dan.composer('#general')).toBeVisible();
  await dan.roomButton(design).click();
  await expect(dan.message(dan.username, waiting)).toHaveCount(1);
  await expect(dan.log.getByTestId('pending')).toHaveCount(0);
});

test('at phone width the newest messages and the composer are on screen; rooms and people are drawers', async ({
  browser,
}) => {
  const t = tag();
  const dan = await signedUp(browser, `dan-${t}`);
  const busy = `busy-${t}`;
  await dan.createRoom(busy);
  for (let i = 1; i <= 120; i++) await dan.send(`#${busy}`, `line ${i} of the backlog ${t}`);
  await expect(dan.message(dan.username, `line 120 of the backlog ${t}`)).toHaveCount(1, { timeout: 15_000 });
  await expect(dan.log.getByTestId('pending')).toHaveCount(0, { timeout: 15_000 });

  const eve = await signedUp(browser, `eve-${t}`, PHONE);
  // The lists are drawers: closed, the conversation has the screen.
  await expect(eve.rooms).toBeHidden();
  await expect(eve.online).toBeHidden();
  const roomsToggle = eve.page.getByRole('button', { name: 'Rooms', exact: true });
  await roomsToggle.click();
  await expect(eve.rooms).toBeVisible();
  await expect(roomsToggle).toHaveAttribute('aria-expanded', 'true');
  await expect(await axeProblems(eve)).toEqual([]);
  await eve.roomButton(busy).click();
  await expect(eve.rooms).toBeHidden();
  await expect(eve.message(dan.username, `line 120 of the backlog ${t}`)).toBeInViewport();

  // Nothing below the fold: the page itself does not scroll, the composer is in view.
  const composer = eve.composer(`#${busy}`);
  await expect(composer).toBeInViewport({ ratio: 1 });
  const box = await composer.boundingBox();
  expect(box!.y + box!.height).toBeLessThanOrEqual(PHONE.height);
  const pageScrolls = await eve.page.evaluate(
    () => document.scrollingElement!.scrollHeight > window.innerHeight + 1,
  );
  expect(pageScrolls, 'the page itself does not scroll at phone width').toBe(false);

  // Scrolling up loads older messages, as on a desktop.
  const messages = eve.log.getByTestId('message');
  await expect(messages).toHaveCount(100);
  await eve.log.evaluate((el) => el.scrollTo({ top: 0 }));
  await expect(messages).toHaveCount(120, { timeout: DELIVERY_MS });
  await expect(eve.message(dan.username, `line 1 of the backlog ${t}`)).toHaveCount(1);

  // The people drawer; Escape closes it and the focus is back on its button.
  const peopleToggle = eve.page.getByRole('button', { name: /^People \(\d+ online\)$/ });
  await peopleToggle.click();
  await expect(eve.online).toBeVisible();
  await expect(eve.online.getByRole('listitem').filter({ hasText: dan.username })).toHaveCount(1);
  await eve.page.keyboard.press('Escape');
  await expect(eve.online).toBeHidden();
  await expect.poll(() => eve.isFocused(peopleToggle)).toBe(true);
});

test('a message written before the room has loaded shows as sending, and goes out', async ({ browser }) => {
  const t = tag();
  const eve = await signedUp(browser, `eve-${t}`);
  const context = await browser.newContext();
  // The server's `joined` for #general is held back: the room stays "joining".
  let holdJoined = true;
  await context.routeWebSocket(/\/ws$/, (ws) => {
    const toServer = ws.connectToServer();
    ws.onMessage((m) => toServer.send(m));
    toServer.onMessage((m) => {
      const frame = typeof m === 'string' ? JSON.parse(m) : null;
      if (holdJoined && frame?.type === 'joined' && frame.room === 'general') return;
      ws.send(m);
    });
  });
  const dan = await crowd.openTab(context);
  await expect(dan.signInForm).toBeVisible();
  await dan.page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await dan.signUpForm.getByLabel('Username', { exact: true }).fill(`dan-${t}`);
  await dan.signUpForm.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await dan.signUpForm.getByRole('button', { name: 'Create account' }).click();
  dan.username = `dan-${t}`;
  await expect(dan.log).toContainText('Joining #general');
  const early = `written early ${t}`;
  await dan.send('#general', early);
  await expect(dan.log.getByTestId('pending')).toContainText('sending…');
  // Once the room is joined (the next connection's join is let through) it goes out.
  holdJoined = false;
  await context.setOffline(true);
  await context.setOffline(false);
  await expect(eve.message(dan.username, early)).toHaveCount(1, { timeout: RECONNECT_MS });
  await expect(dan.log.getByTestId('pending')).toHaveCount(0, { timeout: DELIVERY_MS });
});

test('the badge says offline when the browser is, and when the server stops answering', async ({ browser }) => {
  const t = tag();
  const eve = await signedUp(browser, `eve-${t}`);
  const context = await browser.newContext();
  // A socket that stays open but over which the server's frames stop arriving: what a
  // dead network looks like to a page, long before TCP gives up.
  let frozen = false;
  await context.routeWebSocket(/\/ws$/, (ws) => {
    const toServer = ws.connectToServer();
    ws.onMessage((m) => toServer.send(m));
    toServer.onMessage((m) => {
      if (!frozen) ws.send(m);
    });
  });
  const dan = await crowd.openTab(context);
  await dan.signUp(`dan-${t}`, `dan-${t}`);

  await context.setOffline(true);
  await expect(dan.connection).toHaveAttribute('data-state', 'offline', { timeout: DELIVERY_MS });
  await expect(dan.connection).not.toHaveText('Connected');
  const meanwhile = `written offline ${t}`;
  await dan.send('#general', meanwhile);
  await expect(dan.log.getByTestId('pending')).toContainText('sending…');
  await context.setOffline(false);
  await expect(dan.connection).toHaveAttribute('data-state', 'open', { timeout: RECONNECT_MS });
  await expect(eve.message(dan.username, meanwhile)).toHaveCount(1, { timeout: DELIVERY_MS });

  // The server goes silent: within a ping and its timeout (10 s + 5 s) the badge knows.
  // Watched on every frame, not with expect's polling (up to a second apart): the socket
  // it then opens again reaches `open` after only a backoff delay, which a poll can miss.
  frozen = true;
  await dan.page.waitForFunction(
    () => document.querySelector('[data-testid="connection"]')?.getAttribute('data-state') !== 'open',
    null,
    { timeout: 20_000, polling: 'raf' },
  );
  frozen = false;
  await expect(dan.connection).toHaveAttribute('data-state', 'open', { timeout: RECONNECT_MS });
});

test('a closed conversation comes back with the next message, marked unread', async ({ browser }) => {
  const t = tag();
  const dan = await signedUp(browser, `dan-${t}`);
  const eve = await signedUp(browser, `eve-${t}`);
  await dan.online.getByRole('button', { name: `Message ${eve.username} (@${eve.username})` }).click();
  await dan.send(`@${eve.username}`, `hi ${t}`);
  await expect(eve.directButton(dan.username)).toBeVisible({ timeout: DELIVERY_MS });

  // Closing says what it does, and hides the conversation.
  const close = dan.page.getByRole('button', { name: `Close @${eve.username}` });
  await expect(close).toHaveAccessibleDescription(/until a new message arrives/);
  await close.click();
  await expect(dan.directButton(eve.username)).toHaveCount(0);
  await expect(dan.composer('#general')).toBeVisible();
  await reload(dan);
  await expect(dan.directButton(eve.username)).toHaveCount(0);

  await eve.directButton(dan.username).click();
  await eve.send(`@${dan.username}`, `back to you ${t}`);
  await expect(dan.directButton(eve.username)).toBeVisible({ timeout: DELIVERY_MS });
  await expectUnread(dan.directButton(eve.username));
});

test('the owner leaving a private room is asked first and hands it over', async ({ browser }) => {
  const t = tag();
  const dan = await signedUp(browser, `dan-${t}`);
  const eve = await signedUp(browser, `eve-${t}`);
  const plans = `plans-${t}`;
  await dan.createRoom(plans, { private: true });
  const invite = dan.page.getByRole('form', { name: `Invite to #${plans}` });
  await invite.getByLabel('Username to invite').fill(eve.username);
  await invite.getByRole('button', { name: 'Invite', exact: true }).click();
  await expect(eve.roomButton(plans)).toBeVisible({ timeout: DELIVERY_MS });

  // Inviting someone already there, or oneself, changes nothing and says so.
  for (const who of [eve.username, dan.username]) {
    await invite.getByLabel('Username to invite').fill(who);
    await invite.getByRole('button', { name: 'Invite', exact: true }).click();
    await expect(invite.getByRole('status')).toHaveText(/already a member of .*: nothing changed\./);
  }

  const leave = dan.page.getByRole('button', { name: `Leave #${plans}` });
  await leave.click();
  const question = dan.page.getByRole('group', { name: /^Leave #/ });
  await expect(question).toContainText(`You own it: ${eve.username} will manage it after you.`);
  await expect(await axeProblems(dan)).toEqual([]);
  // Escape is "no".
  await dan.page.keyboard.press('Escape');
  await expect(question).toHaveCount(0);
  await expect(dan.composer(`#${plans}`)).toBeVisible();
  await leave.click();
  await question.getByRole('button', { name: 'Yes, leave' }).click();
  await expect(dan.roomButton(plans)).toHaveCount(0);

  await eve.roomButton(plans).click();
  await expect(eve.page.getByRole('button', { name: 'Room settings' })).toBeVisible({ timeout: DELIVERY_MS });
});

test('drafts, focus, Escape, errors at their field, right-to-left text and the name a room will get', async ({
  browser,
}) => {
  const t = tag();
  const dan = await signedUp(browser, `dan-${t}`);
  // Signed up: the focus is in the composer.
  await expect.poll(() => dan.isFocused(dan.composer('#general'))).toBe(true);

  // The name a room will get shows before it is created; creating moves to it.
  const form = dan.createRoomForm;
  await form.getByLabel('New room').fill(`Q3 Plans ${t}`);
  await expect(form).toContainText(`Will be created as #q3-plans-${t}`);
  await form.getByRole('button', { name: 'Create' }).click();
  const room = `q3-plans-${t}`;
  await expect(dan.composer(`#${room}`)).toBeVisible();
  await expect.poll(() => dan.isFocused(dan.composer(`#${room}`))).toBe(true);

  // A refusal shows at the field, not in a banner, and goes when the person types again.
  await form.getByLabel('New room').fill(room);
  await form.getByRole('button', { name: 'Create' }).click();
  await expect(form.getByRole('alert')).toHaveText(`#${room} already exists`);
  await expect(form.getByLabel('New room')).toHaveAttribute('aria-invalid', 'true');
  await expect(dan.page.locator('.notice')).toHaveCount(0);
  await form.getByLabel('New room').fill('something-else');
  await expect(form.getByRole('alert')).toHaveCount(0);

  // Sent with the button, the focus comes back to the composer.
  await dan.composer(`#${room}`).fill(`with the button ${t}`);
  await dan.page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(dan.message(dan.username, `with the button ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect.poll(() => dan.isFocused(dan.composer(`#${room}`))).toBe(true);

  // Right-to-left text is laid out right to left.
  const hebrew = `שלום לכולם ${t}`;
  await dan.send(`#${room}`, hebrew);
  const body = dan.message(dan.username, hebrew).locator('.body');
  await expect(body).toHaveAttribute('dir', 'auto');
  expect(await body.evaluate((el) => getComputedStyle(el).direction)).toBe('rtl');

  // A draft per room, kept across switching rooms and a reload.
  await dan.composer(`#${room}`).fill(`half a thought ${t}`);
  await dan.roomButton('general').click();
  await expect.poll(() => dan.isFocused(dan.composer('#general')), 'choosing a room focuses its composer').toBe(true);
  await expect(dan.composer('#general')).toHaveValue('');
  await dan.roomButton(room).click();
  await expect(dan.composer(`#${room}`)).toHaveValue(`half a thought ${t}`);
  await dan.page.reload();
  await dan.expectInChat();
  await dan.roomButton(room).click();
  await expect(dan.composer(`#${room}`)).toHaveValue(`half a thought ${t}`);

  // Escape closes the delete confirmation, then the settings, and the focus returns.
  const settings = dan.page.getByRole('button', { name: 'Room settings' });
  await settings.click();
  await expect(await axeProblems(dan)).toEqual([]);
  const remove = dan.page.getByRole('button', { name: 'Delete room' });
  await remove.click();
  await expect(dan.page.getByRole('button', { name: 'Yes, delete' })).toBeVisible();
  await dan.page.keyboard.press('Escape');
  await expect(dan.page.getByRole('button', { name: 'Yes, delete' })).toHaveCount(0);
  await expect.poll(() => dan.isFocused(remove)).toBe(true);
  await dan.page.keyboard.press('Escape');
  await expect(remove).toHaveCount(0);
  await expect.poll(() => dan.isFocused(settings)).toBe(true);
});

test('the sign-in screen and the chat have no serious accessibility problems', async ({ browser }) => {
  const t = tag();
  const visitor = await crowd.arrive(browser);
  await expect(visitor.signInForm).toBeVisible();
  await expect(await axeProblems(visitor)).toEqual([]);
  await visitor.signUp(`ann-${t}`, `Ann ${t}`);
  await expect(await axeProblems(visitor)).toEqual([]);
});

/** axe's serious and critical findings on the page as it is now, one line each. */
async function axeProblems(person: Person): Promise<string[]> {
  const results = await new AxeBuilder({ page: person.page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
