import { defineConfig } from '@playwright/test';

// Browser tests run Debian's Chromium (/usr/bin/chromium): `npx playwright install` cannot
// download browsers on these machines. The flags keep Chromium from reaching for the
// network on its own (see shared/TOOLCHAIN.md). Each test file starts its own server
// (see server.ts), so no webServer entry here.
export default defineConfig({
  testDir: './tests',
  workers: 1,
  retries: 0,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  timeout: 60_000,
  expect: { timeout: 5_000 },
  reporter: 'list',
  outputDir: './test-results',
  use: {
    headless: true,
    actionTimeout: 10_000,
    navigationTimeout: 15_000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
