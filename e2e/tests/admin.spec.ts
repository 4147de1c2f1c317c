// The admin page in real browsers: an administrator (made with `confab-server admin
// create`) opens it from the top bar by keyboard, finds Bob, removes a message Bob wrote
// in #general by pasting its link (Carol, another member, sees it go), disables Bob
// while he is chatting in his own browser (his page goes to the sign-in screen saying
// why, and signing in again is refused), enables him again, and reads the audit log.
import AxeBuilder from '@axe-core/playwright';
import { test, expect } from '@playwright/test';
import { ConfabServer } from '../server';
import { PASSWORD, Person, tag } from '../person';
import { Crowd } from '../crowd';

let server: ConfabServer;
const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

test.beforeAll(async () => {
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
  await server.admin(['create', 'root', '--display-name', 'Root'], `${PASSWORD}\n`);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

test('an administrator removes a message, disables Bob while he chats, and reads the audit log', async ({
  browser,
}) => {
  const t = tag();
  const bob = await crowd.arrive(browser);
  await bob.signUp(`bob-${t}`, `Bob ${t}`);
  const carol = await crowd.arrive(browser);
  await carol.signUp(`carol-${t}`, `Carol ${t}`);
  const text = `something to take down ${t}`;
  await bob.send('#general', text);
  await expect(carol.message(bob.username, text)).toBeVisible();

  const admin = await crowd.arrive(browser);
  await admin.submitSignIn('root', PASSWORD);
  await admin.expectInChat();
  // Members see no such button.
  await expect(carol.page.getByRole('button', { name: 'Administration', exact: true })).toHaveCount(0);
  // The page opens from a real button, by keyboard.
  const toggle = admin.page.getByRole('button', { name: 'Administration', exact: true });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await toggle.focus();
  await admin.page.keyboard.press('Enter');
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  const panel = admin.page.getByRole('region', { name: 'Administration', exact: true });
  await expect(panel.getByRole('heading', { name: 'Administration', exact: true })).toBeFocused();
  await expect(panel.getByText(/^\d+ \(\d+ disabled\)$/)).toBeVisible();
  const axe = await new AxeBuilder({ page: admin.page }).include('#admin-panel').analyze();
  expect(
    axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`),
  ).toEqual([]);

  // Search finds Bob alone.
  await panel.getByLabel('Search people').fill(`bob-${t}`);
  const people_ = panel.getByRole('table', { name: 'People' });
  await expect(people_.getByRole('row')).toHaveCount(2);
  const row = people_.getByRole('row').filter({ hasText: `bob-${t}` });
  await expect(row).toContainText('active');

  // Removing Bob's message by its link: Carol sees it go at once.
  const seq = await carol.message(bob.username, text).getAttribute('data-seq');
  await panel.getByLabel('Message link').fill(`${server.url}#general/${seq}`);
  await panel.getByRole('button', { name: 'Remove message' }).click();
  await expect(panel.getByRole('status')).toHaveText(`Removed message ${seq} of general.`);
  await expect(carol.message(bob.username, text)).toHaveCount(0);
  await expect(bob.message(bob.username, text)).toHaveCount(0);

  // Disabling Bob while he chats: his page leaves the chat and says why.
  await expect(bob.connection).toHaveAttribute('data-state', 'open');
  await row.getByRole('button', { name: `Disable: bob-${t}` }).click();
  await expect(panel.getByRole('status')).toHaveText(`Disabled bob-${t}.`);
  await expect(row).toContainText('disabled');
  await expect(bob.signInForm).toBeVisible();
  await expect(bob.signInForm.getByText('An administrator disabled your account')).toBeVisible();
  await bob.submitSignIn(bob.username, PASSWORD);
  await expect(bob.signInForm.getByText('this account is disabled; ask an administrator')).toBeVisible();

  // Enabled again, he signs in.
  await row.getByRole('button', { name: `Enable: bob-${t}` }).click();
  await expect(row).toContainText('active');
  await bob.submitSignIn(bob.username, PASSWORD);
  await bob.expectInChat();

  // A reset link to hand over, shown once.
  await row.getByRole('button', { name: `Reset password: bob-${t}` }).click();
  await expect(panel.getByRole('textbox', { name: 'Password reset link' })).toHaveValue(
    new RegExp(`^${server.url}\\?reset=[A-Za-z0-9_-]{43}$`),
  );

  // The audit log says who did what, newest first.
  const audit = panel.getByRole('list', { name: 'Audit log' });
  await expect(audit.getByRole('listitem').nth(0)).toContainText(`@root reset-password bob-${t}`);
  await expect(audit.getByRole('listitem').nth(1)).toContainText(`@root enable bob-${t}`);
  await expect(audit.getByRole('listitem').nth(2)).toContainText(`@root disable bob-${t}`);
  await expect(audit.getByRole('listitem').nth(3)).toContainText(`@root remove-message general (message ${seq})`);

  // Escape closes the page and gives the focus back to its button.
  await panel.getByLabel('Search people').focus();
  await admin.page.keyboard.press('Escape');
  await expect(panel).toHaveCount(0);
  await expect(toggle).toBeFocused();
});

test('a password reset link sets a new password in the web client', async ({ browser }) => {
  const t = tag();
  const dana = await crowd.arrive(browser);
  await dana.signUp(`dana-${t}`, `Dana ${t}`);
  const out = await server.admin(['reset-password', `dana-${t}`]);
  const path = out.split('\n').find((l) => l.startsWith('/?reset='));
  expect(path).toBeTruthy();
  // Her open page is signed out when the link is used.
  const there = await crowd.arrive(browser);
  await there.page.goto(`${server.url}${path!.slice(1)}`);
  const form = there.page.getByRole('form', { name: 'Set a new password' });
  await expect(form.getByLabel('New password')).toBeFocused();
  await form.getByLabel('New password').fill('a brand new horse');
  await form.getByRole('button', { name: 'Set password' }).click();
  await expect(there.page.getByText('Your new password is set. Sign in with it.')).toBeVisible();
  await expect(there.page).toHaveURL(server.url);
  await expect(dana.signInForm).toBeVisible();
  there.username = `dana-${t}`;
  await there.submitSignIn(there.username, 'a brand new horse');
  await there.expectInChat();
});
