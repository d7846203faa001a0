// A page's websocket, kept open: reconnects by itself and says how it stands in the
// page's live badge (#live-state). While the page is visible it tries again at most 2 s
// apart, with jitter so that a room of open pages does not knock at once when Redis
// comes back; while hidden, it backs off to 30 s, and tries at once when shown again.
// Every (re)connect starts with a snapshot on the server's side, so nothing is lost.
(function () {
  "use strict";

  window.accelwebLiveSocket = function (path, { onOpen, onMessage }) {
    const liveState = document.getElementById("live-state");
    const VISIBLE_MAX_MS = 2000;
    const HIDDEN_MAX_MS = 30000;
    let socket = null;
    let failures = 0;
    let retry = null;
    let ended = false;

    function badge(text, on) {
      if (!liveState) return;
      liveState.textContent = text;
      liveState.className = on ? "live on" : "live off";
    }

    function delay() {
      const cap = document.hidden ? HIDDEN_MAX_MS : VISIBLE_MAX_MS;
      const backoff = Math.min(cap, 250 * 2 ** failures);
      return backoff / 2 + Math.random() * (backoff / 2);
    }

    function connect() {
      retry = null;
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${window.location.host}${path}`);
      socket.onopen = () => {
        failures = 0;
        badge("live", true);
        if (onOpen) onOpen();
      };
      socket.onmessage = (e) => onMessage(JSON.parse(e.data));
      socket.onclose = (e) => {
        // 4401/4404: logged out or no access; trying again would not change that.
        if (e.code === 4401 || e.code === 4404) { ended = true; badge("no access", false); return; }
        const wait = delay();
        failures += 1;
        badge(`reconnecting in ${Math.max(1, Math.round(wait / 1000))} s`, false);
        retry = setTimeout(connect, wait);
      };
    }

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && retry !== null && !ended) {
        clearTimeout(retry);
        connect();
      }
    });
    connect();
    return {
      send(message) {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      },
    };
  };
})();
