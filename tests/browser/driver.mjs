// What the browser drivers share: headless Chromium (Debian's /usr/bin/chromium, or
// $CHROMIUM) over the DevTools protocol with playwright-core, pages at 1280×800 whose
// console messages and page errors are collected, one JSON object per line on stdout
// for the Rust test, and the closing: the result with every message, then exit 0 (the
// test decides what fails).

import { chromium } from 'playwright-core';

/** Print one JSON line for the test. */
export const say = obj => process.stdout.write(JSON.stringify(obj) + '\n');

/** Every console message and page error of the pages made by `newPage`. */
export const messages = [];

export const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
});

/** A page in its own context, 1280×800, whose messages are collected under `label`. */
export async function newPage(label, scheme = 'light') {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: scheme });
  const page = await ctx.newPage();
  page.on('console', m => messages.push({ page: label, type: m.type(), text: m.text(), url: m.location().url }));
  page.on('pageerror', e => messages.push({ page: label, type: 'pageerror', text: String(e), url: '' }));
  return page;
}

/**
 * Run `body(result)`, then print {"result": ...} with a `failure` when it threw and
 * `console` (the messages), close the browser and exit 0.
 */
export async function run(body) {
  const result = {};
  try {
    await body(result);
  } catch (e) {
    result.failure = String((e && e.stack) || e);
  }
  result.console = messages;
  await browser.close();
  say({ result });
  process.exit(0);
}
