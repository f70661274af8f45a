#!/usr/bin/env node
// An independent moq-lite peer for moqp2p's interop tests: @moq/lite 0.2.2
// (kixelated's JavaScript implementation) under Node 20, over WebSocket; with
// --lib net, @moq/net 0.3.4 (moq-lite-05) from ../jsnet instead.
// See README.md for the flags; every flag --foo-bar can also be given as the
// environment variable JSPEER_FOO_BAR. stdout carries one JSON event per line
// and nothing else; diagnostics go to stderr. Exit status 0 means the scenario
// completed and verified, anything else is a failure.

import { createHash } from "node:crypto";
import { format } from "node:util";
import WS from "ws";
import * as pattern from "./pattern.mjs";
import * as scenario from "./scenario.mjs";

const started = Date.now();

// ---- output ----------------------------------------------------------------

function emit(event) {
	process.stdout.write(`${JSON.stringify({ ...event, t_ms: Date.now() - started })}\n`);
}

function errorText(err) {
	if (err instanceof AggregateError && err.errors?.length) return err.errors.map(errorText).join("; ");
	if (err instanceof Error) return err.message || String(err);
	return String(err);
}

let exiting = false;
let debug = false; // --debug, set once the flags are parsed
function fail(err, extra = {}) {
	if (exiting) return;
	exiting = true;
	emit({ event: "error", error: errorText(err), ...extra });
	process.stderr.write(`jspeer: ${debug && err instanceof Error && err.stack ? err.stack : errorText(err)}\n`);
	process.exit(1);
}

process.on("unhandledRejection", (err) => fail(err, { unhandled: true }));
process.on("uncaughtException", (err) => fail(err, { uncaught: true }));

// ---- options ---------------------------------------------------------------

const BOOLEAN = new Set(["no-announce", "frame-events", "selftest", "tap", "debug", "help", "timestamps", "fetch", "datagrams"]);
const PEER_OPTIONS = ["url", "protocol", "payloads", "expect", "lib", ...BOOLEAN];
const KNOWN = new Set([...scenario.OPTION_NAMES, ...PEER_OPTIONS]);

function parseFlags(argv) {
	const flags = new Map();
	for (let k = 0; k < argv.length; k++) {
		const arg = argv[k];
		const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
		if (!m || !KNOWN.has(m[1])) throw new Error(`unknown argument ${JSON.stringify(arg)} (see README.md)`);
		const [, name, inline] = m;
		if (inline !== undefined) flags.set(name, inline);
		else if (BOOLEAN.has(name)) flags.set(name, "");
		else if (k + 1 < argv.length) flags.set(name, argv[++k]);
		else throw new Error(`--${name} needs a value`);
	}
	return flags;
}

const flags = parseFlags(process.argv.slice(2));
const get = (name) => flags.get(name) ?? process.env[`JSPEER_${name.toUpperCase().replaceAll("-", "_")}`];
const isSet = (name) => {
	const v = get(name);
	return v !== undefined && v !== "0" && v !== "false";
};

if (isSet("help")) {
	process.stderr.write("usage: node peer.mjs --url http://127.0.0.1:PORT/path [--protocol moq-lite-04] --role sub|pub ... (see README.md)\n");
	process.exit(2);
}

// The library logs with console.log/info/debug, which would land on stdout
// among the events: send them to stderr, and only with --debug.
debug = isSet("debug");
for (const level of ["log", "info", "debug"]) {
	console[level] = (...args) => {
		if (debug) process.stderr.write(`jspeer ${level}: ${format(...args)}\n`);
	};
}

// ---- Node 20 polyfills (Node 22+ has them) ----------------------------------

if (typeof Promise.withResolvers !== "function") {
	Promise.withResolvers = function withResolvers() {
		let resolve;
		let reject;
		const promise = new this((res, rej) => {
			resolve = res;
			reject = rej;
		});
		return { promise, resolve, reject };
	};
}
if (typeof Set.prototype.difference !== "function") {
	Object.defineProperty(Set.prototype, "difference", {
		configurable: true,
		writable: true,
		value: function difference(other) {
			const out = new Set();
			for (const v of this) if (!other.has(v)) out.add(v);
			return out;
		},
	});
}

// ---- WebSocket with an optional hex transcript and early-failure detection ----

const tapMode = get("tap") === "full" ? "full" : isSet("tap") ? "short" : "";
const TAP_SHORT_BYTES = 64;

function toBuffer(data) {
	if (data instanceof ArrayBuffer || typeof data === "string") return Buffer.from(data);
	if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
	if (Array.isArray(data)) return Buffer.concat(data.map(toBuffer)); // ws "fragments" binary type
	return Buffer.from(data);
}

function tap(dir, data) {
	const bytes = toBuffer(data);
	const shown = tapMode === "full" || bytes.length <= TAP_SHORT_BYTES ? bytes : bytes.subarray(0, TAP_SHORT_BYTES);
	const more = shown.length < bytes.length ? ` …(+${bytes.length - shown.length} bytes)` : "";
	const kind = typeof data === "string" ? " text" : "";
	process.stderr.write(`tap ${Date.now() - started}ms ${dir}${kind} ${shown.toString("hex")}${more}\n`);
}

