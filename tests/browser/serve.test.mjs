// The `dbfiles serve` page in a real browser: headless Chromium (Debian's package) driven by
// playwright-core. For each framework: upload a PNG through the form, see it listed and rendered,
// download it and compare the bytes, watch the progress bar on a large upload, and read the
// error a refused (over-limit) upload gives; screenshots go to $ARTIFACT_DIR.
//
// Run by scripts/browser-test (which builds dbfiles and installs Chromium and playwright-core);
// by hand: DBFILES_BIN=target/debug/dbfiles node --test tests/browser/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const BIN = resolve(process.env.DBFILES_BIN ?? 'target/debug/dbfiles');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.ARTIFACT_DIR ?? 'target/browser-artifacts');
const LIMIT = 8 << 20; // --max-upload for the server under test
const STEP_MS = 30_000; // every wait is bounded

// The flags this machine's Chromium needs: no sandbox as root, no GPU, and no background
// connections to hosts the closed network refuses.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// CRC-32 (PNG's chunk checksum); Node 20's zlib has no crc32 yet.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A real RGB PNG of width x height: a colour gradient, so it decodes and renders. */
function png(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
    for (let x = 0; x < width; x += 1) {
      row.set([(x * 255) / width, (y * 255) / height, 128], 1 + x * 3);
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Random bytes (not compressible, so nothing on the way can shrink them). */
function noise(size) {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 65536) {
    const block = Buffer.from(crypto.getRandomValues(new Uint8Array(Math.min(65536, size - i))));
    block.copy(data, i);
  }
  return data;
}

/** Starts `dbfiles serve` on a free loopback port; resolves with the process and its URL. */
function startServer(framework, dir) {
  const child = spawn(
    BIN,
    ['--storage', `sqlite://${join(dir, 'media.db')}`, 'serve', '--addr', '127.0.0.1:0',
      '--framework', framework, '--max-upload', String(LIMIT)],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolveStart, reject) => {
    // Every way out but success stops the process too: a test never leaves a server behind.
    const giveUp = (why) => {
      child.kill('SIGKILL');
      reject(new Error(why));
    };
    const timer = setTimeout(() => giveUp(`serve did not start: ${stderr}`), STEP_MS);
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    child.once('error', (e) => reject(new Error(`cannot run ${BIN}: ${e.message}`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const match = line.match(/http:\/\/(\S+)/);
      if (match) resolveStart({ child, base: `http://${match[1]}` });
      else giveUp(`no address in ${line}`);
    });
  });
}

/** Ctrl-C, then a bounded wait for the exit; a kill if it does not come. */
async function stopServer(child) {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  child.kill('SIGINT');
  const timeout = new Promise((r) => setTimeout(() => r('timeout'), 10_000));
  const result = await Promise.race([exited, timeout]);
  if (result === 'timeout') child.kill('SIGKILL');
  return result;
}

/** Names stored, asked of the storage itself with `dbfiles ls` (not of the page). */
function storedNames(dir) {
  const ls = spawnSync(BIN, ['--storage', `sqlite://${join(dir, 'media.db')}`, 'ls'], {
    encoding: 'utf8',
    timeout: STEP_MS,
  });
  assert.equal(ls.status, 0, ls.stderr);
  return ls.stdout.split('\n').filter(Boolean).sort();
}

for (const framework of ['axum', 'actix', 'rocket']) {
  test(`the serve page on ${framework} in Chromium`, { timeout: 180_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `dbfiles-browser-${framework}-`));
    const profile = join(dir, 'chromium-profile'); // a fresh --user-data-dir
    mkdirSync(ARTIFACTS, { recursive: true });
    const { child, base } = await startServer(framework, dir);
    let context;
    t.after(async () => {
      await context?.close();
      const stopped = await stopServer(child);
      rmSync(dir, { recursive: true, force: true });
      assert.equal(stopped, 0, `dbfiles serve on ${framework} did not stop cleanly`);
    });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
      viewport: { width: 1000, height: 700 },
      timeout: STEP_MS,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_MS);

    await page.goto(base);
    assert.equal(await page.title(), 'dbfiles');

    // A PNG through the form: listed, rendered at its real size, downloaded byte for byte.
    const picture = png(96, 64);
    const picturePath = join(dir, 'sunset at the beach.png');
    writeFileSync(picturePath, picture);
    await page.setInputFiles('#upload input[type=file]', picturePath);
    await page.click('#upload button');
    await page.waitForSelector('#message.ok');
    assert.match(await page.textContent('#message'), /Stored sunset_at_the_beach\.png\./);
    const item = page.locator('li[data-name="sunset_at_the_beach.png"]');
    const thumb = item.locator('img.thumb');
    await thumb.waitFor();
    await page.waitForFunction(
      (img) => img.complete && img.naturalWidth > 0,
      await thumb.elementHandle(),
    );
    const size = await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual(size, [96, 64], 'the thumbnail is the stored PNG, decoded');
    await page.screenshot({ path: join(ARTIFACTS, `serve-page-${framework}.png`), fullPage: true });

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      item.locator('a.download').click(),
    ]);
    assert.equal(download.suggestedFilename(), 'sunset_at_the_beach.png');
    const downloaded = readFileSync(await download.path());
    assert.ok(downloaded.equals(picture), 'the downloaded bytes are the uploaded bytes');

    // A large upload shows its progress, then lands in the list. The upload is slowed to
    // 8 MiB/s (Chromium's network emulation) so the bar is seen on its way, not only at 100.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 8 << 20,
    });
    await page.evaluate(() => {
      window.progressSeen = [];
      new MutationObserver(() => {
        window.progressSeen.push(Number(document.getElementById('progress').value));
      }).observe(document.getElementById('progress'), { attributes: true });
    });
    const large = noise(6 << 20);
    writeFileSync(join(dir, 'large.bin'), large);
    await page.setInputFiles('#upload input[type=file]', join(dir, 'large.bin'));
    await page.click('#upload button');
    await page.waitForSelector('#message.ok');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(
      seen.some((v) => v > 0 && v < 100),
      `the bar moved through the upload, not only at its end: ${JSON.stringify(seen)}`,
    );
    assert.equal(await page.getAttribute('#progress', 'value'), '100');
    assert.match(await page.textContent('#progress-text'), /^100% of 6\.0 MiB$/);
    await page.locator('li[data-name="large.bin"]').waitFor();

    // Over the limit: refused in words a person can read, and nothing stored.
    writeFileSync(join(dir, 'too big.bin'), noise(LIMIT + (1 << 20)));
    await page.setInputFiles('#upload input[type=file]', join(dir, 'too big.bin'));
    await page.click('#upload button');
    await page.waitForSelector('#message.error');
    const refusal = await page.textContent('#message');
    assert.equal(refusal, 'Upload refused: the upload is larger than the 8.0 MiB limit.');
    assert.ok(await page.isVisible('#message[role=alert]'));
    await page.screenshot({ path: join(ARTIFACTS, `refused-upload-${framework}.png`), fullPage: true });
    assert.deepEqual(
      storedNames(dir),
      ['large.bin', 'sunset_at_the_beach.png'],
      'the refused upload stored nothing',
    );
  });
}
