// `analyze`'s report.html in headless Chromium, opened from the file: light and dark at
// 1280×800, and on a phone-sized viewport. Reports the page's sections, how many SVG
// charts each holds, anything wider than the viewport, and writes screenshots.
//
//   node report.mjs FILE.html --screenshots DIR
//
// Prints one line {"result": {...}} (see driver.mjs); the Rust test decides what fails.

import { pathToFileURL } from 'node:url';
import { browser, messages, newPage, run } from './driver.mjs';

const [file, , shots] = process.argv.slice(2);
const url = pathToFileURL(file).href;

/** What the page shows: sections with their charts, and what sticks out sideways. */
async function inspect(page) {
  return page.evaluate(() => {
    const vw = document.documentElement.clientWidth;
    const sections = [...document.querySelectorAll('main > section')].map(s => ({
      id: s.id,
      title: s.querySelector('h2')?.textContent ?? '',
      svgs: s.querySelectorAll('svg').length,
      tables: s.querySelectorAll('table').length,
    }));
    // Anything whose box goes past the viewport (a wide table scrolls inside its own box:
    // the box counts, its overflowing content does not).
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('.table') && !el.classList.contains('table')) continue;
      if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
      const r = el.getBoundingClientRect();
      if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
        wide.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className?.baseVal ?? el.className} right=${Math.round(r.right)}`);
      }
    }
    const bg = getComputedStyle(document.body).backgroundColor;
    const fg = getComputedStyle(document.body).color;
    return {
      sections,
      wide: wide.slice(0, 10),
      scroll_width: document.documentElement.scrollWidth,
      viewport_width: vw,
      background: bg,
      color: fg,
      scripts: document.scripts.length,
    };
  });
}

await run(async result => {
  for (const scheme of ['light', 'dark']) {
    const page = await newPage(scheme, scheme);
    await page.goto(url, { waitUntil: 'load' });
    result[scheme] = await inspect(page);
    if (shots) {
      // The top of the page (overview, composition): the whole page is ~5,000 px tall.
      await page.screenshot({ path: `${shots}/analyze-${scheme}.png`, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1600 } });
    }
  }
  // A phone: nothing wider than the screen either.
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const phone = await ctx.newPage();
  phone.on('console', m => messages.push({ page: 'phone', type: m.type(), text: m.text(), url: m.location().url }));
  phone.on('pageerror', e => messages.push({ page: 'phone', type: 'pageerror', text: String(e), url: '' }));
  await phone.goto(url, { waitUntil: 'load' });
  result.phone = await inspect(phone);
});
