// The browser half of the JS peer: runs scenario.mjs in the page and POSTs
// {ok, error, events, log, user_agent} as JSON to the "result" query
// parameter's URL (default /result on the page's own origin), exactly once.
//
// Query parameters: url (the moq server, https://127.0.0.1:PORT/path for
// WebTransport), certhash (hex SHA-256 of the server's DER certificate),
// transport (webtransport, the default, or websocket), protocols (comma list
// to offer; absent = @moq/lite's own list, present but empty = none, which
// means SETUP → lite-02), the scenario options of scenario.mjs (role,
// broadcast, track, groups, frames, size, timeout, …), and selftest with
// payloads/expect as in peer.mjs. lib=net runs @moq/net 0.3.4 instead of
// @moq/lite (the page is then ../jsnet/browser.html, whose import map has it),
// with ../jsnet/scenario.mjs; timestamps makes its subscriber check frame
// timestamps too.

import * as pattern from "./pattern.mjs";
import * as scenario from "./scenario.mjs";

const started = performance.now();
const params = new URLSearchParams(location.search);
const get = (name) => params.get(name) ?? undefined;
const events = [];
const log = [];

// Keep what the library logs, to send back with the result.
for (const level of ["log", "info", "debug", "warn", "error"]) {
	const orig = console[level].bind(console);
	console[level] = (...args) => {
		log.push(`${level}: ${args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : safeJSON(a))).join(" ")}`);
		orig(...args);
	};
}

function safeJSON(v) {
	try {
		return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
	} catch {
		return String(v);
	}
}

function emit(event) {
	const e = { ...event, t_ms: Math.round(performance.now() - started) };
	events.push(e);
	document.getElementById("events").textContent += `${JSON.stringify(e)}\n`;
}

function errorText(err) {
	if (err instanceof AggregateError && err.errors?.length) return err.errors.map(errorText).join("; ");
	if (err instanceof Error) return `${err.name === "Error" ? "" : `${err.name}: `}${err.message}`;
	return String(err);
}

let finished = false;
async function finish(ok, error) {
	if (finished) return;
	finished = true;
	if (!ok) emit({ event: "error", error });
	document.getElementById("status").textContent = ok ? "ok" : `failed: ${error}`;
	const body = JSON.stringify({ ok, error, events, log, user_agent: navigator.userAgent });
	const target = get("result") ?? "/result";
	for (let attempt = 0; attempt < 3; attempt++) {
		try {
			await fetch(target, { method: "POST", headers: { "Content-Type": "application/json" }, body });
			return;
		} catch (err) {
			console.error("posting the result failed", err);
			await new Promise((resolve) => setTimeout(resolve, 200));
		}
	}
}

window.addEventListener("unhandledrejection", (ev) => finish(false, `unhandled rejection: ${errorText(ev.reason)}`));
window.addEventListener("error", (ev) => finish(false, `uncaught: ${ev.message}`));

const list = (v) => (v ? v.split(",").map((s) => s.trim()).filter(Boolean) : []);

const net = get("lib") === "net";
const importMoq = () => (net ? import("@moq/net") : import("@moq/lite"));

// webtransportOptions pins the certificate (certhash) and, if given, the
// subprotocols offered (@moq/net offers moq-lite-05 first by itself).
function webtransportOptions() {
	const webtransport = {};
	const hash = get("certhash");
	if (hash) webtransport.serverCertificateHashes = [{ algorithm: "sha-256", value: pattern.fromHex(hash) }];
	if (params.has("protocols")) webtransport.protocols = list(get("protocols"));
	return { webtransport, websocket: { enabled: false } };
}

async function connect(Moq, url) {
	if (net) {
		if ((get("transport") ?? "webtransport") === "websocket") throw new Error("lib=net runs over WebTransport here (the Node peer covers WebSocket)");
		return Moq.Connection.connect(url, webtransportOptions());
	}
	if ((get("transport") ?? "webtransport") === "websocket") {
		const protocols = list(get("protocols"));
		if (protocols.length === 0) return Moq.Connection.connect(url, { websocket: { delay: 0 } });
		const { default: QmuxSession } = await import("@moq/qmux");
		const transport = new QmuxSession(url, { protocols });
		await Promise.race([
			transport.ready,
			transport.closed.then((c) => {
				throw new Error(`WebSocket closed before opening (code ${c?.closeCode})`);
			}),
		]);
		return Moq.Connection.connect(url, { transport });
	}
	return Moq.Connection.connect(url, webtransportOptions());
}

async function main() {
	if (get("selftest") !== undefined) {
		const Moq = await importMoq(); // proves the import map resolves
		const st = await pattern.selftest(list(get("payloads")), list(get("expect")), pattern.webCryptoHasher);
		emit({ ...st, moq_path: Moq.Path.from("/a//b/"), webtransport: typeof WebTransport === "function" });
		return finish(true);
	}
	const opts = scenario.parseOptions(get);
	setTimeout(() => finish(false, `timeout after ${opts.timeoutMs} ms`), opts.timeoutMs);
	const raw = get("url");
	if (!raw) throw new Error("the url query parameter is required");
	const url = new URL(raw);
	const Moq = await importMoq();
	const scen = net ? await import("../jsnet/scenario.mjs") : scenario;
	const conn = await connect(Moq, url);
	emit({ event: "connected", version: conn.version, transport: get("transport") ?? "webtransport", lib: net ? "@moq/net" : "@moq/lite", url: url.toString() });
	const done = await scen.run({ Moq, conn, opts, emit, newHasher: pattern.webCryptoHasher, checkTimestamps: get("timestamps") !== undefined, fetch: get("fetch") !== undefined, datagrams: get("datagrams") !== undefined });
	emit(done);
	conn.close();
	await finish(done.ok, done.error);
}

main().catch((err) => finish(false, errorText(err)));
