// Message formatting in a real browser (web/src/format.rs): one person sends formatted and
// hostile messages, another sees links, code, emphasis and mentions as elements, and
// markup, `javascript:` links and direction overrides as inert text. Accounts, not guests:
// a guest's username (`~name`) cannot be mentioned.
import { test, expect, type Browser, type Locator } from '@playwright/test';
import { ConfabServer } from '../server';
import { Person, tag } from '../person';
import { Crowd } from '../crowd';

/** How soon a message must reach the other person. */
const DELIVERY_MS = 2_000;
const ROOM = '#general';

let server: ConfabServer;

test.beforeAll(async () => {
  // Every browser here comes from 127.0.0.1: lift the per-address sign-in throttle so a
  // repeated run does not trip it.
  server = await ConfabServer.start(['--sign-in-per-ip-per-min', '200']);
});

test.afterAll(async () => {
  await server?.stop();
});

const crowd = new Crowd(Person, { url: () => server.url, label: 'person' });

async function signedUp(browser: Browser, username: string, displayName: string): Promise<Person> {
  const person = await crowd.arrive(browser);
  await person.signUp(username, displayName);
  return person;
}

test.afterEach(async () => {
  // Fails on any dialog (an `alert` that ran), uncaught error or client panic.
  await crowd.closeAll();
});

/** The body of the one message from `from` holding `text`, as `reader` sees it. */
async function body(reader: Person, from: Person, text: string): Promise<Locator> {
  const message = reader.message(from.username, text);
  await expect(message).toHaveCount(1, { timeout: DELIVERY_MS });
  return message.locator('.body');
}

test('formatting becomes elements, and hostile text stays text', async ({ browser }) => {
  const t = tag();
  const ada = await signedUp(browser, `ada-${t}`, `Ada ${t}`);
  const bob = await signedUp(browser, `bob-${t}`, `Bob ${t}`);
  await expect(ada.online.getByRole('listitem').filter({ hasText: `Bob ${t}` })).toHaveCount(1);

  const wiki = 'https://en.wikipedia.org/wiki/Rust_(programming_language)';
  const hostile = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2; alert(2)">`;
  const sent = [
    `links ${t}: see ${wiki}. or mailto:ada@example.org`,
    `schemes ${t}: javascript:alert(1) JavaScript:alert(1) data:text/html,hi`,
    `markup ${t}: ${hostile} <b>not bold</b>`,
    `block ${t}:\n\`\`\`rust\n  indented\n\ttab  two\n\`\`\`\nafter the block`,
    `inline ${t}: \`*not em* @${bob.username} https://x.org\``,
    `emphasis ${t}: *soft* and **loud** and _also_ but snake_case_name stays`,
    `mentions ${t}: hey @${bob.username}, and @${ada.username}`,
    `bidi ${t}: \u202Egnp.exe *x* https://x.org/a\u202Eb`,
    `مرحبا rtl-${t} @${bob.username}`,
  ];
  for (const text of sent) await ada.send(ROOM, text);
  // The last one arrived, so all did (one sender, in order).
  await body(bob, ada, `rtl-${t}`);

  // An https link: a real link that opens apart from the chat.
  const links = await body(bob, ada, `links ${t}`);
  const link = links.getByRole('link', { name: wiki, exact: true });
  await expect(link).toHaveAttribute('href', wiki);
  await expect(link).toHaveAttribute('rel', 'noopener noreferrer');
  await expect(link).toHaveAttribute('target', '_blank');
  await expect(links.getByRole('link', { name: 'mailto:ada@example.org' })).toHaveAttribute(
    'href',
    'mailto:ada@example.org',
  );
  await expect(links.getByRole('link')).toHaveCount(2);
  // The sentence's full stop is not part of the link.
  await expect(links).toContainText(`${wiki}. or`);

  // Other schemes stay text: no link at all.
  const schemes = await body(bob, ada, `schemes ${t}`);
  await expect(schemes.locator('a')).toHaveCount(0);
  await expect(schemes).toHaveText(sent[1]);

  // Markup is shown as typed, and none of it became an element or ran.
  const markup = await body(bob, ada, `markup ${t}`);
  await expect(markup).toHaveText(sent[2]);
  await expect(markup.locator('script, img, b')).toHaveCount(0);
  expect(await markup.evaluate((el) => el.childElementCount)).toBe(0);
  for (const person of [ada, bob]) {
    expect(await person.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await expect(person.page.locator('img[src="x"]')).toHaveCount(0);
  }

  // A fenced block keeps its white space, as rendered (innerText follows the CSS).
  const block = await body(bob, ada, `block ${t}`);
  const code = block.locator('pre > code');
  await expect(code).toHaveCount(1);
  await expect(code).toHaveClass('language-rust');
  expect(await code.evaluate((el) => (el as HTMLElement).innerText)).toBe('  indented\n\ttab  two');
  await expect(block).toContainText('after the block');

  // Inline code: nothing formatted inside it.
  const inline = await body(bob, ada, `inline ${t}`);
  await expect(inline.locator('code')).toHaveText(`*not em* @${bob.username} https://x.org`);
  await expect(inline.locator('em, strong, a, .mention')).toHaveCount(0);

  // Emphasis and strong; underscores inside a word stay.
  const emphasis = await body(bob, ada, `emphasis ${t}`);
  await expect(emphasis.locator('em')).toHaveText(['soft', 'also']);
  await expect(emphasis.locator('strong')).toHaveText(['loud']);
  await expect(emphasis).toContainText('but snake_case_name stays');

  // A mention of the reader stands out; one of someone else is only a mention.
  const mentions = await body(bob, ada, `mentions ${t}`);
  const mentionsMe = mentions.locator('.mention.mention-me');
  await expect(mentionsMe).toHaveText([`@${bob.username}`]);
  await expect(mentions.locator('.mention:not(.mention-me)')).toHaveText([`@${ada.username}`]);
  const background = await mentionsMe.evaluate((el) => getComputedStyle(el).backgroundColor);
  expect(background).not.toBe('rgba(0, 0, 0, 0)');
  // The sender reads the same message the other way round.
  const sendersView = await body(ada, ada, `mentions ${t}`);
  await expect(sendersView.locator('.mention.mention-me')).toHaveText([`@${ada.username}`]);

  // A direction override is kept as a character, inside a body that isolates it, and the
  // link stops where the override starts.
  const bidi = await body(bob, ada, `bidi ${t}`);
  await expect(bidi).toHaveAttribute('dir', 'auto');
  expect(await bidi.evaluate((el) => getComputedStyle(el).unicodeBidi)).toBe('isolate');
  expect(await bidi.evaluate((el) => el.textContent)).toContain('\u202Egnp.exe');
  await expect(bidi.getByRole('link')).toHaveText(['https://x.org/a']);
  await expect(bidi.locator('em')).toHaveText(['x']);
  expect(await bidi.locator('em').evaluate((el) => getComputedStyle(el).unicodeBidi)).toBe('isolate');

  // In a right-to-left message a mention still reads `@name`, the `@` on its left.
  const rtl = await body(bob, ada, `rtl-${t}`);
  const mention = rtl.locator('.mention');
  await expect(mention).toHaveText(`@${bob.username}`);
  const [at, name] = await mention.evaluate((el) => {
    const text = el.firstChild as Text;
    const left = (from: number) => {
      const range = document.createRange();
      range.setStart(text, from);
      range.setEnd(text, from + 1);
      return range.getBoundingClientRect().left;
    };
    return [left(0), left(1)];
  });
  expect(at).toBeLessThan(name);
});
