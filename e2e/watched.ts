// A browser page the tests watch for what it should never do: open a dialog (alert,
// confirm) the test did not expect, throw an uncaught error, or log an error to the
// console (a Rust panic in the client is logged there, "panicked at …", before the
// wasm aborts). Every spec wraps its pages in one and ends each test with
// `closeAndExpectClean`.
import { expect, type BrowserContext, type ConsoleMessage, type Page } from '@playwright/test';

/** A URL on the test's own server (any port; HTTPS behind nginx), whose path matches `path`. */
const local = (path: string) => new RegExp(`^https?://127\\.0\\.0\\.1:\\d+/${path}$`);
/** Chromium's report of a response with `status`; over HTTP/2 (behind nginx) there is
 * no reason phrase, and the parentheses stay empty. */
const failed = (status: number, reason: string) =>
  new RegExp(`^Failed to load resource: the server responded with a status of ${status} \\((${reason})?\\)$`);
const UNAUTHORIZED = failed(401, 'Unauthorized');
const BAD_REQUEST = failed(400, 'Bad Request');
const FORBIDDEN = failed(403, 'Forbidden');
const REFUSED = 'net::ERR_CONNECTION_REFUSED';

/**
 * Console errors that are the browser's own report of something the client expects and
 * handles, matched on the message and the URL it is about. Anything else, and above all
 * a panic, fails the test.
 */
const HARMLESS_CONSOLE_ERRORS: { text: RegExp; url: RegExp }[] = [
  // On load the client asks /api/me who it is: 401 means "not signed in" (the sign-in screen).
  { text: UNAUTHORIZED, url: local('api/me') },
  // A wrong username or password: the client shows the error in the sign-in form.
  { text: UNAUTHORIZED, url: local('api/signin') },
  // The right password for an account an administrator disabled: the client shows why in
  // the sign-in form.
  { text: FORBIDDEN, url: local('api/signin') },
  // A password change refused (wrong current password, a common new one): the client
  // shows the error under the field at fault.
  { text: BAD_REQUEST, url: local('api/password') },
  // A sign-up the server's policy refuses (no invite, or one used up, expired or
  // revoked): the client shows why in the sign-up form.
  { text: FORBIDDEN, url: local('api/signup') },
  // A file over the server's limit: the client shows the server's sentence in the composer.
  { text: failed(413, 'Payload Too Large'), url: local('api/files\\?.*') },
  // Specs that stop the server on purpose: while nothing listens, every reconnect attempt
  // (and the session check after a few) is refused, and Chromium logs each one. Those
  // specs then check that the client comes back.
  {
    text: new RegExp(
      `^WebSocket connection to 'ws://127\\.0\\.0\\.1:\\d+/ws' failed: Error in connection establishment: ${REFUSED}$`,
    ),
    url: local('confab-web-[0-9a-f]+\\.js'),
  },
  { text: new RegExp(`^Failed to load resource: ${REFUSED}$`), url: local('api/me') },
];

function harmless(msg: ConsoleMessage): boolean {
  const text = msg.text();
  const url = msg.location().url;
  // A panic is never harmless, whatever an entry above might match.
  return !/panicked at/.test(text) && HARMLESS_CONSOLE_ERRORS.some((a) => a.text.test(text) && a.url.test(url));
}

export class WatchedPage {
  readonly dialogs: string[] = [];
  readonly pageErrors: string[] = [];
  readonly consoleErrors: string[] = [];

  constructor(
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('dialog', (dialog) => {
      this.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (err) => this.pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !harmless(msg)) {
        const url = msg.location().url;
        this.consoleErrors.push(url ? `${msg.text()} (${url})` : msg.text());
      }
    });
  }

  /** What went wrong in this page, each line prefixed with `who`. */
  problems(who: string): string[] {
    return [
      ...this.dialogs.map((d) => `${who}: dialog opened: ${d}`),
      ...this.pageErrors.map((e) => `${who}: uncaught page error: ${e}`),
      ...this.consoleErrors.map((e) => `${who}: console error: ${e}`),
    ];
  }
}

/**
 * For a spec's afterEach: closes the pages' browser contexts and fails if any page opened
 * a dialog, threw, or logged an error. `label` names a page in the report ("tab 2").
 */
export async function closeAndExpectClean(pages: WatchedPage[], label = 'page'): Promise<void> {
  // Read before closing: a page being torn down may log errors of no interest.
  const problems = pages.flatMap((p, i) => p.problems(`${label} ${i}`));
  await Promise.all([...new Set(pages.map((p) => p.context))].map((c) => c.close()));
  expect(problems, 'no dialog, uncaught error or console error in any page').toEqual([]);
}
