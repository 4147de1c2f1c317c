// The picture at the top of the README, taken by a test so it shows the client as it is:
// three people with accounts, a private room with formatting, an image, reactions and a
// mention, a direct message waiting with its unread badge, seen by one of them at a
// desktop size. The test checks what the picture shows (so a broken UI fails here, not
// in a reader's eyes) and fails on any page error, like every spec.
//
// A normal run writes the picture to the test's output only, so `scripts/test.sh`
// leaves the tree clean; `scripts/screenshot.sh` sets CONFAB_UPDATE_SCREENSHOT=1 and the
// test also writes docs/screenshot.png.
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { test, expect, type Browser, type Locator, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Person } from '../person';
import { Crowd } from '../crowd';

/** How soon a message or a room change must reach the other people. */
const DELIVERY_MS = 2_000;
const DESKTOP = { width: 1280, height: 800 };
const ROOM = 'launch-plans';
const DOCS_PICTURE = path.resolve(__dirname, '../../docs/screenshot.png');

let server: ConfabServer;
const crowd = new Crowd(Person, { url: () => server.url, context: { viewport: DESKTOP }, label: 'person' });

test.beforeAll(async () => {
  // Accounts only, as a team would run it; every browser here comes from 127.0.0.1.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

async function signedUp(browser: Browser, username: string, displayName: string): Promise<Person> {
  const person = await crowd.arrive(browser);
  await person.signUp(username, displayName);
  return person;
}

/** A mock-up of a landing page, drawn in the page: something worth sharing in a room. */
async function mockup(page: Page): Promise<Buffer> {
  const base64 = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 320;
    const g = canvas.getContext('2d');
    if (!g) throw new Error('no 2d canvas');
    const sky = g.createLinearGradient(0, 0, 640, 320);
    sky.addColorStop(0, '#2f5bd3');
    sky.addColorStop(1, '#7ea2ff');
    g.fillStyle = sky;
    g.fillRect(0, 0, 640, 320);
    g.fillStyle = 'rgba(255, 255, 255, 0.92)';
    g.fillRect(48, 40, 300, 30);
    g.fillStyle = 'rgba(255, 255, 255, 0.6)';
    g.fillRect(48, 88, 380, 14);
    g.fillRect(48, 112, 340, 14);
    g.fillStyle = '#ffbf47';
    g.fillRect(48, 146, 150, 40);
    for (const [x, w] of [
      [48, 170],
      [236, 170],
      [424, 170],
    ]) {
      g.fillStyle = 'rgba(255, 255, 255, 0.85)';
      g.fillRect(x, 214, w, 76);
    }
    return canvas.toDataURL('image/png').split(',')[1];
  });
  return Buffer.from(base64, 'base64');
}

/** The message from `from` holding `text`, as `reader` sees it, once it has arrived. */
async function arrived(reader: Person, from: Person, text: string): Promise<Locator> {
  const message = reader.message(from.username, text);
  await expect(message).toHaveCount(1, { timeout: DELIVERY_MS });
  return message;
}

