// The runners page: the server renders the table; a heartbeat on the websocket (or a
// 10 s timer, whichever comes first) re-reads it.
(function () {
  "use strict";
  const root = document.getElementById("runners");
  if (!root) return;
  let pending = null;

  function refresh() {
    if (pending) return;
    pending = fetch(root.dataset.tableUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { root.innerHTML = html; })
      .catch(() => {})
      .finally(() => { pending = null; });
  }

  // The server's keep-alive heartbeat says nothing about the runners: no re-read.
  window.accelwebLiveSocket(root.dataset.wsPath, {
    onOpen: refresh,
    onMessage: (message) => { if (message.type !== "heartbeat") refresh(); },
  });
  setInterval(refresh, 10000);
})();
