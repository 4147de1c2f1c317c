// Changing the password in a real browser: one person in two browser contexts (a laptop
// and a phone, each with its own cookie jar). The change is made in the account panel of
// one; the other is signed out at once (its socket closed by the server, the sign-in
// screen shown), the old password stops working and the new one works.
import { test, expect } from '@playwright/test';
import { ConfabServer } from '../server';
import { PASSWORD, Person, tag } from '../person';
import { Crowd } from '../crowd';

/** How soon the other browser must notice it was signed out. */
const SIGN_OUT_MS = 3_000;

let server: ConfabServer;
const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

test.beforeAll(async () => {
  // Accounts only. Every browser here comes from 127.0.0.1: a higher per-address
  // allowance keeps repeated runs from tripping it.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
});

test.afterAll(async () => {
  await server?.stop();
});

test.afterEach(async () => {
  await crowd.closeAll();
});

test('a password change in one browser signs the other out, and the new password works', async ({ browser }) => {
  const t = tag();
  const username = `kim-${t}`;
  const newPassword = `a new and long secret ${t}`;

  const laptop = await crowd.arrive(browser);
  await laptop.signUp(username, `Kim ${t}`);

  const phone = await crowd.arrive(browser);
  phone.username = username;
  await phone.submitSignIn(username, PASSWORD);
  await phone.expectInChat();

  // The account panel opens from a named button in the account menu, with the keyboard
  // in its first field.
  await laptop.openAccountMenu();
  await laptop.page.getByRole('button', { name: 'Account', exact: true }).click();
  const panel = laptop.page.getByRole('dialog', { name: 'Your account' });
  await expect(panel).toBeVisible();
  const form = panel.getByRole('form', { name: 'Change password' });
  const current = form.getByLabel('Current password', { exact: true });
  const fresh = form.getByLabel('New password', { exact: true });
  await expect(current).toBeFocused();

  // A common password is refused under its field, and nothing changes.
  await current.fill(PASSWORD);
  await fresh.fill('Password123');
  await form.getByRole('button', { name: 'Change password' }).click();
  await expect(fresh).toHaveAttribute('aria-invalid', 'true');
  await expect(form.getByRole('alert')).toHaveText(/most common/);
  await expect(phone.connection).toHaveAttribute('data-state', 'open');

  // The change, made with the keyboard: Enter in the last field submits.
  await fresh.fill(newPassword);
  await fresh.press('Enter');
  await expect(panel.getByRole('status')).toHaveText(/Password changed/);
  await expect(fresh).not.toHaveAttribute('aria-invalid', 'true');

  // The phone is signed out by the server: socket closed, sign-in screen shown.
  await expect(phone.signInForm).toBeVisible({ timeout: SIGN_OUT_MS });
  await expect(phone.connection).toHaveAttribute('data-state', 'idle');
  // The laptop stays signed in and chatting.
  await expect(laptop.connection).toHaveAttribute('data-state', 'open');
  await panel.getByRole('button', { name: 'Close' }).click();
  await expect(panel).toHaveCount(0);
  // The menu it came from has closed: the focus goes back to the menu's button.
  await expect(laptop.accountMenu).toBeFocused();
  const hello = `still here ${t}`;
  await laptop.send('#general', hello);
  await expect(laptop.message(username, hello)).toHaveCount(1);

  // On the phone the old password no longer works; the new one does.
  await phone.submitSignIn(username, PASSWORD);
  await expect(phone.signInForm.getByRole('alert')).toHaveText(/wrong username or password/i);
  await phone.submitSignIn(username, newPassword);
  await phone.expectInChat();

  // "Sign out other sessions" from the phone now signs the laptop out.
  await phone.openAccountMenu();
  await phone.page.getByRole('button', { name: 'Account', exact: true }).click();
  const phonePanel = phone.page.getByRole('dialog', { name: 'Your account' });
  await phonePanel.getByRole('button', { name: 'Sign out other sessions' }).click();
  await expect(phonePanel.getByRole('status')).toHaveText(/other sessions are signed out/);
  await expect(laptop.signInForm).toBeVisible({ timeout: SIGN_OUT_MS });
  await expect(phone.connection).toHaveAttribute('data-state', 'open');
  // Escape closes the panel.
  await phone.page.keyboard.press('Escape');
  await expect(phonePanel).toHaveCount(0);
});
