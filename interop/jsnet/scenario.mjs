// The interop scenario for @moq/net 0.3.4 (moq-lite-05), shared by the Node
// peer (../jspeer/peer.mjs --lib net) and the browser page (browser.html):
// the same runs as ../jspeer/scenario.mjs (same options, same events, same
// pattern, and its library-independent parts), written against @moq/net's
// API. Every frame carries a timestamp: frame i of a run is stamped
// i*TS_STEP in a millisecond timescale, which a subscriber checks (a peer
// that carries no timestamps fails that check only when --timestamps is set).

import { Collector, equalBytes, expect, payload } from "../jspeer/pattern.mjs";
import { consumeBroadcast, publishAll, receiveAll, sameSummary, sleep, subscribeFinished, TIMESCALE, TS_STEP } from "../jspeer/scenario.mjs";
export { OPTION_NAMES, parseDuration, parseOptions, TIMESCALE, TS_STEP } from "../jspeer/scenario.mjs";

/**
 * run executes the scenario on conn (an established @moq/net connection)
 * and returns the final "done" event; it throws on failure.
 */
export async function run({ Moq, conn, opts, emit, newHasher, checkTimestamps, fetch, datagrams }) {
	return opts.role === "sub"
		? subscribe({ Moq, conn, opts, emit, newHasher, checkTimestamps, fetch, datagrams })
		: publish({ Moq, conn, opts, emit, newHasher, fetch, datagrams });
}

async function subscribe({ Moq, conn, opts, emit, newHasher, checkTimestamps, fetch, datagrams }) {
	const started = Date.now();
	const { want, lost, broadcast } = await consumeBroadcast({ Moq, conn, opts, emit });
	const unwrap = (frame) => ({ data: frame.payload, ts: frame.timestamp.as(TIMESCALE), scale: frame.timestamp.scale });
	if (opts.repeat > 0) {
		// Finished tracks, one after the other: each must end cleanly (the
		// track's recvGroup returning nothing) with every frame in.
		const subscribe = (name) => broadcast.subscribe(name, { priority: opts.priority });
		return subscribeFinished({ subscribe, opts, emit, newHasher, lost, started, unwrap });
	}
	const track = broadcast.subscribe(opts.track, { priority: opts.priority });
	emit({ event: "subscribed", broadcast: want, track: opts.track });

	if (datagrams) return receiveDatagrams({ track, opts, emit, newHasher, lost, started });
	return receiveAll({
		track,
		opts,
		emit,
		newHasher,
		lost,
		started,
		unwrap,
		checkTimestamps,
		after: fetch
			? async () => ({ ok: await fetchFirst(broadcast, opts, emit, checkTimestamps, lost), error: "FETCH of group 0 did not return its frames" })
			: undefined,
	});
}

/**
 * fetchFirst fetches group 0 again (lite-05 FETCH) after the run and checks
 * its frames (and, with checkTimestamps, their timestamps); it reports a
 * "fetched" event and returns whether the group was whole and right.
 */
async function fetchFirst(broadcast, opts, emit, checkTimestamps, lost) {
	const group = await Promise.race([broadcast.fetchGroup(opts.track, 0), lost]);
	let frames = 0;
	let bad = 0;
	for (;;) {
		const frame = await Promise.race([group.readFrame(), lost]);
		if (!frame) break;
		const good = equalBytes(frame.payload, payload(BigInt(frames), opts.size));
		const stamped = frame.timestamp.as(TIMESCALE) === frames * TS_STEP;
		if (!good || (checkTimestamps && !stamped)) bad++;
		frames++;
	}
	const ok = frames === opts.frames && bad === 0;
	emit({ event: "fetched", group: 0, frames, mismatched: bad, ok });
	return ok;
}

/**
 * receiveDatagrams reads a datagram run: opts.groups single-frame groups,
 * each a datagram (frame i = group i, stamped i*TS_STEP). Datagrams may be
 * lost, so it stops once all arrived or none came for 3 s after the first;
 * "done" is ok only if every one arrived, right.
 */
