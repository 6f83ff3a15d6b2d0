// Times how fast xterm.js takes in a known number of bytes, the same way in the
// app (run.mjs sends this text over WebDriver) and in the baseline page (loaded
// as a classic script). `pane` carries `data-bytes-written`, raised from xterm's
// write callback once xterm has parsed a chunk into its buffer (the app's
// TerminalView and baseline.mjs do exactly that).
//
// Start: the first change of the counter after this is called (the first
// chunk parsed). End: the counter has grown by `expected` bytes, then two
// animation frames have passed, so the frame showing the last line has been
// drawn. The figure is the bytes parsed after the start mark over that time:
// bytes rendered by xterm, not merely received.
// eslint-disable-next-line no-unused-vars
function samBenchMeasure(pane, expected) {
  const read = () => Number(pane.getAttribute("data-bytes-written") || 0);
  const b0 = read();
  const st = { b0, expected, chunks: 0, first: null, t0: null };
  st.done = new Promise((resolve) => {
    const obs = new MutationObserver((records) => {
      const t = performance.now();
      const n = read() - b0;
      st.chunks += records.length;
      if (st.t0 === null) {
        st.t0 = t;
        st.first = n;
      }
      if (n < expected) return;
      obs.disconnect();
      const parsed = t;
      let settled = false;
      const finish = (frame) => {
        if (settled) return;
        settled = true;
        const t1 = performance.now();
        resolve({
          bytes: expected - st.first,
          ms: t1 - st.t0,
          parseMs: parsed - st.t0,
          chunks: st.chunks,
          total: n,
          frame,
        });
      };
      requestAnimationFrame(() => requestAnimationFrame(() => finish(true)));
      // A window the compositor thinks hidden gets no frames: do not hang.
      setTimeout(() => finish(false), 2000);
    });
    obs.observe(pane, { attributes: true, attributeFilter: ["data-bytes-written"] });
  });
  return st;
}
