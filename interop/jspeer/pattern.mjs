// The deterministic test media of moqp2p (Go: internal/pattern), in JavaScript,
// for both Node and the browser. Keep it byte-for-byte in step with pattern.go:
//
//   frame i (counted from 0 across the whole track; group g, frame f of a
//   G×F run has i = g*F + f) of size bytes has byte j = (i*131 + j*7 + 13) mod 256,
//   and when size >= 8 the first eight bytes are i as a big-endian uint64;
//
//   a run's digest is SHA-256 over every frame's bytes, taken in (group
//   sequence, frame index) order whatever order the groups arrived in; the
//   summary is {frames, groups, bytes, sha256}, counting only groups that
//   contributed a frame.
//
// Hashing is pluggable so that Node can stream through node:crypto while the
// browser uses WebCrypto: a hasher factory returns {update(bytes), digest()},
// where digest() resolves to lowercase hex.

/** payload returns frame i (a Number or BigInt) of the given size as a Uint8Array. */
export function payload(i, size) {
	const index = BigInt(i);
	const p = new Uint8Array(size);
	// (i*131 + j*7 + 13) mod 256 only depends on i mod 256.
	const base = (Number(index & 0xffn) * 131 + 13) & 0xff;
	for (let j = 0; j < size; j++) {
		p[j] = (base + j * 7) & 0xff;
	}
	if (size >= 8) {
		new DataView(p.buffer, p.byteOffset, 8).setBigUint64(0, BigInt.asUintN(64, index), false);
	}
	return p;
}

/** equalBytes reports whether two Uint8Arrays hold the same bytes. */
export function equalBytes(a, b) {
	if (a.byteLength !== b.byteLength) return false;
	for (let k = 0; k < a.byteLength; k++) {
		if (a[k] !== b[k]) return false;
	}
	return true;
}

/** webCryptoHasher buffers what it is given and hashes it with crypto.subtle at the end. */
export function webCryptoHasher() {
	const chunks = [];
	let length = 0;
	return {
		update(bytes) {
			chunks.push(bytes);
			length += bytes.byteLength;
		},
		async digest() {
			const all = new Uint8Array(length);
			let off = 0;
			for (const c of chunks) {
				all.set(c, off);
				off += c.byteLength;
			}
			return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", all)));
		},
	};
}

/** toHex renders bytes as lowercase hex. */
export function toHex(bytes) {
	let s = "";
	for (const b of bytes) s += b.toString(16).padStart(2, "0");
	return s;
}

/** fromHex parses hex (whitespace and colons ignored) into a Uint8Array. */
export function fromHex(hex) {
	const clean = hex.replace(/[\s:]/g, "");
	if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`invalid hex: ${hex}`);
	const out = new Uint8Array(clean.length / 2);
	for (let k = 0; k < out.length; k++) out[k] = parseInt(clean.slice(2 * k, 2 * k + 2), 16);
	return out;
}

/**
 * Collector gathers received frames by group (groups may arrive in any order)
 * and summarises them in (group, frame) order, like pattern.Collector in Go.
 */
export class Collector {
	#newHasher;
	#groups = new Map();
	frames = 0;

	constructor(newHasher) {
		this.#newHasher = newHasher;
	}

	/** add records the next frame of group seq. */
	add(seq, bytes) {
		let list = this.#groups.get(seq);
		if (!list) {
			list = [];
			this.#groups.set(seq, list);
		}
		list.push(bytes);
		this.frames++;
	}

	/** summary hashes the frames in (group, frame) order; with limit > 0 only the first limit frames count. */
	async summary(limit = 0) {
		const seqs = [...this.#groups.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
		const h = this.#newHasher();
		const s = { frames: 0, groups: 0, bytes: 0, sha256: "" };
		for (const seq of seqs) {
			let counted = false;
			for (const f of this.#groups.get(seq)) {
				if (limit > 0 && s.frames === limit) break;
				h.update(f);
				s.frames++;
				s.bytes += f.byteLength;
				counted = true;
			}
			if (counted) s.groups++;
		}
		s.sha256 = await h.digest();
		return s;
	}
}

/** expect returns the summary of groups×frames payloads of size bytes (pattern.Expect in Go). */
export async function expect(groups, frames, size, newHasher) {
	const h = newHasher();
	const s = { frames: 0, groups: 0, bytes: 0, sha256: "" };
	for (let g = 0; g < groups; g++) {
		for (let f = 0; f < frames; f++) {
			h.update(payload(g * frames + f, size));
			s.frames++;
			s.bytes += size;
		}
		if (frames > 0) s.groups++;
	}
	s.sha256 = await h.digest();
	return s;
}

/**
 * selftest computes what the Go tests compare against internal/pattern:
 * payload hex and SHA-256 for each "i:size" case, pattern.Expect for each
 * "groups:frames:size" case, and the same run fed to a Collector with the
 * groups in reverse order (arrival order must not matter).
 */
export async function selftest(payloadCases, expectCases, newHasher) {
	const payloads = [];
	for (const c of payloadCases) {
		const [i, size] = c.split(":");
		const p = payload(BigInt(i), Number(size));
		const h = newHasher();
		h.update(p);
		payloads.push({ i, size: Number(size), hex: p.byteLength <= 64 ? toHex(p) : undefined, sha256: await h.digest() });
	}
	const expects = [];
	for (const c of expectCases) {
		const [groups, frames, size] = c.split(":").map(Number);
		const col = new Collector(newHasher);
		for (let g = groups - 1; g >= 0; g--) {
			for (let f = 0; f < frames; f++) col.add(g, payload(g * frames + f, size));
		}
		expects.push({
			groups,
			frames,
			size,
			summary: await expect(groups, frames, size, newHasher),
			collector: await col.summary(),
		});
	}
	return { event: "selftest", payloads, expect: expects };
}
