// One person with an account, in one browser page, as the specs see them: locators by
// accessible name and role (the client's DOM contract), and the few things people do
// over and over (sign up, write in a room). Extends WatchedPage, so whatever the page
// does wrong fails the test that used it.
import { expect, type Locator } from '@playwright/test';
import { WatchedPage } from './watched';

export const PASSWORD = 'correct horse battery';

export class Person extends WatchedPage {
  /** The account's username once signed up (what `data-from` holds). */
  username = '';

  get signInForm(): Locator {
    return this.page.getByRole('form', { name: 'Sign in' });
  }
  get signUpForm(): Locator {
    return this.page.getByRole('form', { name: 'Sign up' });
  }
  get guestForm(): Locator {
    return this.page.getByRole('form', { name: 'Continue as guest' });
  }
  get connection(): Locator {
    return this.page.getByTestId('connection');
  }
  /** The top bar's account menu: the signed-in person's name, as a button. */
  get accountMenu(): Locator {
    return this.page.getByRole('button', { name: /, account menu$/ });
  }
  /** In the account menu: shown only while it is open (see `openAccountMenu`). */
  get signOutButton(): Locator {
    return this.page.getByRole('button', { name: 'Sign out', exact: true });
  }
  get rooms(): Locator {
    return this.page.getByRole('navigation', { name: 'Rooms' });
  }
  get directs(): Locator {
    return this.rooms.getByRole('list', { name: 'Direct messages' });
  }
  /** The button of the room titled `title`; its name may go on with " (private)" or its unread count. */
  roomButton(title: string): Locator {
    return this.rooms.getByRole('button', { name: new RegExp(`^#${title}(?![\\w-])`) });
  }
  /** The button of the direct conversation with `name` (a display name). */
  directButton(name: string): Locator {
    return this.directs.getByRole('button', { name: new RegExp(`^@${name}(?! ?\\w)`) });
  }
  get online(): Locator {
    return this.page.getByRole('list', { name: 'Online users' });
  }
  get log(): Locator {
    return this.page.getByRole('log', { name: 'Messages' });
  }
  /** The message items sent by the account `username` that contain `text`. */
  message(username: string, text: string): Locator {
    return this.log.locator(`[data-testid="message"][data-from="${username}"]`).filter({ hasText: text });
  }
  /** The composer of the room on screen, labelled "Message #title" or "Message @Name". */
  composer(label: string): Locator {
    return this.page.getByLabel(`Message ${label}`, { exact: true });
  }
  get createRoomForm(): Locator {
    return this.page.getByRole('form', { name: 'Create a room' });
  }

  async send(label: string, text: string): Promise<void> {
    const composer = this.composer(label);
    await composer.fill(text);
    await composer.press('Enter');
  }

  /** Creates a room from the sidebar form and waits until it is on screen. */
  async createRoom(name: string, opts: { private?: boolean } = {}): Promise<void> {
    await this.createRoomForm.getByLabel('New room').fill(name);
    if (opts.private) await this.createRoomForm.getByRole('checkbox', { name: 'Private' }).check();
    await this.createRoomForm.getByRole('button', { name: 'Create' }).click();
    await expect(this.composer(`#${name}`)).toBeVisible();
  }

  /** In the chat, connected, with #general on screen (where every session starts). */
  async expectInChat(): Promise<void> {
    await expect(this.connection).toHaveAttribute('data-state', 'open');
    await expect(this.composer('#general')).toBeVisible();
    await expect(this.accountMenu).toBeVisible();
    await expect(this.signInForm).toHaveCount(0);
  }

  /** Opens the account menu (Account, Enable notifications, Sign out…) if it is closed. */
  async openAccountMenu(): Promise<void> {
    if ((await this.accountMenu.getAttribute('aria-expanded')) !== 'true') await this.accountMenu.click();
    await expect(this.accountMenu).toHaveAttribute('aria-expanded', 'true');
  }

  /** Signs out from the account menu, here or (`everywhere`) in every browser. */
  async signOut(everywhere = false): Promise<void> {
    await this.openAccountMenu();
    const name = everywhere ? 'Sign out everywhere' : 'Sign out';
    await this.page.getByRole('button', { name, exact: true }).click();
  }

  async signUp(username: string, displayName: string, password = PASSWORD): Promise<void> {
    await expect(this.signInForm).toBeVisible();
    await this.page.getByRole('button', { name: 'Sign up', exact: true }).click();
    const form = this.signUpForm;
    await expect(form).toBeVisible();
    await form.getByLabel('Username', { exact: true }).fill(username);
    await form.getByLabel('Display name (optional)', { exact: true }).fill(displayName);
    await form.getByLabel('Password', { exact: true }).fill(password);
    await form.getByRole('button', { name: 'Create account' }).click();
    this.username = username;
    await this.expectInChat();
  }

  /** Fills and sends the sign-in form; what follows is up to the caller. */
  async submitSignIn(username: string, password: string): Promise<void> {
    const form = this.signInForm;
    await form.getByLabel('Username', { exact: true }).fill(username);
    await form.getByLabel('Password', { exact: true }).fill(password);
    await form.getByRole('button', { name: 'Sign in', exact: true }).click();
  }

  /** Whether `locator` has the keyboard focus. */
  async isFocused(locator: Locator): Promise<boolean> {
    return locator.evaluate((el) => el === document.activeElement).catch(() => false);
  }
}

/** A fresh suffix per call, so every test (and every repeat of it) has its own names. */
let serial = 0;
export function tag(): string {
  serial += 1;
  return `${Date.now().toString(36).slice(-5)}${serial}`;
}
