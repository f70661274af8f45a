  // The node's live stats next to the player: its sessions, its own
  // broadcasts and the media rates over all sessions, from /stats (the
  // same document moq stats prints).
  (() => {
    let last;
    const show = async () => {
      try {
        const doc = await (await fetch("/stats", { cache: "no-store" })).json();
        let sent = 0, recv = 0;
        for (const s of doc.sessions) { sent += s.media.bytes_sent; recv += s.media.bytes_received; }
        const now = performance.now();
        let rates = "";
        if (last) {
          const secs = (now - last.at) / 1000, mib = (b) => (Math.max(0, b) / secs / 1048576).toFixed(2);
          rates = ` · sending ${mib(sent - last.sent)} MiB/s · receiving ${mib(recv - last.recv)} MiB/s`;
        }
        last = { at: now, sent, recv };
        const names = doc.broadcasts.length ? doc.broadcasts.join(", ") : "none";
        document.getElementById("node").textContent = `node: ${doc.sessions.length} sessions · broadcasts: ${names}${rates}`;
      } catch (e) {
        document.getElementById("node").textContent = `node: stats unavailable (${e})`;
      }
    };
    show();
    setInterval(show, 1000);
  })();
