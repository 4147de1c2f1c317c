// Checks that the project's Markdown renders as written, with a CommonMark parser
// (markdown-it in its strict `commonmark` preset, as GitHub's renderer follows the spec).
//
// What it catches is the mistake that is invisible in an editor and ruins the page: a
// code fence that does not close where the author meant it to. CommonMark accepts a
// closing fence only as a line of nothing but backticks (or tildes); "``` More text"
// opens nothing and closes nothing, so everything down to the next bare fence, headings
// included, renders as code. Such a line inside a rendered code block, or a fence left
// open at the end of the file, is reported with its line number.
//
// Usage: node tools/check-markdown.mjs FILE.md...   (exit 1 when any file has a problem)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const MarkdownIt = require('markdown-it');
const md = new MarkdownIt('commonmark');

/** A line that starts like a fence: up to three spaces, then three or more ` or ~. */
const FENCE_LIKE = /^ {0,3}(`{3,}|~{3,})/;
/** A line that is nothing but a fence. */
const BARE_FENCE = /^ {0,3}(`{3,}|~{3,})\s*$/;

function problems(file) {
  const source = readFileSync(file, 'utf8');
  const lines = source.split('\n');
  const found = [];
  for (const token of md.parse(source, {})) {
    if (token.type !== 'fence' || !token.map) continue;
    const [start, end] = token.map; // 0-based, end exclusive: opening fence .. closing fence
    const opener = lines[start].trim().match(/^(`{3,}|~{3,})/)?.[1] ?? '```';
    token.content.split('\n').forEach((line, i) => {
      // Only a run that could have closed this block (same character, at least as
      // long): a ``` line inside a ```` block is content, as intended.
      const run = line.match(FENCE_LIKE)?.[1];
      if (run && run[0] === opener[0] && run.length >= opener.length) {
        found.push(
          `${file}:${start + 2 + i}: a line starting with ${opener.slice(0, 3)} inside a code block ` +
            `(opened on line ${start + 1}) does not close it: a closing fence holds nothing else`,
        );
      }
    });
    const last = lines[end - 1] ?? '';
    const closed = end - 1 > start && BARE_FENCE.test(last) && last.trim()[0] === opener[0];
    if (!closed) {
      found.push(`${file}:${start + 1}: this code block is never closed: it runs to the end of the file`);
    }
  }
  return found;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node tools/check-markdown.mjs FILE.md...');
  process.exit(2);
}
const all = files.flatMap(problems);
for (const p of all) console.error(p);
if (all.length > 0) process.exit(1);
console.log(`markdown: ${files.length} files render as written`);

