// Test reporting, active only with ?result=URL: once frames decode, look at
// the player's canvas twice a second apart and POST what it showed.
const q = new URLSearchParams(location.search);
const result = q.get("result");
const want = Number(q.get("frames") ?? "20");

function sample(canvas) {
  const w = canvas.width, h = canvas.height;
  if (!w || !h) return { w, h, nonblank: 0, data: null };
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, w, h).data;
  let nonblank = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] + data[i + 1] + data[i + 2] > 30) nonblank++;
  }
  return { w, h, nonblank, data };
}

async function run() {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const canvas = document.querySelector("moq-watch canvas");
  const deadline = Date.now() + Number(q.get("timeout") ?? "45000");
  while (globalThis.moqDecoded < want && Date.now() < deadline) await sleep(100);
  const decoded1 = globalThis.moqDecoded;
  const a = sample(canvas);
  await sleep(1000);
  const decoded2 = globalThis.moqDecoded;
  const b = sample(canvas);
  let changed = 0;
  if (a.data && b.data && a.data.length === b.data.length) {
    for (let i = 0; i < a.data.length; i += 4) {
      if (Math.abs(a.data[i] - b.data[i]) + Math.abs(a.data[i + 1] - b.data[i + 1]) + Math.abs(a.data[i + 2] - b.data[i + 2]) > 30) changed++;
    }
  }
  const body = {
    decoded1, decoded2, width: b.w, height: b.h, pixels: b.w * b.h,
    nonblank: b.nonblank, changed,
    png: q.get("png") ? canvas.toDataURL("image/png") : "",
  };
  await fetch(result, { method: "POST", body: JSON.stringify(body) });
}

if (result) run().catch(async (e) => {
  await fetch(result, { method: "POST", body: JSON.stringify({ error: String(e) }) });
});
