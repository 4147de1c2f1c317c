// The pages a spec file opens, and their closing after each test: every spec brings people
// onto its server the same way (a browser context of their own, a page, the server's URL)
// and must close them all and fail on whatever went wrong in any of them
// (`closeAndExpectClean`). One object per spec file holds what differs between specs:
// where the page goes, the context's options, the page object, the label in the report.
import type { Browser, BrowserContext, BrowserContextOptions, Page, ViewportSize } from '@playwright/test';
import { WatchedPage, closeAndExpectClean } from './watched';

export interface CrowdOptions {
  /** Where a page goes unless told otherwise; read when it opens (the server starts in beforeAll). */
  url: () => string;
  /** Options of every browser context `arrive` makes (`ignoreHTTPSErrors` behind TLS, a viewport…). */
  context?: BrowserContextOptions;
  /** What the report calls each page ("person 2"); `closeAndExpectClean`'s own word by default. */
  label?: string;
  /** Done to each new page before it loads (an init script, say). */
  beforeLoad?: (page: Page) => Promise<void>;
}

export class Crowd<P extends WatchedPage> {
  private opened: P[] = [];

  /** `kind` is the page object each page gets (`Person`, or a spec's own). */
  constructor(
    private readonly kind: new (context: BrowserContext, page: Page) => P,
    private readonly options: CrowdOptions,
  ) {}

  /** Someone new: a browser context of their own (so their own cookies), on the page at `url`. */
  async arrive(browser: Browser, opts: { viewport?: ViewportSize; url?: string } = {}): Promise<P> {
    const context = await browser.newContext({
      ...this.options.context,
      ...(opts.viewport ? { viewport: opts.viewport } : {}),
    });
    return this.openTab(context, opts.url);
  }

  /** Another page of the browser `context` (same cookies: the same person's next tab), at `url`. */
  async openTab(context: BrowserContext, url?: string): Promise<P> {
    const watched = new this.kind(context, await context.newPage());
    this.opened.push(watched);
    await this.options.beforeLoad?.(watched.page);
    await watched.page.goto(url ?? this.options.url());
    return watched;
  }

  /** For the spec's afterEach: closes every page opened since the last call, failing on any problem in one. */
  async closeAll(): Promise<void> {
    const opened = this.opened;
    this.opened = [];
    await closeAndExpectClean(opened, this.options.label);
  }
}
