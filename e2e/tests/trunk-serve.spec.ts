// The README's dev flow as a newcomer meets it: the server with its defaults, `trunk
// serve` (the debug build of the client, where Yew checks more than in release, and
// trunk's proxy in front of the server), and people chatting through
// http://127.0.0.1:8080. The other specs use the release client; this one catches what
// only the debug build or the proxy shows. See devflow.ts for the two processes.
import { test, expect } from '@playwright/test';
import { Crowd } from '../crowd';
import { DevFlow, DEV_URL, START_TIMEOUT_MS } from '../devflow';
import { Person } from '../person';

const DELIVERY_MS = 2_000;

let flow: DevFlow | undefined;

test.beforeAll(async () => {
  test.setTimeout(START_TIMEOUT_MS + 30_000);
  flow = await DevFlow.start();
});

test.afterAll(async () => {
  await flow?.stop();
});

/** Tabs through trunk's proxy; a second tab of a browser context shares its cookie. */
const tabs = new Crowd(Person, { url: () => DEV_URL, label: 'tab' });

test.afterEach(async ({}, testInfo) => {
  if (flow && testInfo.status !== testInfo.expectedStatus) {
    await testInfo.attach('server and trunk output', { body: flow.logs(), contentType: 'text/plain' });
  }
  await tabs.closeAll();
});

test('two people, one in two tabs, chat through trunk serve and see each other online', async ({ browser }) => {
  const ada = await tabs.arrive(browser);
  await ada.signUp('ada', 'Ada');
  const bob = await tabs.arrive(browser);
  await bob.signUp('bob', 'Bob');
  // Same context, same session cookie: signed in without asking.
  const adaAgain = await tabs.openTab(ada.context);
  await adaAgain.expectInChat();

  const all = [ada, adaAgain, bob];
  for (const tab of all) {
    for (const name of ['Ada', 'Bob']) {
      await expect(tab.online.getByRole('listitem').filter({ hasText: name })).toHaveCount(1);
    }
    await expect(tab.online.getByRole('listitem')).toHaveCount(2);
  }

  const stamp = Date.now();
  const sent = [
    { tab: ada, from: 'ada', text: `from Ada's first tab ${stamp}` },
    { tab: adaAgain, from: 'ada', text: `from Ada's second tab ${stamp}` },
    { tab: bob, from: 'bob', text: `from Bob ${stamp}` },
  ];
  for (const { tab, text } of sent) await tab.send('#general', text);
  for (const tab of all) {
    for (const { from, text } of sent) {
      await expect(tab.message(from, text)).toHaveCount(1, { timeout: DELIVERY_MS });
    }
  }
});

test('a panic in the client tells the person and offers a reload that works', async ({ browser }) => {
  // The debug build panics on purpose when its address asks (web/src/crash.rs).
  const tab = await tabs.arrive(browser, { url: `${DEV_URL}?confab-test-panic` });
  const notice = tab.page.getByRole('alert').filter({ hasText: 'Something went wrong — reload the page.' });
  await expect(notice).toBeVisible();
  const reload = notice.getByRole('button', { name: 'Reload' });
  // The test's own panic is the only thing that went wrong; take it off the page's record.
  const logged = tab.consoleErrors.join('\n');
  expect(logged).toContain('panicked at');
  expect(logged).toContain('asked to by the page address');
  expect(tab.consoleErrors.filter((e) => !e.includes('panicked at')), logged).toEqual([]);
  expect(tab.pageErrors.filter((e) => !/unreachable/.test(e)), tab.pageErrors.join('\n')).toEqual([]);
  tab.consoleErrors.length = 0;
  tab.pageErrors.length = 0;

  await reload.click();
  await expect(tab.page).toHaveURL(/\/\?$/);
  await expect(notice).toHaveCount(0);
  await expect(tab.signInForm).toBeVisible();
});
