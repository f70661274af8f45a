#!/usr/bin/env bash
# Self-test of the gomoqt interop peers: builds gomoqt-lite03 (gomoqt v0.12.2, moq-lite-03) and
# gomoqt-lite04 (gomoqt v0.16.1, moq-lite-04) into a temporary directory and runs each binary
# against itself in both directions, with and without -announce. Prints PASS/FAIL per case and
# exits non-zero if any case fails. Usage: interop/gomoqt-selftest.sh [-v]  (-v: keep the logs)
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d)
KEEP=${1:-}
SPID=""
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	if [ "$KEEP" = "-v" ]; then echo "logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# Expected sha256 of the first N frames of the deterministic track (1024-byte payloads), computed
# independently of the Go code.
SHA_10000=e8cdd9860b277b83603140009184a5f71784a60bf714a5c8811d8df42e95880f
SHA_2550=7ad3433d5841d2afe038a12349a1842ebb28d408c092558d7beb83e1551caa0a
SHA_2000=8cd21297091295b6a2f41ae5bbdfb07c55bd1389d0c16f2055c69d31d6eeee01

for v in lite03 lite04; do
	t0=$(date +%s%N)
	if ! (cd "$HERE/gomoqt-$v" && GOWORK=off go build -o "$DIR/gomoqt-$v" .); then
		echo "FAIL build gomoqt-$v"
		exit 1
	fi
	echo "built gomoqt-$v in $((($(date +%s%N) - t0) / 1000000)) ms"
done

field() { sed -n "s/.*\"$2\":\"\{0,1\}\([0-9a-f]*\).*/\1/p" "$1"; }

fails=0
# run_case NAME BINARY "SERVER ARGS" "CLIENT ARGS" SUB_FRAMES SUB_SHA SAME_AS_PUB(yes|no)
run_case() {
	local name=$1 bin=$2 sargs=$3 cargs=$4 want=$5 wantsha=$6 same=$7
	local d="$DIR/$name" addr="" why=""
	mkdir -p "$d"
	local t0=$(date +%s%N)
	# shellcheck disable=SC2086
	"$DIR/$bin" -role server -timeout 30s $sargs >"$d/server.out" 2>"$d/server.err" &
	SPID=$!
	for _ in $(seq 200); do
		addr=$(awk '/^LISTEN /{print $2}' "$d/server.out")
		[ -n "$addr" ] && break
		sleep 0.025
	done
	if [ -z "$addr" ]; then
		kill "$SPID" 2>/dev/null
		why="server printed no LISTEN line"
	else
		# shellcheck disable=SC2086
		"$DIR/$bin" -role client -addr "$addr" -timeout 30s $cargs >"$d/client.out" 2>"$d/client.err"
		local crc=$?
		wait "$SPID"
		local src=$?
		SPID=""
		local sub=server pub=client
		case " $cargs " in *" -mode sub "*) sub=client pub=server ;; esac
		grep '^{' "$d/server.out" >"$d/server.json"
		grep '^{' "$d/client.out" >"$d/client.json"
		local frames sha pubsha
		frames=$(field "$d/$sub.json" frames)
		sha=$(field "$d/$sub.json" sha256)
		pubsha=$(field "$d/$pub.json" sha256)
		if [ "$src" != 0 ] || [ "$crc" != 0 ]; then
			why="exit codes server=$src client=$crc"
		elif [ "$frames" != "$want" ]; then
			why="subscriber got $frames frames, want $want"
		elif [ "$sha" != "$wantsha" ]; then
			why="subscriber sha256 $sha, want $wantsha"
		elif [ "$same" = yes ] && [ "$pubsha" != "$sha" ]; then
			why="publisher sha256 $pubsha differs"
		fi
	fi
	local ms=$((($(date +%s%N) - t0) / 1000000))
	if [ -z "$why" ]; then
		echo "PASS $name ($ms ms) $(cat "$d/$sub.json")"
	else
		echo "FAIL $name ($ms ms): $why"
		for f in "$d"/*.out "$d"/*.err; do [ -s "$f" ] && sed "s|^|    $(basename "$f"): |" "$f" | tail -n 5; done
		fails=$((fails + 1))
	fi
}

big="-groups 100 -frames 100 -size 1024"
for v in lite03 lite04; do
	b=gomoqt-$v
	run_case "$v/server-pub_client-sub" "$b" "-mode pub $big" "-mode sub" 10000 $SHA_10000 yes
	run_case "$v/server-pub_client-sub-announce" "$b" "-mode pub $big" "-mode sub -announce" 10000 $SHA_10000 yes
	run_case "$v/server-sub_client-pub" "$b" "-mode sub" "-mode pub $big" 10000 $SHA_10000 yes
	run_case "$v/server-sub-announce_client-pub" "$b" "-mode sub -announce" "-mode pub $big" 10000 $SHA_10000 yes
	run_case "$v/server-pub_client-sub-count2550" "$b" "-mode pub $big" "-mode sub -count 2550" 2550 $SHA_2550 no
	run_case "$v/server-sub_client-pub-2000x1" "$b" "-mode sub" "-mode pub -groups 2000 -frames 1" 2000 $SHA_2000 yes
done

if [ "$fails" != 0 ]; then
	echo "$fails case(s) FAILED"
	exit 1
fi
echo "all cases PASSED"
