// The interop scenario shared by the Node peer (peer.mjs) and the browser page
// (browser.mjs): given an established @moq/lite connection, subscribe to or
// publish one broadcast of groups×frames deterministic payloads (pattern.mjs)
// and report what happened as events. What does not depend on the library's
// API (options, announcements, checking what arrived, the publisher's
// course) is exported for ../jsnet/scenario.mjs, the same runs on @moq/net.

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
	"stop-track",
	"group-interval",
	"repeat",
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
		stopTrack: str("stop-track", ""),
		groupIntervalMs: parseDuration(str("group-interval", "0"), "group-interval"),
		repeat: parseCount(str("repeat", "0"), "repeat"),
		timeoutMs: parseDuration(str("timeout", "30"), "timeout"),
	};
	if (o.role !== "sub" && o.role !== "pub") throw new Error(`--role: want sub or pub, got ${JSON.stringify(o.role)}`);
	if (o.subscriptions < 1) throw new Error("--subscriptions must be at least 1");
	return o;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const sameSummary = (a, b) => a.frames === b.frames && a.groups === b.groups && a.bytes === b.bytes && a.sha256 === b.sha256;

/**
 * The timescale of a stamped run's track (@moq/net's frames carry
 * timestamps) and the stamp step between frames: frame i is stamped
 * i*TS_STEP.
 */
export const TIMESCALE = 1000;
export const TS_STEP = 33;

/**
 * run executes the scenario on conn (an established Moq connection) and
 * returns the final "done" event; it throws on failure. emit(event) reports
 * progress; newHasher makes SHA-256 hashers (see pattern.mjs).
 */
export async function run({ Moq, conn, opts, emit, newHasher }) {
	return opts.role === "sub" ? subscribe({ Moq, conn, opts, emit, newHasher }) : publish({ Moq, conn, opts, emit, newHasher });
}

/**
 * consumeBroadcast waits, unless opts.announce is off, for the broadcast's
 * announcement (reporting each one seen), then consumes it. lost rejects
 * once the connection closes: a subscriber fails as soon as it goes away.
 * Both libraries share these calls.
 */
export async function consumeBroadcast({ Moq, conn, opts, emit }) {
	const want = Moq.Path.from(opts.broadcast);
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
	return { want, lost, broadcast: conn.consume(want) };
}

async function subscribe({ Moq, conn, opts, emit, newHasher }) {
	const started = Date.now();
	const { want, lost, broadcast } = await consumeBroadcast({ Moq, conn, opts, emit });
	if (opts.repeat > 0) return subscribeFinished({ subscribe: (name) => broadcast.subscribe(name, opts.priority), opts, emit, newHasher, lost, started });
	const track = broadcast.subscribe(opts.track, opts.priority);
	emit({ event: "subscribed", broadcast: want, track: opts.track });
	return receiveAll({ track, opts, emit, newHasher, lost, started });
}

/**
 * receiveAll reads track's groups×frames, checks them against the pattern
 * and returns the "done" event. unwrap turns what the library's readFrame
 * returns into { data, ts } (ts, a frame's timestamp in TIMESCALE, only
 * where the library carries one); with checkTimestamps every ts must be
 * i*TS_STEP. after, if given, runs once the track is closed and returns
 * { ok, error } for a further check.
 */
export async function receiveAll({ track, opts, emit, newHasher, lost, started, unwrap, checkTimestamps, after }) {
	const total = opts.groups * opts.frames;
	const r = await receive(track, opts, total, emit, newHasher, lost, unwrap);
	track.close();
	const got = await r.col.summary(total);
	const want_ = await expect(opts.groups, opts.frames, opts.size, newHasher);
	const more = after ? await after() : { ok: true };
	const ok = sameSummary(got, want_) && (!checkTimestamps || r.badStamps === 0) && more.ok;
	const done = {
		event: "done",
		role: "sub",
		...got,
		ok,
		expected: want_,
		mismatched: r.mismatched,
		first_mismatch: r.firstMismatch,
		elapsed_ms: Date.now() - started,
	};
	if (r.stamps) done.timestamps = { ...r.stamps, mismatched: r.badStamps };
	if (!ok) {
		done.error = !more.ok
			? more.error
			: r.ended
			? `track ended after ${r.col.frames} of ${total} frames`
			: r.badStamps > 0 && r.mismatched === 0
				? `${r.badStamps} frames with a timestamp other than frame*${TS_STEP} ms`
				: `received data differs from the pattern (${r.mismatched} frames mismatched)`;
	}
	return done;
}

/**
 * subscribeFinished subscribes opts.repeat times, one after the other, to the
 * tracks <track>-0, <track>-1, …, each of which the publisher finishes after
 * groups×frames: every subscription reads until the track ends (what the
 * publisher's FIN of the subscribe stream means) and must have every frame
 * by then. One "rep" event each; "done" carries the first incomplete rep's
 * summary (else the last one's) and fails if any rep was incomplete.
 * subscribe(name) subscribes to a track with the library's API; unwrap is
 * receiveAll's.
 */
