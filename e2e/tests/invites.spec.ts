// Sign-up by invite (`--sign-up invite`) in real browsers: the sign-in screen offers no
// sign-up without a link; an administrator (made with `confab-server admin create`)
// makes a link in the app; a second person opens it, signs up and is in; a third with
// the same used-up link is told why; the administrator revokes an open link.
import AxeBuilder from '@axe-core/playwright';
import { test, expect } from '@playwright/test';
import { ConfabServer } from '../server';
import { PASSWORD, Person, tag } from '../person';
import { Crowd } from '../crowd';

let server: ConfabServer;
const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

test.beforeAll(async () => {
  server = await ConfabServer.start(['--sign-up', 'invite', '--sign-in-per-ip-per-min', '200']);
  await server.admin(['create', 'root', '--display-name', 'Root'], `${PASSWORD}\n`);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

test('an administrator makes an invite link in the app and someone signs up with it', async ({ browser }) => {
  const admin = await crowd.arrive(browser);
  await expect(admin.signInForm).toBeVisible();
  // No invite in the address: no sign-up, and the screen says why.
  await expect(admin.page.getByRole('button', { name: 'Sign up', exact: true })).toHaveCount(0);
  await expect(admin.page.getByText('New accounts here need an invite link')).toBeVisible();
  await admin.submitSignIn('root', PASSWORD);
  await admin.expectInChat();

  // The panel opens from a real button, by keyboard, and starts in its first field.
  const toggle = admin.page.getByRole('button', { name: 'Invite people' });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await toggle.focus();
  await admin.page.keyboard.press('Enter');
  await expect(toggle).toHaveAttribute('aria-expanded', 'true');
  const panel = admin.page.getByRole('region', { name: 'Invite links' });
  await expect(panel.getByLabel('Uses', { exact: true })).toBeFocused();
  await expect(panel.getByText('No open invites.')).toBeVisible();
  await panel.getByLabel('Expires after').selectOption({ label: '1 day' });
  await panel.getByRole('button', { name: 'Create invite link' }).click();
  const field = panel.getByRole('textbox', { name: 'Invite link', exact: true });
  await expect(field).toHaveValue(new RegExp(`^${server.url}\\?invite=[A-Za-z0-9_-]{43}$`));
  await expect(field).not.toBeEditable();
  await expect(panel.getByRole('button', { name: 'Copy link' })).toBeVisible();
  const link = await field.inputValue();
  // The open panel, its form, link field and list: no serious accessibility problem.
  const axe = await new AxeBuilder({ page: admin.page }).include('#invites-panel').analyze();
  expect(
    axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`),
  ).toEqual([]);
  const open = panel.getByRole('listitem').filter({ hasText: '1 of 1 use left' });
  await expect(open).toHaveCount(1);
  await expect(open).toContainText(/expires in 2[34] hours, by root/);

  // Someone opens the link: the sign-up form is there, and the account is made.
  const t = tag();
  const bob = await crowd.arrive(browser, { url: link });
  await expect(bob.signUpForm).toBeVisible();
  await expect(bob.signUpForm.getByText('You are signing up with an invite link.')).toBeVisible();
  await bob.signUpForm.getByLabel('Username', { exact: true }).fill(`bob-${t}`);
  await bob.signUpForm.getByLabel('Display name (optional)', { exact: true }).fill(`Bob ${t}`);
  await bob.signUpForm.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await bob.signUpForm.getByRole('button', { name: 'Create account' }).click();
  bob.username = `bob-${t}`;
  await bob.expectInChat();
  // The used link leaves the address.
  expect(new URL(bob.page.url()).search).toBe('');
  await expect(admin.online.getByRole('listitem').filter({ hasText: `Bob ${t}` })).toHaveCount(1);
  // A member does not make invites on this server.
  await expect(bob.page.getByRole('button', { name: 'Invite people' })).toHaveCount(0);

  // The same link again: refused, and the form says why.
  const eve = await crowd.arrive(browser, { url: link });
  await eve.signUpForm.getByLabel('Username', { exact: true }).fill(`eve-${t}`);
  await eve.signUpForm.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await eve.signUpForm.getByRole('button', { name: 'Create account' }).click();
  await expect(eve.signUpForm.getByRole('alert')).toHaveText('This invite link has been used up. Ask for a new one.');
  await expect(eve.accountMenu).toHaveCount(0);

  // A second link, revoked from the list; Escape closes the panel back to its button.
  // The lifetime picked before is still picked.
  await expect(panel.getByLabel('Expires after')).toHaveValue('86400');
  await panel.getByRole('button', { name: 'Create invite link' }).click();
  // Listed again after the new one is made: the first one now shows as used up.
  await expect(panel.getByRole('listitem')).toHaveCount(2);
  await expect(panel.getByRole('listitem').filter({ hasText: 'used up' })).toHaveCount(1);
  const second = panel.getByRole('listitem').filter({ hasText: '1 of 1 use left' });
  await expect(second).toHaveCount(1);
  await second.getByRole('button', { name: /^Revoke invite: 1 of 1 use left/ }).click();
  await expect(second).toHaveCount(0);
  // The revoked row's button is gone: the keyboard lands on the list's heading.
  await expect(panel.getByRole('heading', { name: 'Open invites' })).toBeFocused();
  await expect(panel.getByRole('listitem').filter({ hasText: 'used up' })).toHaveCount(1);
  await admin.page.keyboard.press('Escape');
  await expect(panel).toHaveCount(0);
  await expect(toggle).toBeFocused();
});
