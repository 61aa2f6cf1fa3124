// Opens Spike's dashboard in headless Chromium during a train demo, waits
// until the seat × segment grid shows at least MIN seat-segments sold and
// the canvas has cells lit, and saves a screenshot.
// Usage: node train.mjs URL MIN SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [url, min, screenshot] = process.argv.slice(2);
if (!url || !min || !screenshot) {
  console.error("usage: node train.mjs URL MIN SCREENSHOT.png");
  process.exit(2);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  await page.waitForFunction(
    (min) => Number(document.getElementById("gridSold").textContent.replace(/,/g, "")) >= Number(min),
    min,
    { timeout: 60_000 },
  );
  await page.waitForTimeout(1000);
  // Count lit cells: pixels of the first class's colour (#4cc38a) on the grid.
  const lit = await page.$eval("#grid", (canvas) => {
    const g = canvas.getContext("2d");
    const { data } = g.getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] === 0x4c && data[i + 1] === 0xc3 && data[i + 2] === 0x8a) n++;
    }
    return n;
  });
  const rows = await page.$$eval("#gridLegend > span", (spans) => spans.length);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  if (lit === 0) throw new Error("the grid has no sold cell lit");
  if (rows < 2) throw new Error("the grid's legend does not list both classes");
  const sold = await page.textContent("#gridSold");
  console.log(`grid shows ${sold} seat-segments sold, ${lit} first-class pixels lit; screenshot ${screenshot}`);
} finally {
  await browser.close();
}