async function say(from: Person, text: string, readers: Person[]): Promise<void> {
  await from.send(`#${ROOM}`, text);
  for (const reader of [from, ...readers]) await arrived(reader, from, text.split('\n')[0].replace(/[*`]/g, ''));
}

/** Whoever sees `message` reacts to it with `emoji`, from the picker. */
async function react(message: Locator, emoji: string): Promise<void> {
  await message.hover();
  await message.getByRole('group', { name: 'Message actions' }).getByRole('button', { name: 'Add reaction', exact: true }).click();
  const picker = message.getByRole('dialog', { name: 'Add a reaction' });
  await picker.getByRole('button', { name: emoji, exact: true }).click();
  await expect(picker).toHaveCount(0);
}

function chip(message: Locator, emoji: string): Locator {
  return message.getByRole('group', { name: 'Reactions' }).getByRole('button', { name: new RegExp(`^${emoji} \\d+:`) });
}

test('the README picture: a private room, reactions, an image and a direct message waiting', async ({ browser }, testInfo) => {
  const maya = await signedUp(browser, 'maya', 'Maya Okafor');
  const jonas = await signedUp(browser, 'jonas', 'Jonas Berg');
  const priya = await signedUp(browser, 'priya', 'Priya Raman');
  for (const name of ['Jonas Berg', 'Priya Raman']) {
    await expect(maya.online.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
  }
  await priya.send('#general', 'Welcome to Confab, everyone 👋');
  await arrived(maya, priya, 'Welcome to Confab');

  // Maya makes the private room and invites the other two.
  await maya.createRoom(ROOM, { private: true });
  const invite = maya.page.getByRole('form', { name: `Invite to #${ROOM}` });
  for (const who of [jonas, priya]) {
    await invite.getByLabel('Username to invite').fill(who.username);
    await invite.getByRole('button', { name: 'Invite', exact: true }).click();
    await expect(invite.getByRole('status')).toHaveText(`Invited ${who.username}.`);
    await expect(who.roomButton(ROOM)).toBeVisible({ timeout: DELIVERY_MS });
    await who.roomButton(ROOM).click();
    await expect(who.composer(`#${ROOM}`)).toBeVisible();
  }

  const team = [maya, jonas, priya];
  const others = (p: Person) => team.filter((q) => q !== p);
  await say(maya, 'Morning! The **public beta** goes out on *Thursday* 🚀', others(maya));
  await say(priya, 'Load test on staging passed: `2.4 M msgs/s`, p99 under 6 ms.', others(priya));

  // Priya shares the new landing page with a word about it.
  await priya.page.getByLabel('Attach files').setInputFiles({
    name: 'landing-page.png',
    mimeType: 'image/png',
    buffer: await mockup(priya.page),
  });
  await say(priya, 'And here is the new landing page, @maya what do you think?', others(priya));

  const steps = 'Rollout, one node at a time:\n```\nscripts/release.sh\nsudo systemctl restart confab\n```';
  await say(maya, steps, others(maya));
  await say(jonas, 'Looks great. I will post in **#general** once it is live.', others(jonas));

  // Reactions: the launch date is popular, the landing page too.
  const launch = (p: Person) => p.message(maya.username, 'goes out on');
  await react(launch(jonas), '🎉');
  await expect(chip(launch(priya), '🎉')).toBeVisible({ timeout: DELIVERY_MS });
  await chip(launch(priya), '🎉').click();
  await react(launch(priya), '🚀');
  const landing = (p: Person) => p.message(priya.username, 'landing page');
  await react(landing(maya), '😍');
  await react(landing(jonas), '👍');

  // A direct message for Maya while she is in the room: it waits in her sidebar.
  await jonas.online.getByRole('button', { name: `Message Maya Okafor (@${maya.username})`, exact: true }).click();
  await expect(jonas.composer('@Maya Okafor')).toBeVisible();
  await jonas.send('@Maya Okafor', 'Got a minute after standup? Want to walk you through the rollback plan.');
  await expect(maya.directButton('Jonas Berg')).toHaveAttribute('data-unread', 'true', { timeout: DELIVERY_MS });

  // What the picture shows, checked. A reload first: nothing transient on screen (the
  // invite form's "Invited …" line, a hover), read state kept by the server.
  const page = maya.page;
  await page.reload();
  await maya.expectInChat();
  await maya.roomButton(ROOM).click();
  await expect(page.getByRole('heading', { name: `#${ROOM} (private)` })).toBeVisible();
  await expect(maya.roomButton(ROOM)).toHaveAttribute('aria-current', 'page');
  // Now that Maya is elsewhere, a word there leaves #general unread in her sidebar (the
  // welcome too, or not: whether Maya's page had the focus to read it is up to the browser).
  await priya.roomButton('general').click();
  await priya.send('#general', 'Standup moves to 10:30 tomorrow ☕');
  await arrived(priya, priya, 'Standup moves');
  await expect(maya.roomButton('general')).toHaveAccessibleName(/^#general \([12] unread\)$/, {
    timeout: DELIVERY_MS,
  });
  await expect(maya.directButton('Jonas Berg')).toHaveAccessibleName(/\(1 unread\)$/);
  await expect(maya.log.getByTestId('message')).toHaveCount(5);
  const launchSeen = await arrived(maya, maya, 'goes out on');
  await expect(launchSeen.locator('strong')).toHaveText('public beta');
  await expect(launchSeen.locator('em')).toHaveText('Thursday');
  await expect(chip(launchSeen, '🎉')).toHaveAccessibleName('🎉 2: Jonas Berg, Priya Raman');
  await expect(chip(launchSeen, '🚀')).toBeVisible();
  await expect((await arrived(maya, priya, 'Load test')).locator('code')).toHaveText('2.4 M msgs/s');
  await expect((await arrived(maya, maya, 'Rollout')).locator('pre')).toContainText('scripts/release.sh');
  const image = (await arrived(maya, priya, 'landing page')).getByRole('img', { name: 'landing-page.png' });
  await expect(image).toBeVisible();
  await expect
    .poll(() => image.evaluate((el) => el instanceof HTMLImageElement && el.complete && el.naturalWidth > 0))
    .toBe(true);
  await expect(page.getByRole('list', { name: 'Online users' }).getByRole('listitem')).toHaveCount(3);

  // Still: the newest message in view, no hover, no caret, fonts in.
  await page.mouse.move(DESKTOP.width / 2, 10);
  await page.evaluate(async () => {
    (document.activeElement as HTMLElement | null)?.blur();
    await document.fonts.ready;
  });
  await expect(maya.log.getByTestId('message').last()).toBeInViewport();
  const picture = testInfo.outputPath('screenshot.png');
  await page.screenshot({ path: picture, animations: 'disabled', caret: 'hide' });
  if (process.env.CONFAB_UPDATE_SCREENSHOT === '1') {
    copyFileSync(picture, DOCS_PICTURE);
  }
});
