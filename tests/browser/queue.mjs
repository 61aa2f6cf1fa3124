// Goes through a sale's waiting room in headless Chromium: five other
// buyers join first, then the page joins for alice before the opening,
// shows "waiting for the start", is admitted (the buy button appears), buys,
// and shows the order. Saves a screenshot. A waiting room is a token sale:
// TOKENS_JSON maps each buyer (alice, other0..other4) to their token, and
// the page gets alice's in its fragment, as a login system would hand it.
// Usage: node queue.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [base, event, tokensJson, screenshot] = process.argv.slice(2);
if (!base || !event || !tokensJson || !screenshot) {
  console.error("usage: node queue.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png");
  process.exit(2);
}
const tokens = JSON.parse(tokensJson);
for (let i = 0; i < 5; i++) {
  const answer = await fetch(`${base}/queue/join?event=${event}`, {
    method: "POST",
    headers: { Authorization: "Bearer " + tokens[`other${i}`] },
  });
  if (answer.status !== 200) throw new Error(`other${i} could not join: ${answer.status}`);
}
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${base}/queue?event=${event}#token=${tokens.alice}`);
  await page.waitForFunction(
    () => document.getElementById("standing").textContent.startsWith("You are in."),
    null,
    { timeout: 10_000 },
  ).catch(async (error) => {
    throw new Error(`no "You are in." before the opening (shown: ${await page.textContent("#standing")}): ${error}`);
  });
  if (await page.isVisible("#buy")) throw new Error("a buy button before the opening");
  const seen = new Set();
  const started = Date.now();
  while (!(await page.isVisible("#buy"))) {
    seen.add(await page.textContent("#standing"));
    if (Date.now() - started > 40_000) throw new Error("never admitted: " + [...seen].join(" | "));
    await page.waitForTimeout(100);
  }
  const position = await page.textContent("#position");
  if (!/^#[1-6]$/.test(position)) throw new Error("position shown: " + position);
  const progress = await page.$eval("#progress", (bar) => bar.style.width);
  if (progress !== "100%") throw new Error("progress at admission: " + progress);
  await page.click("#buy");
  await page.waitForFunction(
    () => document.getElementById("result").textContent.startsWith("Bought: order "),
    null,
    { timeout: 10_000 },
  );
  const result = await page.textContent("#result");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log(`alice at ${position}, saw: ${[...seen].join(" | ")}; ${result}`);
} finally {
  await browser.close();
}
