// Sharing files in real browsers (issue 17): attached with the composer's button,
// dropped on the room, pasted from the clipboard; each upload shows its progress and can
// be cancelled; a file over the server's limit is refused in the composer with the
// server's sentence and nothing is sent; a file shared offline waits in the outbox and
// goes after the reconnect. The other person sees an image as a preview that opens full
// size, and any other file as its name, size and type, downloaded. Accounts only (guests
// cannot upload); each browser context is one person.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, type Browser, type Locator, type Page, type Route } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { Person, tag } from '../person';
import { ConfabServer } from '../server';
import { Crowd } from '../crowd';

/** How soon a message must reach the other people. */
const DELIVERY_MS = 5_000;
/** How long a tab may take to reconnect once the network is back (backoff at most 15 s). */
const RECONNECT_MS = 20_000;
const PHONE = { width: 390, height: 760 };
/** The server's limit for one file here: small, so one over it is quick to make. */
const MAX_FILE_BYTES = 64 * 1024;
/** The smallest PDF the server's sniffing takes for one: its magic bytes and an end. */
const PDF = Buffer.from('%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n');

let server: ConfabServer;

test.beforeAll(async () => {
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200', '--max-file-bytes', String(MAX_FILE_BYTES)]);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

test.afterEach(async () => {
  await crowd.closeAll();
});

async function signedUp(browser: Browser, name: string, viewport?: typeof PHONE): Promise<Person> {
  const person = await crowd.arrive(browser, { viewport });
  await person.signUp(name, name);
  return person;
}

function attachButton(p: Person): Locator {
  return p.page.getByLabel('Attach files', { exact: true });
}

/** The files listed in the composer, waiting for the message to be sent. */
function toSend(p: Person): Locator {
  return p.page.getByRole('list', { name: 'Files to send' });
}

/** The composer's word about a refused file. */
function fileError(p: Person): Locator {
  return p.page.getByRole('form', { name: 'Send a message' }).getByRole('alert');
}

/** `from`'s messages in `p`'s room that share the file named `name`. */
function sharing(p: Person, from: string, name: string): Locator {
  return p.log
    .locator(`[data-testid="message"][data-from="${from}"]`)
    .filter({ has: p.page.getByRole('list', { name: 'Files' }).filter({ hasText: name }).or(p.page.getByRole('img', { name })) });
}

/** A real PNG (so the server makes it a preview) of `width` × `height`, drawn in the page. */
async function png(page: Page, width: number, height: number): Promise<Buffer> {
  const base64 = await page.evaluate(
    ([w, h]) => {
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      const g = canvas.getContext('2d');
      if (!g) throw new Error('no 2d canvas');
      g.fillStyle = '#2f5bd3';
      g.fillRect(0, 0, w, h);
      g.fillStyle = '#ffbf47';
      g.fillRect(w / 4, h / 4, w / 2, h / 2);
      return canvas.toDataURL('image/png').split(',')[1];
    },
    [width, height],
  );
  return Buffer.from(base64, 'base64');
}

/** Whether an image has loaded and has pixels (a broken one has none). */
async function loaded(img: Locator): Promise<boolean> {
  return img.evaluate((el) => el instanceof HTMLImageElement && el.complete && el.naturalWidth > 0);
}

/** What axe finds serious or critical on the page (files shared, files waiting). */
async function seriousA11yProblems(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Nothing sticks out sideways: the page and the conversation fit the viewport's width. */
async function expectNoSidewaysOverflow(p: Person): Promise<void> {
  const overflow = await p.page.evaluate(() => {
    const root = document.documentElement;
    const log = document.querySelector('[role="log"]');
    return {
      page: root.scrollWidth - root.clientWidth,
      log: log ? log.scrollWidth - log.clientWidth : 0,
    };
  });
  expect(overflow).toEqual({ page: 0, log: 0 });
}

test('files attached with the button reach the other person: an image opens full size, a PDF downloads', async ({ browser }, testInfo) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  const picture = await png(ada.page, 1200, 900);

  await attachButton(ada).setInputFiles([
    { name: 'harbour.png', mimeType: 'image/png', buffer: picture },
    { name: 'q3 <img src=x onerror=alert(1)>.pdf', mimeType: 'application/pdf', buffer: PDF },
  ]);
  await expect(toSend(ada).getByRole('listitem')).toHaveText([/harbour\.png/, /q3 <img src=x onerror=alert\(1\)>\.pdf/]);
  // Changed their mind about one, then back.
  await toSend(ada).getByRole('button', { name: 'Remove harbour.png' }).click();
  await expect(toSend(ada).getByRole('listitem')).toHaveCount(1);
  // From the keyboard: the button is a file input, reached with Tab, opened with Space.
  const chooser = ada.page.waitForEvent('filechooser');
  await ada.composer('#general').focus();
  await ada.page.keyboard.press('Tab');
  await expect(attachButton(ada)).toBeFocused();
  await ada.page.keyboard.press('Space');
  await (await chooser).setFiles({ name: 'harbour.png', mimeType: 'image/png', buffer: picture });
  const caption = `the harbour and the report ${t}`;
  await ada.send('#general', caption);
  await expect(toSend(ada)).toHaveCount(0);

  const seen = bob.message(ada.username, caption);
  await expect(seen).toHaveCount(1, { timeout: DELIVERY_MS });
  // The image: its preview, named by the file, fitted in 320 × 240 keeping its shape.
  const preview = seen.getByRole('img', { name: 'harbour.png' });
  await expect(preview).toBeVisible();
  await expect(preview).toHaveAttribute('width', '320');
  await expect(preview).toHaveAttribute('height', '240');
  await expect.poll(() => loaded(preview)).toBe(true);
  expect(await preview.getAttribute('src')).toMatch(/^\/api\/files\/[^/]+\/thumb$/);
  // It opens full size, served as the image it is.
  const opened = bob.context.waitForEvent('page');
  await seen.getByRole('link', { name: /harbour\.png/ }).click();
  const full = await opened;
  await full.waitForLoadState();
  expect(full.url()).toMatch(/\/api\/files\/[^/]+$/);
  expect(await full.evaluate(() => document.contentType)).toBe('image/png');
  await full.close();
  // The PDF: its name as text (never markup), size and type, and a download link.
  const pdf = seen.getByRole('link', { name: 'q3 <img src=x onerror=alert(1)>.pdf' });
  await expect(pdf).toBeVisible();
  await expect(seen.locator('img')).toHaveCount(1);
  await expect(seen).toContainText(`${PDF.length} bytes · PDF document`);
  const [download] = await Promise.all([bob.page.waitForEvent('download'), pdf.click()]);
  // Saved under its name, with what a file system may not hold replaced by the browser.
  expect(download.suggestedFilename()).toBe('q3 _img src=x onerror=alert(1)_.pdf');
  const path = await download.path();
  expect(readFileSync(path)).toEqual(PDF);

  // The sender sees the same at once (from the server's acknowledgement).
  const own = ada.message(ada.username, caption);
  await expect(own.getByRole('img', { name: 'harbour.png' })).toBeVisible();
  await expect(own.getByRole('link', { name: 'q3 <img src=x onerror=alert(1)>.pdf' })).toBeVisible();
  await expect(ada.log.getByTestId('pending')).toHaveCount(0);

  await bob.page.screenshot({ path: testInfo.outputPath('files-desktop.png') });
  // At phone width (arriving later: from the room's history) nothing sticks out.
  const cy = await signedUp(browser, `cy-${t}`, PHONE);
  const onPhone = cy.message(ada.username, caption);
  await expect(onPhone.getByRole('img', { name: 'harbour.png' })).toBeVisible();
  await expect.poll(() => loaded(onPhone.getByRole('img', { name: 'harbour.png' }))).toBe(true);
  await expect(onPhone.getByRole('link', { name: 'q3 <img src=x onerror=alert(1)>.pdf' })).toBeVisible();
  await expectNoSidewaysOverflow(cy);
  await cy.page.screenshot({ path: testInfo.outputPath('files-phone.png') });
  // The composer with files waiting, at phone width.
  await attachButton(cy).setInputFiles([
    { name: 'a-rather-long-file-name-that-goes-on-and-on-and-on.pdf', mimeType: 'application/pdf', buffer: PDF },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('notes') },
  ]);
  await expect(toSend(cy).getByRole('listitem')).toHaveCount(2);
  await expectNoSidewaysOverflow(cy);
  expect(await seriousA11yProblems(cy.page)).toEqual([]);
  await cy.page.screenshot({ path: testInfo.outputPath('files-phone-composer.png') });
});

test('files dropped on the room are attached, with a drop target shown while dragging', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  const dropTarget = ada.page.getByText('Drop files to attach them to your message');
  await expect(dropTarget).toHaveCount(0);

  // A drag made in the page, as the browser makes one from the desktop: over the
  // conversation, then dropped.
  const transfer = await ada.page.evaluateHandle(() => {
    const data = new DataTransfer();
    data.items.add(new File(['first line\nsecond line\n'], 'notes.txt', { type: 'text/plain' }));
    data.items.add(new File(['a,b\n1,2\n'], 'table.csv', { type: 'text/csv' }));
    return data;
  });
  await ada.log.dispatchEvent('dragenter', { dataTransfer: transfer });
  await ada.log.dispatchEvent('dragover', { dataTransfer: transfer });
  await expect(dropTarget).toBeVisible();
  await ada.log.dispatchEvent('drop', { dataTransfer: transfer });
  await expect(dropTarget).toHaveCount(0);
  await expect(toSend(ada).getByRole('listitem')).toHaveText([/notes\.txt/, /table\.csv/]);
  // Leaving without dropping hides the target again.
  await ada.log.dispatchEvent('dragenter', { dataTransfer: transfer });
  await expect(dropTarget).toBeVisible();
  await ada.log.dispatchEvent('dragleave', { dataTransfer: transfer });
  await expect(dropTarget).toHaveCount(0);

  // No text needed with files: Send (Enter in the empty composer) shares them.
  await ada.composer('#general').press('Enter');
  const seen = sharing(bob, ada.username, 'notes.txt');
  await expect(seen).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(seen.getByRole('link', { name: 'notes.txt' })).toBeVisible();
  await expect(seen.getByRole('link', { name: 'table.csv' })).toBeVisible();
  await expect(seen).toContainText('23 bytes');
});

