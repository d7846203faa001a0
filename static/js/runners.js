// The runners page: the server renders the table; a heartbeat on the websocket (or a
// 10 s timer, whichever comes first) re-reads it.
(function () {
  "use strict";
  const root = document.getElementById("runners");
  if (!root) return;
  const liveState = document.getElementById("live-state");
  let pending = null;

  function refresh() {
    if (pending) return;
    pending = fetch(root.dataset.tableUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { root.innerHTML = html; })
      .catch(() => {})
      .finally(() => { pending = null; });
  }

  let retryDelay = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.wsPath}`);
    socket.onopen = () => { retryDelay = 500; liveState.textContent = "live"; liveState.className = "live on"; refresh(); };
    // The server's keep-alive heartbeat says nothing about the runners: no re-read.
    socket.onmessage = (e) => { if (JSON.parse(e.data).type !== "heartbeat") refresh(); };
    socket.onclose = () => {
      liveState.className = "live off";
      liveState.textContent = `reconnecting in ${Math.round(retryDelay / 1000)} s`;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }
  setInterval(refresh, 10000);
  connect();
})();
