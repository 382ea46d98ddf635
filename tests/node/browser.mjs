// Runs tests/node/browser/tablet.html in headless Chromium (Debian's) and prints its result as JSON.
// Usage: node browser.mjs <page-url> <remote-url> <username> <password> <mode: basic|cookie> <doc-json>
import { chromium } from 'playwright-core';

const [pageUrl, remoteUrl, username, password, mode, docJson] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (msg) => consoleLines.push(msg.text()));
  await page.goto(pageUrl);
  const result = await page.evaluate(
    ([remote, user, pw, doc, m]) => window.runTablet(remote, user, pw, doc, m),
    [remoteUrl, username, password, JSON.parse(docJson), mode],
  );
  const status = await page.textContent('#status');
  process.stdout.write(JSON.stringify({ ok: true, result, status, console: consoleLines }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(err) }) + '\n');
  process.exitCode = 1;
} finally {
  await browser.close();
}