test('an image pasted into the composer is attached, and the other person sees its preview', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  const composer = ada.composer('#general');
  await composer.fill(`pasted ${t}`);
  await composer.evaluate(async (el) => {
    const canvas = document.createElement('canvas');
    canvas.width = 300;
    canvas.height = 600;
    const g = canvas.getContext('2d');
    if (!g) throw new Error('no 2d canvas');
    g.fillStyle = '#1b7f3b';
    g.fillRect(0, 0, 300, 600);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
    if (!blob) throw new Error('no png');
    const data = new DataTransfer();
    data.items.add(new File([blob], 'screenshot.png', { type: 'image/png' }));
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
  await expect(toSend(ada).getByRole('listitem')).toHaveText([/screenshot\.png/]);
  // The text typed before is untouched by the paste of a file.
  await expect(composer).toHaveValue(`pasted ${t}`);
  await composer.press('Enter');
  const seen = bob.message(ada.username, `pasted ${t}`);
  const preview = seen.getByRole('img', { name: 'screenshot.png' });
  await expect(preview).toBeVisible({ timeout: DELIVERY_MS });
  // Tall: the height sets the scale.
  await expect(preview).toHaveAttribute('height', '240');
  await expect(preview).toHaveAttribute('width', '120');
  await expect.poll(() => loaded(preview)).toBe(true);
});

test('a file over the limit is refused in the composer with the server’s sentence, and nothing is sent', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  const caption = `too big ${t}`;
  await attachButton(ada).setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(MAX_FILE_BYTES + 1, 7) });
  await ada.send('#general', caption);
  await expect(fileError(ada)).toContainText('big.bin: This file is too large: the server takes files of up to 64');
  // The message waits, saying why, for the person to send it without the file or not at all.
  const pending = ada.log.getByTestId('pending');
  await expect(pending).toContainText('Not sent: big.bin was not accepted');
  // A file alone over the limit leaves nothing behind at all.
  await attachButton(ada).setInputFiles({ name: 'huge.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(MAX_FILE_BYTES * 2, 1) });
  await ada.composer('#general').press('Enter');
  await expect(fileError(ada)).toContainText('huge.bin: This file is too large');
  await expect(pending).toHaveCount(1);
  // Nothing reached the other person; "a message later" proves the wait was long enough.
  await ada.send('#general', `a message later ${t}`);
  await expect(bob.message(ada.username, `a message later ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(bob.message(ada.username, caption)).toHaveCount(0);
  await expect(bob.log.locator(`[data-from="${ada.username}"]`).getByRole('list', { name: 'Files' })).toHaveCount(0);
  // Sent without the file, the text goes; the word in the composer can be dismissed.
  await pending.getByRole('button', { name: 'Retry' }).click();
  await expect(bob.message(ada.username, caption)).toHaveCount(1, { timeout: DELIVERY_MS });
  await fileError(ada).getByRole('button', { name: 'Dismiss the file error' }).click();
  await expect(fileError(ada)).toHaveCount(0);
});

test('an upload shows its progress and can be cancelled; the rest of the message still goes', async ({ browser }, testInfo) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  // The upload of slow.bin is held on its way, for as long as the test likes.
  let held: Route | undefined;
  await ada.page.route('**/api/files?*', async (route) => {
    if (route.request().url().includes('slow.bin')) held = route;
    else await route.continue();
  });
  await attachButton(ada).setInputFiles([
    { name: 'slow.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(20_000, 3) },
    { name: 'quick.txt', mimeType: 'text/plain', buffer: Buffer.from('quick') },
  ]);
  const caption = `cancelled one ${t}`;
  await ada.send('#general', caption);
  const pending = ada.log.getByTestId('pending');
  await expect(pending).toContainText(caption);
  const progress = pending.getByRole('progressbar', { name: 'Uploading slow.bin' });
  await expect(progress).toBeVisible();
  await expect(pending.getByText('uploaded', { exact: true })).toBeVisible();
  await expect.poll(() => held !== undefined).toBe(true);
  await ada.page.screenshot({ path: testInfo.outputPath('files-uploading.png') });
  expect(await seriousA11yProblems(ada.page)).toEqual([]);
  await pending.getByRole('button', { name: 'Cancel slow.bin' }).click();
  await expect(pending).toHaveCount(0, { timeout: DELIVERY_MS });
  await held?.continue().catch(() => {});

  const seen = bob.message(ada.username, caption);
  await expect(seen).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(seen.getByRole('link', { name: 'quick.txt' })).toBeVisible();
  await expect(seen).not.toContainText('slow.bin');

  // Cancelling the only file of a message without text takes the message away.
  held = undefined;
  await attachButton(ada).setInputFiles({ name: 'slow.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(20_000, 4) });
  await ada.composer('#general').press('Enter');
  await expect(pending.getByRole('progressbar', { name: 'Uploading slow.bin' })).toBeVisible();
  await expect.poll(() => held !== undefined).toBe(true);
  await pending.getByRole('button', { name: 'Cancel slow.bin' }).click();
  await expect(pending).toHaveCount(0);
  await held?.continue().catch(() => {});
  await ada.send('#general', `after the cancel ${t}`);
  await expect(bob.message(ada.username, `after the cancel ${t}`)).toHaveCount(1, { timeout: DELIVERY_MS });
  await expect(bob.log.getByText('slow.bin')).toHaveCount(0);
});

test('the progress bar follows the bytes as they go', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  // A slow uplink (Chromium's network emulation): 60 KB take a few seconds.
  const cdp = await ada.context.newCDPSession(ada.page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 20 * 1024,
  });
  const size = 60 * 1024;
  await attachButton(ada).setInputFiles({ name: 'steady.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(size, 5) });
  const caption = `progress ${t}`;
  await ada.send('#general', caption);
  const bar = ada.log.getByTestId('pending').getByRole('progressbar', { name: 'Uploading steady.bin' });
  await expect(bar).toHaveAttribute('max', String(size));
  // Part of the way: more than nothing, less than all.
  await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 10_000 }).toBeGreaterThan(0);
  expect(Number(await bar.getAttribute('value'))).toBeLessThan(size);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await expect(bob.message(ada.username, caption).getByRole('link', { name: 'steady.bin' })).toBeVisible({ timeout: 15_000 });
});

test('a file shared while offline waits in the outbox and is sent after the reconnect', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  const picture = await png(ada.page, 200, 100);
  await ada.context.setOffline(true);
  await expect(ada.connection).toHaveAttribute('data-state', 'offline', { timeout: DELIVERY_MS });
  await attachButton(ada).setInputFiles({ name: 'offline.png', mimeType: 'image/png', buffer: picture });
  const caption = `shared offline ${t}`;
  await ada.send('#general', caption);
  const pending = ada.log.getByTestId('pending');
  await expect(pending).toContainText(caption);
  await expect(pending).toContainText('offline.png');
  await expect(pending).toContainText('waiting to upload');
  await expect(pending).toContainText('sending…');

  await ada.context.setOffline(false);
  const seen = bob.message(ada.username, caption);
  await expect(seen).toHaveCount(1, { timeout: RECONNECT_MS });
  const preview = seen.getByRole('img', { name: 'offline.png' });
  await expect(preview).toHaveAttribute('width', '200');
  await expect.poll(() => loaded(preview)).toBe(true);
  await expect(pending).toHaveCount(0, { timeout: DELIVERY_MS });
  await expect(ada.message(ada.username, caption).getByRole('img', { name: 'offline.png' })).toBeVisible();
});

test('after a reload, a file that was not uploaded yet is said to be lost, and the text can still go', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`);
  const bob = await signedUp(browser, `bob-${t}`);
  // The upload never gets an answer: the page is reloaded while it is on its way.
  await ada.page.route('**/api/files?*', () => {});
  await attachButton(ada).setInputFiles({ name: 'left-behind.pdf', mimeType: 'application/pdf', buffer: PDF });
  const caption = `reloaded ${t}`;
  await ada.send('#general', caption);
  await expect(ada.log.getByTestId('pending').getByRole('progressbar', { name: 'Uploading left-behind.pdf' })).toBeVisible();
  await ada.page.reload();
  const pending = ada.log.getByTestId('pending');
  await expect(pending).toContainText(caption);
  await expect(pending).toContainText('left-behind.pdf');
  await expect(pending).toContainText('not sent, attach again');
  await expect(pending).toContainText('Not sent: the page was reloaded before its files were uploaded');
  await pending.getByRole('button', { name: 'Retry' }).click();
  await expect(bob.message(ada.username, caption)).toHaveCount(1, { timeout: RECONNECT_MS });
  await expect(bob.log.getByText('left-behind.pdf')).toHaveCount(0);
});