export async function subscribeFinished({ subscribe, opts, emit, newHasher, lost, started, unwrap }) {
	const want_ = await expect(opts.groups, opts.frames, opts.size, newHasher);
	let bad;
	let last;
	for (let i = 0; i < opts.repeat; i++) {
		const name = `${opts.track}-${i}`;
		const track = subscribe(name);
		const r = await receive(track, opts, 0, () => {}, newHasher, lost, unwrap);
		track.close();
		const got = await r.col.summary();
		const ok = r.ended && sameSummary(got, want_) && r.mismatched === 0;
		const rep = { event: "rep", rep: i, track: name, ...got, ok };
		if (!ok) {
			// Which groups were missing or cut short, for the failure message.
			const short = [];
			for (let g = 0; g < opts.groups && short.length < 20; g++) {
				const n = r.seen.get(g) ?? -1;
				if (n !== opts.frames) short.push(`${g}:${n < 0 ? "missing" : n}`);
			}
			rep.error = `incomplete groups ${short.join(" ")}`;
		}
		emit(rep);
		last = got;
		if (!ok && !bad) bad = { rep: i, got, mismatched: r.mismatched };
	}
	const done = { event: "done", role: "sub", ...(bad ? bad.got : last), ok: !bad, expected: want_, reps: opts.repeat, elapsed_ms: Date.now() - started };
	if (bad) done.error = `rep ${bad.rep}: the track ended after ${bad.got.frames} of ${want_.frames} frames (${bad.mismatched} mismatched)`;
	return done;
}

/**
 * receive reads track's groups until total frames arrived (total 0: until
 * the track ends), checking each against the pattern, and each timestamp
 * (see receiveAll's unwrap) against i*TS_STEP.
 */
async function receive(track, opts, total, emit, newHasher, lost, unwrap = (data) => ({ data })) {
	const col = new Collector(newHasher);
	const seen = new Map(); // group sequence → frames received
	let mismatched = 0;
	let firstMismatch;
	let ended = false;
	let stamps;
	let badStamps = 0;
	while (total === 0 || col.frames < total) {
		const group = await Promise.race([track.recvGroup(), lost]);
		if (!group) {
			ended = true;
			break;
		}
		seen.set(group.sequence, 0);
		for (let f = 0; ; f++) {
			const read = await Promise.race([group.readFrame(), lost]);
			if (!read) break;
			const { data, ts, scale } = unwrap(read);
			col.add(group.sequence, data);
			seen.set(group.sequence, f + 1);
			// Assumes group sequences count from 0, as @moq/lite and moqp2p publishers do.
			const i = BigInt(group.sequence) * BigInt(opts.frames) + BigInt(f);
			const good = equalBytes(data, payload(i, opts.size));
			if (!good) {
				mismatched++;
				firstMismatch ??= { group: group.sequence, frame: f, len: data.byteLength };
			}
			if (ts !== undefined) {
				stamps ??= { first: ts, scale };
				stamps.last = ts;
				if (ts !== Number(i) * TS_STEP) badStamps++;
			}
			if (opts.frameEvents) {
				const h = newHasher();
				h.update(data);
				emit({ event: "recv", group: group.sequence, frame: f, len: data.byteLength, sha256: await h.digest(), match: good, ts });
			}
		}
	}
	return { col, seen, mismatched, firstMismatch, ended, stamps, badStamps };
}

/**
 * publishAll publishes broadcast at path on conn and serves opts.subscriptions
 * subscriptions: serve(req), the library's, refuses a request it does not
 * serve (returning nothing) or starts serving it, returning { done }, the
 * promise of having served it (wrapped: awaiting serve must not wait for
 * it, as subscriptions are served at once); nameOf(req) is the track a
 * request asks for. Once all are served it stays until the other side
 * closes the connection, or for --linger if that is set, or, with
 * --stop-track, until a request for that track arrives (refused through
 * serve), and returns the "done" event.
 */
export async function publishAll({ conn, path, broadcast, opts, emit, newHasher, serve, nameOf }) {
	const started = Date.now();
	conn.publish(path, broadcast);
	emit({ event: "published", broadcast: path });

	const closed = conn.closed.then(() => "closed");
	const serving = [];
	while (serving.length < opts.subscriptions) {
		const req = await Promise.race([broadcast.requested(), closed]);
		if (req === "closed") throw new Error(`connection closed after ${serving.length} of ${opts.subscriptions} subscriptions`);
		if (!req) throw new Error("broadcast closed");
		const s = await serve(req);
		if (s) serving.push(s.done);
	}
	await Promise.all(serving);
	const sent = await expect(opts.groups, opts.frames, opts.size, newHasher);
	emit({ event: "served", subscriptions: serving.length, ...sent });

	// The frames are queued, not yet delivered: stay until the other side
	// closes the connection, or for --linger if that is set, or until it
	// asks for --stop-track.
	const waits = [closed];
	if (opts.lingerMs > 0) waits.push(sleep(opts.lingerMs).then(() => "linger"));
	if (opts.stopTrack) waits.push(awaitStop(broadcast, opts.stopTrack, serve, nameOf));
	const waited = await Promise.race(waits);
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

/**
 * awaitStop resolves "stopped" once a request for track stop arrives
 * (serve refuses it, as every track but the run's); other late requests
 * are refused too.
 */
async function awaitStop(broadcast, stop, serve, nameOf) {
	for (;;) {
		const req = await broadcast.requested();
		if (!req) return "broadcast closed";
		const name = nameOf(req);
		await serve(req);
		if (name === stop) return "stopped";
	}
}

async function publish({ Moq, conn, opts, emit, newHasher }) {
	const path = Moq.Path.from(opts.broadcast);
	return publishAll({
		conn,
		path,
		broadcast: new Moq.Broadcast(),
		opts,
		emit,
		newHasher,
		nameOf: (req) => req.track.name,
		serve: (req) => {
			emit({ event: "subscribed", broadcast: path, track: req.track.name, priority: req.priority });
			if (req.track.name !== opts.track) {
				req.track.close(new Error(`not found: ${req.track.name}`));
				return;
			}
			return { done: serveTrack(req.track, opts) };
		},
	});
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
