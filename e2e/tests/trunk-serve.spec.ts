// The README's dev flow as a newcomer meets it: the server with its defaults, `trunk
// serve` (the debug build of the client, where Yew checks more than in release, and
// trunk's proxy in front of the server), and people chatting through
// http://127.0.0.1:8080. The other specs use the release client; this one catches what
// only the debug build or the proxy shows. See devflow.ts for the two processes.
import { test, expect, type BrowserContext } from '@playwright/test';
import { DevFlow, DEV_URL, START_TIMEOUT_MS } from '../devflow';
import { Person } from '../person';
import { closeAndExpectClean } from '../watched';

const DELIVERY_MS = 2_000;

let flow: DevFlow | undefined;

test.beforeAll(async () => {
  test.setTimeout(START_TIMEOUT_MS + 30_000);
  flow = await DevFlow.start();
});

test.afterAll(async () => {
  await flow?.stop();
});

let tabs: Person[] = [];

/** A tab of the person whose browser context this is (a second tab shares the cookie). */
async function openTab(context: BrowserContext, url = DEV_URL): Promise<Person> {
  const tab = new Person(context, await context.newPage());
  tabs.push(tab);
  await tab.page.goto(url);
  return tab;
}

test.afterEach(async ({}, testInfo) => {
  if (flow && testInfo.status !== testInfo.expectedStatus) {
    await testInfo.attach('server and trunk output', { body: flow.logs(), contentType: 'text/plain' });
  }
  const opened = tabs;
  tabs = [];
  await closeAndExpectClean(opened, 'tab');
});

test('two people, one in two tabs, chat through trunk serve and see each other online', async ({ browser }) => {
  const ada = await openTab(await browser.newContext());
  await ada.signUp('ada', 'Ada');
  const bob = await openTab(await browser.newContext());
  await bob.signUp('bob', 'Bob');
  // Same context, same session cookie: signed in without asking.
  const adaAgain = await openTab(ada.context);
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
  const tab = await openTab(await browser.newContext(), `${DEV_URL}?confab-test-panic`);
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
