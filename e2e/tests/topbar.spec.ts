// The top bar's layout in a real browser, as the person who sees the most of it: an
// administrator with a long display name on an invite-only server (Administration,
// Invite people and the account menu all show). At desktop widths its buttons keep one
// line; at every width, phone included, the admin page opens under the bar (never over a
// wrapped line of it) and no wider than the screen, and the account menu hangs under
// the bar and works by keyboard. Each size is photographed, admin page closed and open,
// into the test's output folder, to look at.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Locator } from '@playwright/test';
import { ConfabServer } from '../server';
import { PASSWORD, Person } from '../person';
import { closeAndExpectClean } from '../watched';

const SIZES = [
  { name: '1280x800', width: 1280, height: 800, oneLine: true },
  { name: '1024x768', width: 1024, height: 768, oneLine: true },
  { name: '390x844', width: 390, height: 844, oneLine: false },
];

let server: ConfabServer;
let people: Person[] = [];

test.beforeAll(async () => {
  server = await ConfabServer.start(['--sign-up', 'invite', '--sign-in-per-ip-per-min', '200']);
  await server.admin(['create', 'root', '--display-name', 'Alexandra Administrator'], `${PASSWORD}\n`);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  const opened = people;
  people = [];
  await closeAndExpectClean(opened, 'person');
});

async function box(locator: Locator): Promise<{ x: number; y: number; width: number; height: number }> {
  const found = await locator.boundingBox();
  expect(found, `${locator} is laid out`).not.toBeNull();
  return found!;
}

for (const size of SIZES) {
  test(`at ${size.name} the admin page opens under the top bar${size.oneLine ? ', which keeps one line' : ''}`, async ({
    browser,
  }) => {
    const context = await browser.newContext({ viewport: { width: size.width, height: size.height } });
    const admin = new Person(context, await context.newPage());
    people.push(admin);
    await admin.page.goto(server.url);
    await admin.submitSignIn('root', PASSWORD);
    await admin.expectInChat();
    const page = admin.page;
    const bar = page.getByRole('banner');
    const toggle = bar.getByRole('button', { name: 'Administration', exact: true });
    await expect(bar.getByRole('button', { name: 'Invite people', exact: true })).toBeVisible();
    await expect(admin.accountMenu).toContainText('Alexandra Administrator');
    await page.screenshot({ path: test.info().outputPath(`topbar-${size.name}-closed.png`) });

    if (size.oneLine) {
      // Every button of the bar (the search's, Administration, Invite people, the
      // account menu) on the line of the first: their boxes' tops within half a button.
      const buttons = await bar.getByRole('button').all();
      expect(buttons.length).toBeGreaterThanOrEqual(4);
      const first = await box(buttons[0]);
      for (const button of buttons) {
        const b = await box(button);
        expect(Math.abs(b.y - first.y), `${await button.textContent()} is on the first line`).toBeLessThan(first.height / 2);
      }
      // And the bar is one line tall: no taller than twice a button.
      expect((await box(bar)).height).toBeLessThan(first.height * 2);
    }

    // The admin page starts under the bar's bottom edge, however tall the bar is, and
    // fits the screen's width (its close button on screen).
    await toggle.click();
    const panel = page.getByRole('region', { name: 'Administration', exact: true });
    await expect(panel.getByRole('heading', { name: 'Administration', exact: true })).toBeFocused();
    await expect(panel.getByRole('table', { name: 'People' })).toBeVisible();
    const barBox = await box(bar);
    const panelBox = await box(panel);
    expect(panelBox.y, 'the admin page starts under the top bar').toBeGreaterThanOrEqual(barBox.y + barBox.height);
    expect(panelBox.x).toBeGreaterThanOrEqual(0);
    expect(panelBox.x + panelBox.width).toBeLessThanOrEqual(size.width);
    expect(panelBox.y + panelBox.height).toBeLessThanOrEqual(size.height);
    const close = await box(panel.getByRole('button', { name: 'Close administration' }));
    expect(close.x + close.width).toBeLessThanOrEqual(size.width);
    // The bar's buttons stay where they were, usable while the page is open.
    await expect(toggle).toHaveAttribute('aria-expanded', 'true');
    await page.screenshot({ path: test.info().outputPath(`topbar-${size.name}-admin.png`) });

    // The account menu, by keyboard: its list hangs under the bar, Tab goes through
    // real buttons, Escape closes it back to its button.
    await admin.accountMenu.focus();
    await page.keyboard.press('Enter');
    await expect(admin.accountMenu).toHaveAttribute('aria-expanded', 'true');
    const account = page.getByRole('button', { name: 'Account', exact: true });
    await expect(admin.signOutButton).toBeVisible();
    await expect(page.getByRole('button', { name: 'Sign out everywhere', exact: true })).toBeVisible();
    expect((await box(account)).y).toBeGreaterThanOrEqual(barBox.y + barBox.height);
    await page.keyboard.press('Tab');
    await expect(account).toBeFocused();
    const axe = await new AxeBuilder({ page }).include('header').analyze();
    expect(
      axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`),
    ).toEqual([]);
    await page.screenshot({ path: test.info().outputPath(`topbar-${size.name}-menu.png`) });
    await page.keyboard.press('Escape');
    await expect(admin.accountMenu).toHaveAttribute('aria-expanded', 'false');
    await expect(admin.accountMenu).toBeFocused();
    // The admin page is still open under it; Escape there closes it too.
    await expect(panel).toBeVisible();
    await panel.getByLabel('Search people').focus();
    await page.keyboard.press('Escape');
    await expect(panel).toHaveCount(0);
    await expect(toggle).toBeFocused();
  });
}
