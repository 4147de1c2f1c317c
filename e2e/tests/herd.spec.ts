// Restart under load: tabs dropped together by a server restart come back spread out
// in time (exponential backoff with full jitter), not as one thundering herd.
import { test, expect, type Page } from '@playwright/test';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';
import { WatchedPage } from '../watched';

const TABS = 12;

let server: ConfabServer;

test.beforeAll(async () => {
  // Everyone here is a guest: no accounts needed to measure reconnects.
  server = await ConfabServer.start(['--allow-guests']);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(WatchedPage, { url: () => server.url, label: 'tab' });

test.afterEach(async () => {
  await crowd.closeAll();
});

test('tabs reconnect after a restart spread out in time, each by itself', async ({ browser }) => {
  const tabs: Page[] = [];
  for (let i = 0; i < TABS; i++) {
    // One context per person: each tab keeps its own remembered name.
    const { page } = await crowd.arrive(browser);
    const guestForm = page.getByRole('form', { name: 'Continue as guest' });
    await guestForm.getByLabel('Display name', { exact: true }).fill(`herd${i}`);
    await guestForm.getByRole('button', { name: 'Join chat' }).click();
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'open');
    // Record, in the page, when the connection is open again after going offline.
    await page.evaluate(() => {
      const w = window as unknown as { reopenedAt?: number };
      const status = document.querySelector('[data-testid="connection"]');
      let wasOffline = false;
      new MutationObserver(() => {
        const state = status?.getAttribute('data-state');
        if (state === 'offline') wasOffline = true;
        if (state === 'open' && wasOffline && w.reopenedAt === undefined) w.reopenedAt = Date.now();
      }).observe(status as Node, { attributes: true });
    });
    tabs.push(page);
  }
  await server.restart();
  const back = Date.now();
  const reopened = await Promise.all(
    tabs.map(async (page) => {
      await expect
        .poll(() => page.evaluate(() => (window as unknown as { reopenedAt?: number }).reopenedAt), {
          timeout: 30_000,
        })
        .toBeDefined();
      return page.evaluate(() => (window as unknown as { reopenedAt: number }).reopenedAt);
    }),
  );
  const offsets = reopened.map((t) => t - back).sort((a, b) => a - b);
  const spread = offsets[offsets.length - 1] - offsets[0];
  console.log(`reconnects after the server was back (ms): ${offsets.join(', ')}; spread ${spread} ms`);
  // With full jitter, twelve independent delays landing within 20 ms of each other has a
  // probability far below one in a billion: this fails only if the jitter is gone.
  expect(spread).toBeGreaterThan(20);
});
