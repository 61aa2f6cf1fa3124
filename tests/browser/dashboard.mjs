// Opens Spike's dashboard in headless Chromium during a sale, waits until the
// sold counter reaches the stock, and saves a screenshot.
// Usage: node dashboard.mjs URL STOCK SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, stock, screenshot] = process.argv.slice(2);
if (!url || !stock || !screenshot) {
  console.error("usage: node dashboard.mjs URL STOCK SCREENSHOT.png");
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  await page.waitForFunction(
    (stock) => document.getElementById("sold").textContent.replace(/,/g, "") === stock,
    stock,
    { timeout: 30_000 },
  );
  // Let the charts gather a few points, then check they show live data.
  await page.waitForTimeout(1500);
  const status = await page.textContent("#status");
  const rows = await page.$$eval("#answers tbody tr", (trs) => trs.length);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  if (!status.startsWith("live")) throw new Error("dashboard not live: " + status);
  if (rows < 2) throw new Error("answers table is empty");
  console.log(`sold counter reached ${stock}; ${rows - 1} nodes listed; screenshot ${screenshot}`);
} finally {
  await browser.close();
}
