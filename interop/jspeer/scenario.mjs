// The interop scenario shared by the Node peer (peer.mjs) and the browser page
// (browser.mjs): given an established @moq/lite connection, subscribe to or
// publish one broadcast of groups×frames deterministic payloads (pattern.mjs)
// and report what happened as events.

import { Collector, equalBytes, expect, payload } from "./pattern.mjs";

/** Names of the scenario options; each is a --flag in Node and a query parameter in the page. */
export const OPTION_NAMES = [
	"role",
	"broadcast",
	"track",
	"prefix",
	"no-announce",
	"groups",
	"frames",
	"size",
	"priority",
	"frame-events",
	"subscriptions",
	"linger",
	"group-interval",
	"timeout",
];

/**
 * parseDuration turns "30", "30s", "1500ms" or "2m" into milliseconds (a bare
 * number is seconds).
 */
export function parseDuration(v, name) {
	const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(String(v));
	if (!m) throw new Error(`--${name}: invalid duration ${JSON.stringify(v)}`);
	const n = Number(m[1]);
	return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
}

function parseCount(v, name) {
	const n = Number(v);
	if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name}: invalid count ${JSON.stringify(v)}`);
	return n;
}

// A present flag without a value ("" or "true") is true; "0" and "false" are false.
function parseBool(v) {
	return v !== undefined && v !== "0" && v !== "false";
}

/**
 * parseOptions reads the scenario options through get(name), which returns the
 * raw string value or undefined when the option is absent.
 */
export function parseOptions(get) {
	const str = (name, def) => get(name) ?? def;
	const o = {
		role: str("role", "sub"),
		broadcast: str("broadcast", "bench"),
		track: str("track", "data"),
		prefix: str("prefix", ""),
		announce: !parseBool(get("no-announce")),
		groups: parseCount(str("groups", "1"), "groups"),
		frames: parseCount(str("frames", "1"), "frames"),
		size: parseCount(str("size", "16"), "size"),
		priority: parseCount(str("priority", "0"), "priority"),
		frameEvents: parseBool(get("frame-events")),
		subscriptions: parseCount(str("subscriptions", "1"), "subscriptions"),
		lingerMs: parseDuration(str("linger", "0"), "linger"),
		groupIntervalMs: parseDuration(str("group-interval", "0"), "group-interval"),
		timeoutMs: parseDuration(str("timeout", "30"), "timeout"),
	};
	if (o.role !== "sub" && o.role !== "pub") throw new Error(`--role: want sub or pub, got ${JSON.stringify(o.role)}`);
	if (o.subscriptions < 1) throw new Error("--subscriptions must be at least 1");
	return o;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * run executes the scenario on conn (an established Moq connection) and
 * returns the final "done" event; it throws on failure. emit(event) reports
 * progress; newHasher makes SHA-256 hashers (see pattern.mjs).
 */
export async function run({ Moq, conn, opts, emit, newHasher }) {
	return opts.role === "sub" ? subscribe({ Moq, conn, opts, emit, newHasher }) : publish({ Moq, conn, opts, emit, newHasher });
}

async function subscribe({ Moq, conn, opts, emit, newHasher }) {
	const started = Date.now();
	const want = Moq.Path.from(opts.broadcast);
	// A subscriber fails as soon as the connection goes away.
	const lost = conn.closed.then(() => {
		throw new Error("connection closed before the subscription completed");
	});
	lost.catch(() => {});

	if (opts.announce) {
		const announced = conn.announced(Moq.Path.from(opts.prefix));
		for (;;) {
			const entry = await Promise.race([announced.next(), lost]);
			if (!entry) throw new Error(`announcements ended before ${want} was announced`);
			emit({ event: "announced", path: entry.path, active: entry.active });
			if (Moq.Path.from(entry.path) === want && entry.active) break;
		}
	}

	const broadcast = conn.consume(want);
	const track = broadcast.subscribe(opts.track, opts.priority);
	emit({ event: "subscribed", broadcast: want, track: opts.track });

	const total = opts.groups * opts.frames;
	const col = new Collector(newHasher);
	let mismatched = 0;
	let firstMismatch;
	let ended = false;
	while (col.frames < total) {
		const group = await Promise.race([track.recvGroup(), lost]);
		if (!group) {
			ended = true;
			break;
		}
		for (let f = 0; ; f++) {
			const data = await Promise.race([group.readFrame(), lost]);
			if (!data) break;
			col.add(group.sequence, data);
			// Assumes group sequences count from 0, as @moq/lite and moqp2p publishers do.
			const good = equalBytes(data, payload(BigInt(group.sequence) * BigInt(opts.frames) + BigInt(f), opts.size));
			if (!good) {
				mismatched++;
				firstMismatch ??= { group: group.sequence, frame: f, len: data.byteLength };
			}
			if (opts.frameEvents) {
				const h = newHasher();
				h.update(data);
				emit({ event: "recv", group: group.sequence, frame: f, len: data.byteLength, sha256: await h.digest(), match: good });
			}
		}
	}
	track.close();

	const got = await col.summary(total);
	const want_ = await expect(opts.groups, opts.frames, opts.size, newHasher);
	const ok = got.frames === want_.frames && got.groups === want_.groups && got.bytes === want_.bytes && got.sha256 === want_.sha256;
	const done = {
		event: "done",
		role: "sub",
		...got,
		ok,
		expected: want_,
		mismatched,
		first_mismatch: firstMismatch,
		elapsed_ms: Date.now() - started,
	};
	if (!ok) {
		done.error = ended
			? `track ended after ${col.frames} of ${total} frames`
			: `received data differs from the pattern (${mismatched} frames mismatched)`;
	}
	return done;
}

async function publish({ Moq, conn, opts, emit, newHasher }) {
	const started = Date.now();
	const path = Moq.Path.from(opts.broadcast);
	const broadcast = new Moq.Broadcast();
	conn.publish(path, broadcast);
	emit({ event: "published", broadcast: path });

	const closed = conn.closed.then(() => "closed");
	const serving = [];
	while (serving.length < opts.subscriptions) {
		const req = await Promise.race([broadcast.requested(), closed]);
		if (req === "closed") throw new Error(`connection closed after ${serving.length} of ${opts.subscriptions} subscriptions`);
		if (!req) throw new Error("broadcast closed");
		emit({ event: "subscribed", broadcast: path, track: req.track.name, priority: req.priority });
		if (req.track.name !== opts.track) {
			req.track.close(new Error(`not found: ${req.track.name}`));
			continue;
		}
		serving.push(serveTrack(req.track, opts));
	}
	await Promise.all(serving);
	const sent = await expect(opts.groups, opts.frames, opts.size, newHasher);
	emit({ event: "served", subscriptions: serving.length, ...sent });

	// The frames are queued, not yet delivered: stay until the other side
	// closes the connection, or for --linger if that is set.
	const waited = await Promise.race([closed, ...(opts.lingerMs > 0 ? [sleep(opts.lingerMs).then(() => "linger")] : [])]);
	broadcast.close();
	return {
		event: "done",
		role: "pub",
		...sent,
		ok: true,
		subscriptions: serving.length,
		ended_by: waited,
		elapsed_ms: Date.now() - started,
	};
}

async function serveTrack(track, opts) {
	for (let g = 0; g < opts.groups; g++) {
		if (g > 0 && opts.groupIntervalMs > 0) await sleep(opts.groupIntervalMs);
		const group = track.appendGroup();
		for (let f = 0; f < opts.frames; f++) {
			group.writeFrame(payload(g * opts.frames + f, opts.size));
		}
		group.close();
	}
	track.close();
}
