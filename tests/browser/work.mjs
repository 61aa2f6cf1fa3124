// The waiting room's proof of work in headless Chromium (a node started
// with --join-work): a join without work, or with forged work, is refused
// 403 with a challenge to solve; then the page, for bob, solves its
// challenge in JavaScript, joins, is admitted, buys, and shows how long the
// work took. Saves a screenshot.
// Usage: node work.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png
import { launch } from "./chromium.mjs";

const [base, event, tokensJson, screenshot] = process.argv.slice(2);
if (!base || !event || !tokensJson || !screenshot) {
  console.error("usage: node work.mjs BASE_URL EVENT TOKENS_JSON SCREENSHOT.png");
  process.exit(2);
}
const tokens = JSON.parse(tokensJson);
const join = async (work) => {
  const query = new URLSearchParams({ event });
  if (work !== undefined) query.set("work", work);
  const answer = await fetch(`${base}/queue/join?${query}`, {
    method: "POST",
    headers: { Authorization: "Bearer " + tokens.alice },
  });
  return [answer.status, await answer.json()];
};
const [status, refused] = await join();
if (status !== 403 || !refused.data.challenge || !(refused.data.work_bits > 0)) {
  throw new Error(`a join without work was not refused with a challenge: ${status} ${JSON.stringify(refused)}`);
}
if (!refused.msg.includes("proof of work")) throw new Error("the refusal does not say why: " + refused.msg);
const [forgedStatus] = await join(`${Date.now()}.AAAAAAAAAAAAAAAAAAAAAA.1`);
if (forgedStatus !== 403) throw new Error(`forged work was answered ${forgedStatus}`);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${base}/queue?event=${event}#token=${tokens.bob}`);
  await page.waitForFunction(
    () => document.getElementById("work").textContent.startsWith("Checked in"),
    null,
    { timeout: 60_000 },
  ).catch(async (error) => {
    throw new Error(`the page never solved its work (shown: ${await page.textContent("#standing")}): ${error}`);
  });
  const took = Number(await page.$eval("#work", (line) => line.dataset.ms));
  const line = await page.textContent("#work");
  await page.waitForSelector("#buy", { state: "visible", timeout: 20_000 });
  await page.click("#buy");
  await page.waitForFunction(
    () => document.getElementById("result").textContent.startsWith("Bought: order "),
    null,
    { timeout: 10_000 },
  );
  const result = await page.textContent("#result");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log(`refused without work (${refused.data.work_bits} bits asked); page: ${line} (${took} ms); ${result}`);
} finally {
  await browser.close();
}