// Rejected when a WebSocket fails before it opens: @moq/qmux never rejects
// `ready` in that case, so without this a refused connection would hang.
const { promise: transportFailed, reject: failTransport } = Promise.withResolvers();
transportFailed.catch(() => {});

class PeerWebSocket extends WS {
	#opened = false;
	constructor(url, protocols, options) {
		super(url, protocols, options);
		if (tapMode) process.stderr.write(`tap ${Date.now() - started}ms open ${url} offering ${JSON.stringify(protocols ?? [])}\n`);
		this.addEventListener("open", () => {
			this.#opened = true;
			if (tapMode) process.stderr.write(`tap ${Date.now() - started}ms opened protocol=${JSON.stringify(this.protocol)}\n`);
		});
		this.addEventListener("error", (ev) => {
			if (!this.#opened) failTransport(new Error(`WebSocket ${url}: ${ev.message || ev.error?.message || "connection failed"}`));
		});
		this.addEventListener("close", (ev) => {
			if (tapMode) process.stderr.write(`tap ${Date.now() - started}ms close code=${ev.code} reason=${JSON.stringify(ev.reason)}\n`);
			if (!this.#opened) failTransport(new Error(`WebSocket ${url} closed before opening (code ${ev.code})`));
		});
		if (tapMode) this.addEventListener("message", (ev) => tap("<", ev.data));
	}
	send(data, ...rest) {
		if (tapMode) tap(">", data);
		return super.send(data, ...rest);
	}
}
globalThis.WebSocket = PeerWebSocket;

// ---- main ------------------------------------------------------------------

function nodeHasher() {
	const h = createHash("sha256");
	return {
		update: (bytes) => h.update(bytes),
		digest: async () => h.digest("hex"),
	};
}

const list = (v) => (v ? v.split(",").map((s) => s.trim()).filter(Boolean) : []);

async function main() {
	if (isSet("selftest")) {
		emit(await pattern.selftest(list(get("payloads")), list(get("expect")), nodeHasher));
		process.exit(0);
	}

	const opts = scenario.parseOptions(get);
	// Not unref'd: it also keeps node alive, so a run that stalls with no
	// sockets left ends in this error, never in a silent exit 0.
	setTimeout(() => fail(new Error(`timeout after ${opts.timeoutMs} ms`), { timeout: true }), opts.timeoutMs);

	const rawURL = get("url");
	if (!rawURL) throw new Error("--url is required (http://127.0.0.1:PORT/path)");
	const url = new URL(rawURL);
	const protocols = list(get("protocol"));

	const net = get("lib") === "net";
	if (!net && get("lib") !== undefined && get("lib") !== "lite") throw new Error(`--lib: want lite or net, got ${JSON.stringify(get("lib"))}`);
	// @moq/net lives in ../jsnet with its own node_modules: import it by
	// path, so that its own imports resolve there.
	const Moq = net ? await import(new URL("../jsnet/node_modules/@moq/net/index.js", import.meta.url)) : await import("@moq/lite");
	const scen = net ? await import("../jsnet/scenario.mjs") : scenario;
	let connecting;
	let transport;
	if (net) {
		// @moq/net offers qmux-02/01/00 with moq-lite-05, -04, -03 and moql by
		// itself; --protocol offers exactly the given subprotocols instead.
		if (protocols.length > 0) {
			const { default: QmuxSession } = await import(new URL("../jsnet/node_modules/@moq/qmux/index.js", import.meta.url));
			transport = new QmuxSession(url, { protocols, versions: {}, requireProtocol: true });
			connecting = Promise.race([transport.ready, transportFailed]).then(() => Moq.Connection.connect(url, { transport }));
		} else {
			connecting = Moq.Connection.connect(url, { websocket: { delay: 0 } });
		}
	} else if (protocols.length === 0) {
		// No WebSocket application protocol: SETUP, which reaches lite-01/02.
		connecting = Moq.Connection.connect(url, { websocket: { delay: 0 } });
	} else {
		// lite-03/04 over WebSocket: offer the app protocol ourselves and wait
		// for the socket before connect() reads session.protocol.
		const { default: QmuxSession } = await import("@moq/qmux");
		transport = new QmuxSession(url, { protocols });
		connecting = Promise.race([transport.ready, transportFailed]).then(() =>
			Moq.Connection.connect(url, { transport }),
		);
	}
	const conn = await Promise.race([connecting, transportFailed]);
	emit({
		event: "connected",
		version: conn.version,
		protocol: transport?.protocol ?? "",
		offered: protocols,
		transport: "websocket",
		lib: net ? "@moq/net" : "@moq/lite",
		url: url.toString(),
	});

	const done = await scen.run({ Moq, conn, opts, emit, newHasher: nodeHasher, checkTimestamps: isSet("timestamps"), fetch: isSet("fetch"), datagrams: isSet("datagrams") });
	emit(done);
	conn.close();
	// close() sends the close frame and shuts the socket 100 ms later; give it that.
	await Promise.race([conn.closed, new Promise((resolve) => setTimeout(resolve, 500))]);
	process.exit(done.ok ? 0 : 1);
}

main().catch((err) => fail(err));