async function receiveDatagrams({ track, opts, emit, newHasher, lost, started }) {
	const col = new Collector(newHasher);
	const seen = new Set();
	let bad = 0;
	while (seen.size < opts.groups) {
		const idle = sleep(seen.size === 0 ? opts.timeoutMs : 3000).then(() => "idle");
		const dg = await Promise.race([track.recvDatagram(), lost, idle]);
		if (dg === "idle" || !dg) break;
		if (seen.has(dg.sequence)) continue;
		seen.add(dg.sequence);
		col.add(dg.sequence, dg.payload);
		const good = equalBytes(dg.payload, payload(BigInt(dg.sequence), opts.size)) && dg.timestamp.as(TIMESCALE) === dg.sequence * TS_STEP;
		if (!good) bad++;
	}
	track.close();
	const got = await col.summary(opts.groups);
	const want_ = await expect(opts.groups, 1, opts.size, newHasher);
	const ok = sameSummary(got, want_) && bad === 0;
	const done = { event: "done", role: "sub", ...got, ok, expected: want_, mismatched: bad, datagrams: seen.size, elapsed_ms: Date.now() - started };
	if (!ok) done.error = `${seen.size} of ${opts.groups} datagrams arrived, ${bad} wrong`;
	return done;
}

async function publish({ Moq, conn, opts, emit, newHasher, fetch, datagrams }) {
	const path = Moq.Path.from(opts.broadcast);
	const broadcast = new Moq.Broadcast.Producer();
	if (fetch) keepRun(Moq, broadcast, opts);
	return publishAll({
		conn,
		path,
		broadcast,
		opts,
		emit,
		newHasher,
		nameOf: (req) => req.name,
		serve: async (req) => {
			if (req.name !== opts.track) {
				req.reject(new Error(`not found: ${req.name}`));
				return;
			}
			const track = req.accept({ timescale: TIMESCALE });
			// lite-05 subscribers ask for TRACK_INFO first: that request's
			// track closes as soon as its info is read. Serve only a real
			// subscription.
			await sleep(0);
			if (track.closed.peek() !== undefined) return;
			emit({ event: "subscribed", broadcast: path, track: req.name, priority: req.priority });
			return { done: datagrams ? serveDatagrams(Moq, track, opts) : serveTrack(Moq, track, opts) };
		},
	});
}

/**
 * keepRun writes the run once more into a track inserted into the broadcast
 * (<track>-kept), as a live publisher's track is: open, its groups
 * retained for two minutes, so that @moq/net's publisher serves FETCH from
 * it (it answers FETCH from a track's retained window, not by asking the
 * application).
 */
function keepRun(Moq, broadcast, opts) {
	const track = broadcast.createTrack(`${opts.track}-kept`, { timescale: TIMESCALE, latencyMax: 120_000 });
	for (let g = 0; g < opts.groups; g++) {
		const group = track.appendGroup();
		for (let f = 0; f < opts.frames; f++) {
			const i = g * opts.frames + f;
			group.writeFrame({ payload: payload(i, opts.size), timestamp: new Moq.Time.Timestamp(i * TS_STEP, TIMESCALE) });
		}
		group.close();
	}
}

/** serveDatagrams sends opts.groups single-frame groups as datagrams, paced. */
async function serveDatagrams(Moq, track, opts) {
	for (let g = 0; g < opts.groups; g++) {
		if (g > 0) await sleep(Math.max(opts.groupIntervalMs, 2));
		track.appendDatagram(new Moq.Time.Timestamp(g * TS_STEP, TIMESCALE), payload(g, opts.size));
	}
	// The track's end travels on a stream and may overtake datagrams still
	// queued at the receiver (its reader not scheduled on a loaded
	// machine): those would be dropped as late. Leave them a second.
	await sleep(1000);
	track.close();
}

async function serveTrack(Moq, track, opts) {
	for (let g = 0; g < opts.groups; g++) {
		if (g > 0 && opts.groupIntervalMs > 0) await sleep(opts.groupIntervalMs);
		const group = track.appendGroup();
		for (let f = 0; f < opts.frames; f++) {
			const i = g * opts.frames + f;
			group.writeFrame({ payload: payload(i, opts.size), timestamp: new Moq.Time.Timestamp(i * TS_STEP, TIMESCALE) });
		}
		group.close();
	}
	track.close();
}
