// Accounts in real browsers, against a server that lets nobody in without one (no
// --allow-guests): signing up and in, the HttpOnly session cookie, direct messages and
// private rooms seen only by their people. Each browser context is one person with its
// own cookie jar. Locators follow the client's DOM contract (accessible names first).
import { test, expect, type Browser } from '@playwright/test';
import { ConfabServer } from '../server';
import { PASSWORD, Person as BasePerson, tag } from '../person';
import { Crowd } from '../crowd';

/** How soon a message or a room change must reach the other people. */
const DELIVERY_MS = 2_000;
const SESSION_COOKIE = 'confab_session';

let server: ConfabServer;

test.beforeAll(async () => {
  // Accounts only (no --allow-guests): a socket without a session cookie is refused.
  // Every browser here comes from 127.0.0.1, so the per-address sign-in throttle (20 a
  // minute) would count all the tests' sign-ups together, and trip on a repeated run.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
});

test.afterAll(async () => {
  await server?.stop();
});

/** A person of this spec: the shared page object, and the session cookie as the browser holds it. */
class Person extends BasePerson {
  async sessionCookies() {
    return (await this.context.cookies(server.url)).filter((c) => c.name === SESSION_COOKIE);
  }

  /** On the sign-in screen, with no socket and nothing of the chat. */
  async expectSignedOut(): Promise<void> {
    await expect(this.signInForm).toBeVisible();
    await expect(this.connection).toHaveAttribute('data-state', 'idle');
    await expect(this.accountMenu).toHaveCount(0);
    await expect(this.rooms).toHaveCount(0);
    await expect(this.log).toHaveCount(0);
    // This server takes accounts only.
    await expect(this.guestForm).toHaveCount(0);
  }
}

const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

async function signedUp(browser: Browser, username: string, displayName: string): Promise<Person> {
  const person = await crowd.arrive(browser);
  await person.signUp(username, displayName);
  return person;
}

test.afterEach(async () => {
  await crowd.closeAll();
});

