#!/usr/bin/env node
// Drives the scheduler's dashboard of a running demo in headless Chromium (Debian's, through
// playwright-core), as demo-app/tests/dashboard.rs asks:
//
//   node dashboard.mjs <base-url> <token|-> <screenshot.png>
//
// With a token: the page asks for it, lists `update-db` with its next run, shows a new run
// without a reload, pauses it from the page (and no run comes after), and once the token is
// forgotten an action is refused with a message on the page. With `-` (a read-only API): the
// page lists the schedule without a token, and an action is refused as read-only.
// Exits 0 when all of it holds; otherwise 1 with the step that failed (and a screenshot).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const [base, token, shot] = process.argv.slice(2);
if (!base || !token || !shot) {
  console.error('usage: node dashboard.mjs <base-url> <token|-> <screenshot.png>');
  process.exit(2);
}
const STEP = 20000;
let step = 'launch';
const log = (...a) => console.log('[dashboard]', ...a);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  timeout: STEP,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-quic', '--no-first-run', '--disable-sync',
    '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
page.setDefaultTimeout(STEP);
const errors = [];
page.on('pageerror', (e) => errors.push(e.message));

const card = '#schedules article.schedule[data-id="update-db"]';
// The newest fire the card lists: its nominal time, as the page wrote it.
const newest = async () => (await page.locator(`${card} table.fires tr.succeeded td.when`).first().textContent())?.trim();

async function run() {
  step = 'open the dashboard';
  const response = await page.goto(`${base}/scheduler/ui`);
  if (!response || response.status() !== 200) throw new Error(`HTTP ${response?.status()}`);
  if (token !== '-') {
    step = 'the page asks for the token';
    await page.locator('#auth').waitFor({ state: 'visible' });
    await page.fill('#token', token);
    await page.click('#auth-form button[type=submit]');
  }
  step = 'update-db is listed with its next run';
  await page.locator(card).waitFor({ state: 'visible' });
  const next = await page.locator(`${card} p.next time`).first().textContent();
  if (!next) throw new Error('no next run shown');
  log(`next run shown: ${next}`);
  const trigger = (await page.locator(`${card} p.trigger`).textContent()).trim();
  if (!/^every \d+ s$/.test(trigger)) throw new Error(`trigger in words: ${trigger}`);

  step = 'a new run appears without a reload';
  await page.locator(`${card} table.fires tr.succeeded`).first().waitFor();
  const before = await newest();
  await page.waitForFunction(
    ([selector, before]) => {
      const cell = document.querySelector(selector);
      return cell && cell.textContent.trim() !== before;
    },
    [`${card} table.fires tr.succeeded td.when`, before],
  );
  log(`newest run: ${before} -> ${await newest()}`);

  if (token === '-') {
    step = 'a read-only API refuses the action, visibly';
    await page.click(`${card} button[data-path$="/pause"]`);
    await page.waitForFunction(() => /Refused: .*read-only/.test(document.querySelector('#notice').textContent));
    log(`notice: ${await page.textContent('#notice')}`);
    return;
  }

  step = 'pause from the page';
  await page.click(`${card} button[data-path$="/pause"]`);
  await page.locator(`${card}[data-state="paused"]`).waitFor();
  await page.locator(`${card} .badge.paused`).waitFor();
  const paused = await newest();
  step = 'no run comes after the pause';
  await page.waitForTimeout(4500);
  const still = await newest();
  if (still !== paused) throw new Error(`a run came after the pause: ${paused} -> ${still}`);
  log(`paused; newest run still ${still}`);

  step = 'without the token an action is refused, visibly';
  await page.click('#forget');
  await page.click(`${card} button[data-path$="/resume"]`);
  await page.waitForFunction(() => /Refused: missing or wrong credentials/.test(document.querySelector('#notice').textContent));
  log(`notice: ${await page.textContent('#notice')}`);
}

let code = 0;
try {
  await run();
  if (errors.length) throw new Error(`page errors: ${errors.join(' | ')}`);
  mkdirSync(dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  log(`screenshot: ${shot}`);
} catch (e) {
  console.error(`[dashboard] FAILED at "${step}": ${e.message.split('\n')[0]}`);
  try {
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot.replace(/\.png$/, '.failure.png'), fullPage: true });
  } catch {}
  code = 1;
}
await browser.close();
process.exit(code);
