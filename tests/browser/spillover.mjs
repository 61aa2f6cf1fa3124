// Goes through a spillover waiting room (`--queue auto`, 2 admitted a
// second) in headless Chromium, twice. First bob, alone: the page says he
// passed straight through, shows the buy button at once, and buys. Then
// twenty buyers buy at once (most are told to wait), and alice's page, behind
// them, says the sale is busy, shows her place, and once she is admitted,
// buys. Saves a screenshot of alice's page. TOKENS_JSON maps each buyer
// (alice, bob, other0..other19) to their token.
// Usage: node spillover.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [base, event, tokensJson, screenshot] = process.argv.slice(2);
if (!base || !event || !tokensJson || !screenshot) {
  console.error("usage: node spillover.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png");
  process.exit(2);
}
const tokens = JSON.parse(tokensJson);

async function waitForText(page, id, prefix, timeout) {
  await page.waitForFunction(
    ([id, prefix]) => document.getElementById(id).textContent.startsWith(prefix),
    [id, prefix],
    { timeout },
  ).catch(async (error) => {
    throw new Error(`#${id} never began "${prefix}" (shown: ${await page.textContent("#" + id)}): ${error}`);
  });
}

async function buyOnPage(page) {
  await page.click("#buy");
  await waitForText(page, "result", "Bought: order ", 10_000);
  return page.textContent("#result");
}

const browser = await launch();
try {
  const errors = [];
  const bob = await browser.newPage({ viewport: { width: 900, height: 700 } });
  bob.on("pageerror", (error) => errors.push(String(error)));
  await bob.goto(`${base}/queue?event=${event}#token=${tokens.bob}`);
  await waitForText(bob, "entry", "No queue right now", 10_000);
  await bob.waitForSelector("#buy", { state: "visible", timeout: 5_000 });
  const bobBought = await buyOnPage(bob);

  const crowd = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      fetch(`${base}/buy/ticket?event=${event}`, {
        headers: { Authorization: "Bearer " + tokens[`other${i}`] },
      }).then((answer) => answer.json()),
    ),
  );
  const queued = crowd.filter((answer) => answer.code === -7 && answer.data.entry === "queued");
  if (queued.length < 10) throw new Error("the crowd was not queued: " + JSON.stringify(crowd));

  const alice = await browser.newPage({ viewport: { width: 900, height: 700 } });
  alice.on("pageerror", (error) => errors.push(String(error)));
  await alice.goto(`${base}/queue?event=${event}#token=${tokens.alice}`);
  await waitForText(alice, "entry", "The sale is busy", 10_000);
  const position = await alice.textContent("#position");
  if (!/^#\d+$/.test(position)) throw new Error("position shown: " + position);
  await alice.waitForSelector("#buy", { state: "visible", timeout: 40_000 });
  const aliceBought = await buyOnPage(alice);
  await alice.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log(`bob passed: ${bobBought}; ${queued.length} of the crowd queued; alice at ${position}: ${aliceBought}`);
} finally {
  await browser.close();
}