test('direct messages and a private room are seen only by their people, until invited', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  const eve = await signedUp(browser, `eve-${t}`, `Eve ${t}`);
  for (const name of [`Bob ${t}`, `Eve ${t}`]) {
    await expect(ada.online.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
  }

  // Ada makes a private room and says something in it.
  const plans = `plans-${t}`;
  const create = ada.page.getByRole('form', { name: 'Create a room' });
  await create.getByLabel('New room').fill(plans);
  await create.getByRole('checkbox', { name: 'Private' }).check();
  await create.getByRole('button', { name: 'Create' }).click();
  await expect(ada.roomButton(plans)).toHaveAttribute('aria-current', 'page');
  await expect(ada.roomButton(plans)).toHaveAccessibleName(new RegExp(`^#${plans} \\(private\\)`));
  await expect(ada.page.getByRole('heading', { name: `#${plans} (private)` })).toBeVisible();
  const privateRoom = await ada.roomButton(plans).getAttribute('data-room');
  expect(privateRoom, 'a private room has an id of the server\'s choosing').toMatch(/^_p/);
  const secret = `launch on friday ${t}`;
  await ada.send(`#${plans}`, secret);
  await expect(ada.message(ada.username, secret)).toHaveCount(1, { timeout: DELIVERY_MS });

  // Ada opens a direct conversation with Bob from #general's online list.
  await ada.roomButton('general').click();
  // Named by display name and username: display names need not be unique.
  await ada.online
    .getByRole('button', { name: `Message Bob ${t} (@${bob.username})`, exact: true })
    .click();
  await expect(ada.composer(`@Bob ${t}`)).toBeVisible();
  await expect(ada.page.getByRole('heading', { name: `Online in @Bob ${t}` })).toBeVisible();
  await expect(ada.directButton(`Bob ${t}`)).toHaveAttribute('aria-current', 'page');
  const direct = await ada.directButton(`Bob ${t}`).getAttribute('data-room');
  expect(direct, 'a direct conversation has an id of the server\'s choosing').toMatch(/^_d/);
  // (The locators Eve's checks use below find the conversation where it is shown.)
  await expect(ada.rooms.locator(`[data-room="${direct}"]`)).toHaveCount(1);
  await expect(ada.rooms.getByRole('button', { name: /^@/ })).toHaveCount(1);

  const fromAda = `hi bob, just us ${t}`;
  await ada.send(`@Bob ${t}`, fromAda);
  await expect(ada.message(ada.username, fromAda)).toHaveCount(1, { timeout: DELIVERY_MS });

  // Bob finds the conversation in his sidebar, reads Ada and answers.
  await expect(bob.directButton(`Ada ${t}`)).toBeVisible({ timeout: DELIVERY_MS });
  await expect(bob.directButton(`Ada ${t}`)).toHaveAttribute('data-room', direct!);
  await bob.directButton(`Ada ${t}`).click();
  await expect(bob.composer(`@Ada ${t}`)).toBeVisible();
  await expect(bob.message(ada.username, fromAda)).toHaveCount(1, { timeout: DELIVERY_MS });
  const fromBob = `hi ada, got it ${t}`;
  await bob.send(`@Ada ${t}`, fromBob);
  await expect(bob.message(bob.username, fromBob)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(ada.message(bob.username, fromBob)).toHaveCount(1, { timeout: DELIVERY_MS });
  // Each line once, in both views.
  await expect(ada.log.getByTestId('message')).toHaveCount(2);
  await expect(bob.log.getByTestId('message')).toHaveCount(2);
  // Bob is not a member of Ada's private room either.
  await expect(bob.roomButton(plans)).toHaveCount(0);
  await expect(bob.rooms.locator(`[data-room="${privateRoom}"]`)).toHaveCount(0);

  // A public room made now reaches everyone with their whole list of rooms: once Eve
  // sees it, her sidebar is up to date, and it must hold neither the conversation nor
  // the private room.
  const lobby = `lobby-${t}`;
  await create.getByLabel('New room').fill(lobby);
  await create.getByRole('button', { name: 'Create' }).click();
  await expect(eve.roomButton(lobby)).toBeVisible({ timeout: DELIVERY_MS });
  await expect(eve.directs).toHaveCount(0);
  await expect(eve.rooms.getByRole('button', { name: /^@/ })).toHaveCount(0);
  await expect(eve.rooms.locator(`[data-room="${direct}"]`)).toHaveCount(0);
  await expect(eve.roomButton(plans)).toHaveCount(0);
  await expect(eve.rooms.locator(`[data-room="${privateRoom}"]`)).toHaveCount(0);
  await expect(eve.rooms.getByRole('button', { name: /\(private\)/ })).toHaveCount(0);
  await expect(eve.log).not.toContainText(secret);
  await expect(eve.log).not.toContainText(fromAda);

  // Ada invites Eve (by username) to the private room.
  await ada.roomButton(plans).click();
  await expect(ada.page.getByRole('heading', { name: `#${plans} (private)` })).toBeVisible();
  const invite = ada.page.getByRole('form', { name: `Invite to #${plans}` });
  await invite.getByLabel('Username to invite').fill(eve.username);
  await invite.getByRole('button', { name: 'Invite', exact: true }).click();
  await expect(invite.getByRole('status')).toHaveText(`Invited ${eve.username}.`);
  await expect(invite.getByRole('alert')).toHaveCount(0);
  const members = ada.page.getByRole('list', { name: 'Members' });
  await expect(members.getByRole('listitem').filter({ hasText: `Eve ${t}` })).toHaveCount(1);

  // Now the room shows in Eve's sidebar, marked private, with what was said before.
  await expect(eve.roomButton(plans)).toBeVisible({ timeout: DELIVERY_MS });
  await expect(eve.roomButton(plans)).toHaveAccessibleName(new RegExp(`^#${plans} \\(private\\)`));
  await expect(eve.roomButton(plans)).toHaveAttribute('data-room', privateRoom!);
  await expect(eve.rooms.locator(`[data-room="${privateRoom}"]`)).toHaveCount(1);
  await expect(eve.rooms.getByRole('button', { name: /\(private\)/ })).toHaveCount(1);
  await eve.roomButton(plans).click();
  await expect(eve.page.getByRole('heading', { name: `#${plans} (private)` })).toBeVisible();
  await expect(eve.composer(`#${plans}`)).toBeVisible();
  await expect(eve.message(ada.username, secret)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(eve.page.getByRole('heading', { name: `Members of #${plans}` })).toBeVisible();

  // The conversation stays Ada's and Bob's: a last line in it (Ada, in the private
  // room, sees it marked unread), then a line in the private room, which Eve sees; the
  // conversation still is not in her sidebar.
  const another = `still between us ${t}`;
  await bob.send(`@Ada ${t}`, another);
  await expect(bob.message(bob.username, another)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(ada.directButton(`Bob ${t}`)).toHaveAttribute('data-unread', 'true', { timeout: DELIVERY_MS });
  await expect(ada.directButton(`Bob ${t}`)).toHaveAccessibleName(/\(\d+ unread\)$/);
  const welcome = `welcome eve ${t}`;
  await ada.send(`#${plans}`, welcome);
  await expect(eve.message(ada.username, welcome)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(eve.directs).toHaveCount(0);
  await expect(eve.rooms.getByRole('button', { name: /^@/ })).toHaveCount(0);
  await expect(eve.rooms.locator(`[data-room="${direct}"]`)).toHaveCount(0);
  await expect(eve.log).not.toContainText(fromAda);
  await expect(eve.log).not.toContainText(another);

  await ada.directButton(`Bob ${t}`).click();
  await expect(ada.message(bob.username, another)).toHaveCount(1);
  await expect(ada.directButton(`Bob ${t}`)).not.toHaveAttribute('data-unread', 'true');
});

test('the session cookie is HttpOnly and Strict, survives a reload, and signing out ends it', async ({
  browser,
}) => {
  const t = tag();
  const grace = await signedUp(browser, `grace-${t}`, `Grace ${t}`);

  // Page scripts cannot read the session; the browser holds it as the server set it.
  const visible = await grace.page.evaluate(() => document.cookie);
  expect(visible).not.toContain(SESSION_COOKIE);
  const [cookie, ...more] = await grace.sessionCookies();
  expect(more, 'one session cookie').toEqual([]);
  expect(cookie, `the browser holds ${SESSION_COOKIE}`).toBeDefined();
  expect(cookie.httpOnly).toBe(true);
  expect(cookie.sameSite).toBe('Strict');
  expect(cookie.path).toBe('/');
  expect(cookie.value).not.toBe('');

  // A reload keeps the session: straight back into the chat, as the same person.
  await grace.page.reload();
  await grace.expectInChat();
  await expect(grace.page.getByRole('banner')).toContainText(`Grace ${t}`);
  const hello = `back after a reload ${t}`;
  await grace.send('#general', hello);
  await expect(grace.message(grace.username, hello)).toHaveCount(1, { timeout: DELIVERY_MS });

  // Signing out shows the sign-in screen, clears the cookie, and a reload stays there.
  await grace.signOut();
  await grace.expectSignedOut();
  expect(await grace.sessionCookies()).toEqual([]);
  await grace.page.reload();
  await grace.expectSignedOut();

  // The ended session is over on the server too: its token, replayed in a fresh
  // browser, does not sign anyone in.
  const replayed = await browser.newContext();
  await replayed.addCookies([{ ...cookie }]);
  const thief = await crowd.openTab(replayed);
  await thief.expectSignedOut();
});

test('a wrong password shows the generic error in the form and does not sign in', async ({ browser }) => {
  const t = tag();
  const username = `linus-${t}`;
  const owner = await signedUp(browser, username, `Linus ${t}`);
  await owner.context.close();

  const other = await crowd.arrive(browser);
  await other.expectSignedOut();
  const error = other.signInForm.getByRole('alert');
  await expect(error).toHaveCount(0);

  await other.submitSignIn(username, 'not the password');
  await expect(error).toBeVisible();
  await expect(error).toHaveText(/wrong username or password/i);
  // Generic: neither field is singled out, and nothing else complains.
  await expect(other.signInForm.getByLabel('Username', { exact: true })).not.toHaveAttribute('aria-invalid', 'true');
  await expect(other.signInForm.getByLabel('Password', { exact: true })).not.toHaveAttribute('aria-invalid', 'true');
  await expect(other.page.getByRole('alert')).toHaveCount(1);
  const wrongPasswordText = (await error.textContent())?.trim();

  // Not signed in: still the sign-in screen, no session, and a reload agrees.
  await other.expectSignedOut();
  expect(await other.sessionCookies()).toEqual([]);
  await other.page.reload();
  await other.expectSignedOut();
  await expect(error).toHaveCount(0);

  // An unknown username gets the very same words: the error tells nobody which
  // usernames exist.
  await other.submitSignIn(`nobody-${t}`, PASSWORD);
  await expect(error).toBeVisible();
  await expect(error).toHaveText(wrongPasswordText!);
  await other.expectSignedOut();

  // The right password then works from the same form.
  await other.submitSignIn(username, PASSWORD);
  other.username = username;
  await other.expectInChat();
  await expect(other.page.getByRole('banner')).toContainText(`Linus ${t}`);
});
