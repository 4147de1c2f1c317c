// Durable history in real browsers: messages written while the server is down are
// delivered when it returns, a reload shows the history, scrolling up loads older
// messages. Each browser context is one person; the server is the production binary.
import { test, expect, type Browser, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';
import { WatchedPage } from '../watched';

/** Tabs reconnect with backoff (at most 15 s between attempts). */
const RECONNECT_MS = 25_000;

let server: ConfabServer;

test.beforeAll(async () => {
  // Everyone here is a guest. The scroll-back test fills a room faster than the default
  // per-connection rate limit.
  server = await ConfabServer.start(['--allow-guests', '--rate-limit-burst', '1000']);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(WatchedPage, { url: () => server.url });

test.afterEach(async () => {
  await crowd.closeAll();
});

/** A page in a browser context of its own, on the server's page, watched until the test ends. */
async function newPage(browser: Browser): Promise<Page> {
  return (await crowd.arrive(browser)).page;
}

async function person(browser: Browser, name: string): Promise<Page> {
  const page = await newPage(browser);
  const guestForm = page.getByRole('form', { name: 'Continue as guest' });
  await guestForm.getByLabel('Display name', { exact: true }).fill(name);
  await guestForm.getByRole('button', { name: 'Join chat' }).click();
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'open');
  await expect(page.getByLabel('Message #general')).toBeVisible();
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  const composer = page.getByLabel('Message #general');
  await composer.fill(text);
  await composer.press('Enter');
}

const log = (page: Page) => page.getByRole('log', { name: 'Messages' });
const messageWith = (page: Page, text: string) =>
  log(page).getByTestId('message').filter({ has: page.getByText(text, { exact: true }) });

test('a message written while the server is down is delivered when it returns', async ({ browser }) => {
  const ada = await person(browser, 'ada-offline');
  const bob = await person(browser, 'bob-offline');

  await server.stop();
  await expect(ada.getByTestId('connection')).toHaveAttribute('data-state', 'offline', { timeout: RECONNECT_MS });
  const text = 'written while the server was down';
  await say(ada, text);
  const pending = log(ada).getByTestId('pending');
  await expect(pending).toContainText(text);
  await expect(pending).toContainText('sending…');

  await server.start();
  await expect(messageWith(bob, text)).toHaveCount(1, { timeout: RECONNECT_MS });
  await expect(messageWith(ada, text)).toHaveCount(1);
  await expect(log(ada).getByTestId('pending')).toHaveCount(0);
});

test('reloading a tab shows the history without asking for the name again', async ({ browser }) => {
  const ada = await person(browser, 'ada-reload');
  for (const text of ['first of three', 'second of three', 'third of three']) {
    await say(ada, text);
    await expect(messageWith(ada, text)).toHaveCount(1);
  }
  await ada.reload();
  for (const text of ['first of three', 'second of three', 'third of three']) {
    await expect(messageWith(ada, text)).toHaveCount(1);
  }
  await expect(ada.getByLabel('Display name', { exact: true })).toHaveCount(0);
});

test('scrolling up loads older messages and keeps the place', async ({ browser }) => {
  // A separate room, filled straight through the protocol (faster than typing 150).
  const room = 'scrollback';
  const loader = await newPage(browser);
  const total = 150;
  await loader.evaluate(
    async ({ url, room, total }) => {
      const ws = new WebSocket(url);
      const acked = new Set<string>();
      await new Promise<void>((resolve, reject) => {
        ws.onerror = () => reject(new Error('socket error'));
        ws.onopen = () => {
          // No session cookie in this context: the socket is a guest's.
          ws.send(JSON.stringify({ type: 'hello', protocol: 8, name: 'loader' }));
          ws.send(JSON.stringify({ type: 'create_room', room }));
          ws.send(JSON.stringify({ type: 'join', room }));
          for (let i = 0; i < total; i++) {
            ws.send(JSON.stringify({ type: 'send', room, body: `old message ${i}`, client_id: `load-${i}` }));
          }
        };
        ws.onmessage = (e) => {
          const msg = JSON.parse(e.data);
          if (msg.type === 'error') reject(new Error(JSON.stringify(msg)));
          if (msg.type === 'ack') acked.add(msg.client_id);
          if (acked.size === total) resolve();
        };
      });
      ws.close();
    },
    { url: server.url.replace(/^http/, 'ws').replace(/\/?$/, '/ws'), room, total },
  );

  const bob = await person(browser, 'bob-scroll');
  await bob.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: new RegExp(`^#${room}`) }).click();
  const messages = log(bob).getByTestId('message');
  await expect(messages).toHaveCount(100);
  await expect(messageWith(bob, 'old message 149')).toHaveCount(1);
  await expect(messageWith(bob, 'old message 0')).toHaveCount(0);

  // The oldest message on screen before scrolling stays where the reader sees it.
  const marker = messageWith(bob, 'old message 50');
  await log(bob).evaluate((el) => {
    el.scrollTop = 0;
  });
  await expect(messages).toHaveCount(total);
  await expect(messageWith(bob, 'old message 0')).toHaveCount(1);
  const { markerTop, logTop, logBottom } = await log(bob).evaluate((el) => {
    const m = [...el.querySelectorAll('[data-testid="message"]')].find((li) =>
      li.textContent?.includes('old message 50'),
    );
    const box = el.getBoundingClientRect();
    return { markerTop: m?.getBoundingClientRect().top ?? -1, logTop: box.top, logBottom: box.bottom };
  });
  expect(markerTop, 'the first message seen before loading is still in view').toBeGreaterThanOrEqual(logTop);
  expect(markerTop).toBeLessThan(logBottom);
  await expect(marker).toBeVisible();
});
