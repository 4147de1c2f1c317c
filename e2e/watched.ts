// A browser page the tests watch for what it should never do: open a dialog (alert,
// confirm) the test did not expect, or throw an uncaught error. Each spec's person or
// tab extends it and checks both lists after the test.
import type { BrowserContext, Page } from '@playwright/test';

export class WatchedPage {
  readonly dialogs: string[] = [];
  readonly pageErrors: string[] = [];

  constructor(
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('dialog', (dialog) => {
      this.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (err) => this.pageErrors.push(String(err)));
  }
}
